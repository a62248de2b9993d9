#include "ui/morph_tab.h"
#include "ui/file_dialogs.h"

#include <QButtonGroup>
#include <QCheckBox>
#include <QComboBox>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QMimeData>
#include <QProgressDialog>
#include <QPushButton>
#include <QRadioButton>
#include <QScrollArea>
#include <QSignalBlocker>
#include <QSlider>
#include <QSpinBox>
#include <QVBoxLayout>

#include "ui/photo_strip.h"
#include "ui/studio.h"

namespace automod::ui {

MorphSlot::MorphSlot(StudioController* controller, const QString& title, QWidget* parent)
    : QGroupBox(title, parent), controller_(controller) {
  setAcceptDrops(true);
  auto* layout = new QVBoxLayout(this);
  combo_ = new QComboBox(this);
  combo_->setAccessibleName(title);
  combo_->setToolTip(tr("Choose a photo of the strip, or drop one here (from the strip or the file manager)"));
  layout->addWidget(combo_);
  connect(combo_, &QComboBox::currentIndexChanged, this, &MorphSlot::sourceChanged);
  connect(combo_, &QComboBox::activated, this, [this] { chosen_ = true; });
  connect(controller_->photos(), &PhotoIntake::photoAdded, this, [this](int index) {
    const auto& sources = controller_->document()->sources();
    if (index < sources.size() && waiting_.removeOne(sources[index].path)) setSource(index);
  });
}

int MorphSlot::source() const { return combo_->currentIndex(); }

void MorphSlot::setSource(int index) {
  if (index < 0 || index >= combo_->count()) return;
  chosen_ = true;
  combo_->setCurrentIndex(index);
}

void MorphSlot::refresh(int fallback) {
  const QSignalBlocker block(combo_);
  const int previous = combo_->currentIndex();
  combo_->clear();
  for (const auto& s : controller_->document()->sources()) combo_->addItem(QIcon(QPixmap::fromImage(s.aligned)), s.name);
  if (!chosen_ || previous < 0 || previous >= combo_->count()) {
    chosen_ = false;
    combo_->setCurrentIndex(std::min(fallback, combo_->count() - 1));
  } else {
    combo_->setCurrentIndex(previous);
  }
}

void MorphSlot::dragEnterEvent(QDragEnterEvent* event) {
  if (event->mimeData()->hasFormat(kSourceMime) || event->mimeData()->hasUrls())
    event->acceptProposedAction();
  else
    event->ignore();
}

void MorphSlot::dragMoveEvent(QDragMoveEvent* event) {
  if (event->mimeData()->hasFormat(kSourceMime) || event->mimeData()->hasUrls())
    event->acceptProposedAction();
  else
    event->ignore();
}

void MorphSlot::dropEvent(QDropEvent* event) {
  if (event->mimeData()->hasFormat(kSourceMime)) {
    setSource(event->mimeData()->data(kSourceMime).toInt());
    event->acceptProposedAction();
  } else if (auto files = localFiles(event->mimeData()); !files.isEmpty()) {
    // Added to the strip like any photo; the first one becomes this slot's photo once encoded.
    waiting_ << files.front();
    controller_->photos()->addPhotos(files);
    event->acceptProposedAction();
  } else {
    event->ignore();
  }
}

MorphTab::MorphTab(StudioController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  auto* layout = new QHBoxLayout(this);
  auto* left = new QWidget(this);
  auto* left_layout = new QVBoxLayout(left);
  left_layout->addWidget(createSlots(left));
  left_layout->addWidget(createModeBox(left));
  left_layout->addWidget(createVideoBox(left));
  left_layout->addStretch(1);
  auto* scroll = new QScrollArea(this);
  scroll->setWidget(left);
  scroll->setWidgetResizable(true);
  scroll->setMinimumWidth(340);
  layout->addWidget(scroll, 2);
  layout->addLayout(createFrameView(), 3);
  connectController();
  refreshSources();
}

QWidget* MorphTab::createSlots(QWidget* parent) {
  auto* box = new QWidget(parent);
  auto* layout = new QVBoxLayout(box);
  layout->setContentsMargins(0, 0, 0, 0);
  // A and B side by side, so that the whole column fits a 700 px high window.
  auto* pair = new QHBoxLayout;
  slots_[0] = new MorphSlot(controller_, tr("From photo A"), box);
  slots_[1] = new MorphSlot(controller_, tr("To photo B"), box);
  for (auto* s : slots_) {
    pair->addWidget(s, 1);
    connect(s, &MorphSlot::sourceChanged, this, &MorphTab::settingsChanged);
  }
  layout->addLayout(pair);
  swap_ = new QPushButton(tr("S&wap A and B"), box);
  swap_->setShortcut(QKeySequence(tr("Ctrl+Alt+W")));
  swap_->setToolTip(tr("Morph the other way (Ctrl+Alt+W)"));
  connect(swap_, &QPushButton::clicked, this, [this] {
    const int a = slots_[0]->source(), b = slots_[1]->source();
    {
      const QSignalBlocker b0(slots_[0]), b1(slots_[1]);
      slots_[0]->setSource(b);
      slots_[1]->setSource(a);
    }
    settingsChanged();
  });
  layout->addWidget(swap_);
  return box;
}

QGroupBox* MorphTab::createModeBox(QWidget* parent) {
  auto* mode = new QGroupBox(tr("What moves"), parent);
  auto* mode_layout = new QVBoxLayout(mode);
  global_ = new QRadioButton(tr("&Global: every scale"), mode);
  global_->setToolTip(tr("The whole face slerps from A to B"));
  per_range_ = new QRadioButton(tr("&Per range: only the checked scales"), mode);
  per_range_->setToolTip(tr("The checked scale ranges move from A to B; the others stay A"));
  global_->setChecked(true);
  auto* group = new QButtonGroup(mode);
  group->addButton(global_);
  group->addButton(per_range_);
  mode_layout->addWidget(global_);
  mode_layout->addWidget(per_range_);
  const QString names[3] = {tr("&Coarse (pose, face shape)"), tr("Interme&diate (features)"),
                            tr("F&ine (colours, texture)")};
  for (int r = 0; r < 3; ++r) {
    ranges_[r] = new QCheckBox(names[r], mode);
    ranges_[r]->setChecked(r == int(Range::Coarse));
    ranges_[r]->setToolTip(tr("Move this scale range from A to B"));
    auto* indent = new QHBoxLayout;
    indent->addSpacing(20);
    indent->addWidget(ranges_[r]);
    mode_layout->addLayout(indent);
    connect(ranges_[r], &QCheckBox::toggled, this, &MorphTab::settingsChanged);
  }
  connect(per_range_, &QRadioButton::toggled, this, [this] {
    updateControls();
    settingsChanged();
  });
  return mode;
}

QGroupBox* MorphTab::createVideoBox(QWidget* parent) {
  auto* video = new QGroupBox(tr("Video"), parent);
  auto* form = new QFormLayout(video);
  frames_ = new QSpinBox(video);
  frames_->setRange(2, 2000);
  frames_->setValue(48);
  frames_->setToolTip(tr("Frames from A to B (both included)"));
  fps_ = new QSpinBox(video);
  fps_->setRange(1, 60);
  fps_->setValue(24);
  fps_->setToolTip(tr("Frames per second of the video"));
  form->addRow(tr("F&rames:"), frames_);
  form->addRow(tr("Frames per second:"), fps_);
  for (auto* spin : {frames_, fps_}) connect(spin, &QSpinBox::valueChanged, this, &MorphTab::storeSettings);
  export_ = new QPushButton(tr("Export &Video…"), video);
  export_->setShortcut(QKeySequence(tr("Ctrl+Alt+E")));
  export_->setToolTip(controller_->morph()->canWriteVideo()
                          ? tr("Write the morph as an MP4 video in the background (Ctrl+Alt+E)")
                          : tr("This build cannot write videos (it has no OpenCV)"));
  connect(export_, &QPushButton::clicked, this, &MorphTab::exportVideoDialog);
  form->addRow(export_);
  return video;
}

QVBoxLayout* MorphTab::createFrameView() {
  auto* right = new QVBoxLayout;
  frame_ = new ScaledImageLabel(tr("Add two photos to morph between them"), this);
  frame_->setAccessibleName(tr("Morph frame"));
  frame_->setToolTip(tr("The morph at t, decoded in the background"));
  right->addWidget(frame_, 1);
  auto* scrub = new QHBoxLayout;
  auto* scrub_caption = new QLabel(tr("t:"), this);
  slider_ = new QSlider(Qt::Horizontal, this);
  slider_->setRange(0, 1000);
  slider_->setSingleStep(10);
  slider_->setPageStep(100);
  slider_->setToolTip(tr("Scrub from A (t = 0) to B (t = 1)"));
  slider_->setAccessibleName(tr("Morph position"));
  scrub_caption->setBuddy(slider_);
  t_label_ = new QLabel(this);
  t_label_->setMinimumWidth(40);
  scrub->addWidget(scrub_caption);
  scrub->addWidget(slider_, 1);
  scrub->addWidget(t_label_);
  right->addLayout(scrub);
  caption_ = new QLabel(this);
  caption_->setAlignment(Qt::AlignCenter);
  right->addWidget(caption_);
  connect(slider_, &QSlider::valueChanged, this, &MorphTab::settingsChanged);
  return right;
}

void MorphTab::connectController() {
  auto* doc = controller_->document();
  connect(doc, &StudioDocument::sourcesChanged, this, &MorphTab::refreshSources);
  // A range the model does not have (no fine blocks in a 32 px model) cannot move.
  connect(doc, &StudioDocument::mixChanged, this, &MorphTab::updateControls);
  // An opened project brings its morph settings.
  connect(doc, &StudioDocument::morphChanged, this, &MorphTab::applySettings);
  connect(controller_->morph(), &MorphController::frameReady, this, [this](const QImage& image, double t) {
    frame_->setImage(image, true);
    caption_->setText(tr("Frame at t = %1").arg(t, 0, 'f', 2));
  });
  connect(controller_->morph(), &MorphController::failed, this, [this](const QString& why) {
    caption_->setText(tr("Cannot morph: %1").arg(why));
    Q_EMIT message(caption_->text());
  });
  connect(controller_->morph(), &MorphController::videoProgress, this, [this](int done, int total) {
    if (progress_) {
      progress_->setMaximum(total);
      progress_->setValue(done);
    }
  });
  connect(controller_->morph(), &MorphController::videoFinished, this,
          [this](bool ok, bool cancelled, const QString& path, int frames, const QString& why) {
            if (progress_) {
              progress_->hide();
              progress_->deleteLater();
            }
            const QString name = QFileInfo(path).fileName();
            if (ok)
              Q_EMIT message(tr("Wrote %1 (%2 frames)").arg(name).arg(frames));
            else if (cancelled)
              Q_EMIT message(tr("Export of %1 cancelled").arg(name));
            else
              Q_EMIT message(tr("Cannot export %1: %2").arg(name, why));
            updateControls();
          });
}

void MorphTab::settingsChanged() {
  storeSettings();
  requestFrame();
}

void MorphTab::storeSettings() {
  MorphSettings m;
  m.a = slots_[0]->source();
  m.b = slots_[1]->source();
  m.moving = movingRanges();
  m.t = t();
  m.frames = frames_->value();
  m.fps = fps_->value();
  const QSignalBlocker block(controller_->document());
  controller_->document()->setMorph(m);
}

void MorphTab::applySettings() {
  const auto& m = controller_->document()->morph();
  {
    const QSignalBlocker b0(slots_[0]), b1(slots_[1]), bg(global_), bp(per_range_), bs(slider_), bf(frames_), bq(fps_);
    slots_[0]->setSource(m.a);
    slots_[1]->setSource(m.b);
    const bool global = m.moving == allRanges();
    global_->setChecked(global);
    per_range_->setChecked(!global);
    for (Range r : allScales()) {
      const QSignalBlocker br(ranges_[int(r)]);
      if (!global) ranges_[int(r)]->setChecked(m.moving.testFlag(flagOf(r)));
    }
    slider_->setValue(int(std::lround(m.t * 1000.0)));
    frames_->setValue(m.frames);
    fps_->setValue(int(std::lround(m.fps)));
  }
  updateControls();
  requestFrame();
}

Ranges MorphTab::movingRanges() const {
  if (global_->isChecked()) return allRanges();
  Ranges set;
  for (Range r : allScales())
    if (ranges_[int(r)]->isChecked()) set |= flagOf(r);
  return set;
}

QProgressDialog* MorphTab::progressDialog() const { return progress_.data(); }

double MorphTab::t() const { return slider_->value() / 1000.0; }

void MorphTab::refreshSources() {
  const int n = controller_->document()->sources().size();
  slots_[0]->refresh(0);
  slots_[1]->refresh(std::min(1, n - 1));
  if (n == 0) {
    frame_->clear();
    frame_->setText(tr("Add two photos to morph between them"));
    caption_->clear();
  }
  updateControls();
  requestFrame();
}

void MorphTab::updateControls() {
  const int n = controller_->document()->sources().size();
  const auto& layout = controller_->document()->layout();
  for (int r = 0; r < 3; ++r) ranges_[r]->setEnabled(per_range_->isChecked() && rangeInModel(Range(r), layout));
  swap_->setEnabled(n >= 2);
  slider_->setEnabled(n >= 1);
  export_->setEnabled(n >= 1 && controller_->morph()->canWriteVideo() && !controller_->morph()->videoRunning());
}

void MorphTab::requestFrame() {
  t_label_->setText(QString::number(t(), 'f', 2));
  const int a = slots_[0]->source(), b = slots_[1]->source();
  if (a < 0 || b < 0) return;
  controller_->morph()->requestFrame(a, b, movingRanges(), t());
}

void MorphTab::exportVideoDialog() {
  auto path = QFileDialog::getSaveFileName(this, tr("Export Video"), startPath("export", "morph.mp4"), tr("MP4 videos (*.mp4)"));
  if (!path.isEmpty()) rememberDirectory("export", path);
  if (path.isEmpty()) return;
  if (!path.endsWith(".mp4", Qt::CaseInsensitive)) path += ".mp4";
  exportVideo(path);
}

bool MorphTab::exportVideo(const QString& path) {
  QString error;
  const int frames = frames_->value();
  if (!controller_->morph()->exportVideo(path, slots_[0]->source(), slots_[1]->source(), movingRanges(), frames,
                                     fps_->value(), &error)) {
    Q_EMIT message(tr("Cannot export %1: %2").arg(QFileInfo(path).fileName(), error));
    return false;
  }
  progress_ = new QProgressDialog(tr("Writing %1…").arg(QFileInfo(path).fileName()), tr("Cancel"), 0, frames, this);
  progress_->setWindowTitle(tr("Export Video"));
  progress_->setWindowModality(Qt::WindowModal);
  progress_->setMinimumDuration(300);
  progress_->setAutoClose(false);
  progress_->setAutoReset(false);
  connect(progress_, &QProgressDialog::canceled, controller_->morph(), &MorphController::cancelVideo);
  progress_->setValue(0);
  updateControls();
  return true;
}

}  // namespace automod::ui
