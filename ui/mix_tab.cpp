#include "ui/mix_tab.h"

#include <QComboBox>
#include <QDragEnterEvent>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QMimeData>
#include <QScrollArea>
#include <QSignalBlocker>
#include <QVBoxLayout>

#include "ui/photo_strip.h"
#include "ui/result_pane.h"
#include "ui/studio.h"

namespace automod::ui {

int RangePanel::next_key_ = 0;

namespace {
/// A short title (the group box's, which sets its minimum width) and what the range carries (a
/// wrapped line inside it).
QString rangeTitle(Range r) {
  switch (r) {
    case Range::Coarse: return QObject::tr("Coarse · 4–8 px");
    case Range::Intermediate: return QObject::tr("Intermediate · 16–32 px");
    case Range::Fine: default: return QObject::tr("Fine · 64 px and up");
  }
}
QString rangeContent(Range r) {
  switch (r) {
    case Range::Coarse: return QObject::tr("pose, face shape");
    case Range::Intermediate: return QObject::tr("features, hair style");
    case Range::Fine: default: return QObject::tr("colours, texture");
  }
}
}  // namespace

RangePanel::RangePanel(StudioController* controller, Range range, QWidget* parent)
    : QGroupBox(rangeTitle(range), parent), controller_(controller), range_(range) {
  setAcceptDrops(true);
  setToolTip(tr("Drop a photo here (from the strip or the file manager) to use it for this scale range; "
                "the sliders blend the photos."));
  auto* outer = new QVBoxLayout(this);
  content_ = new QLabel(rangeContent(range), this);
  content_->setWordWrap(true);
  content_->setEnabled(false);
  outer->addWidget(content_);
  rows_ = new QVBoxLayout;
  outer->addLayout(rows_);
  auto* doc = controller_->document();
  connect(doc, &StudioDocument::sourcesChanged, this, &RangePanel::rebuild);
  connect(doc, &StudioDocument::mixChanged, this, &RangePanel::sync);
  rebuild();
}

void RangePanel::rebuild() {
  while (auto* item = rows_->takeAt(0)) {
    if (auto* w = item->widget()) w->deleteLater();
    if (auto* l = item->layout()) {
      while (auto* i = l->takeAt(0)) {
        if (i->widget()) i->widget()->deleteLater();
        delete i;
      }
    }
    delete item;
  }
  sliders_.clear();
  const auto& sources = controller_->document()->sources();
  if (sources.isEmpty()) {
    auto* hint = new QLabel(tr("Drop photos here"), this);
    hint->setAlignment(Qt::AlignCenter);
    hint->setEnabled(false);
    rows_->addWidget(hint);
  }
  for (int i = 0; i < sources.size(); ++i) {
    auto* row = new QHBoxLayout;
    auto* name = new QLabel(sources[i].name, this);
    name->setMinimumWidth(90);
    auto* slider = new QSlider(Qt::Horizontal, this);
    slider->setRange(0, 100);
    slider->setToolTip(tr("Blend weight of %1 in this range").arg(sources[i].name));
    slider->setAccessibleName(tr("%1 weight").arg(sources[i].name));
    connect(slider, &QSlider::sliderPressed, this, [this] { drag_key_ = next_key_++; });
    connect(slider, &QSlider::sliderReleased, this, [this] { drag_key_ = -1; });
    connect(slider, &QSlider::valueChanged, this, [this, i, slider](int v) {
      controller_->document()->setRangeWeight(range_, i, v / 100.0, slider->isSliderDown() ? drag_key_ : -1);
    });
    row->addWidget(name);
    row->addWidget(slider, 1);
    rows_->addLayout(row);
    sliders_.push_back(slider);
  }
  rows_->addStretch(1);
  sync();
}

void RangePanel::sync() {
  auto* doc = controller_->document();
  // A model trained only up to 32 px (e.g. a run stopped before its last stage) has no fine blocks:
  // the range is shown, greyed out, saying so, instead of sliders that do nothing.
  const bool present = rangeInModel(range_, doc->layout());
  setEnabled(present);
  setTitle(rangeTitle(range_));
  content_->setText(present ? rangeContent(range_) : tr("not in this model (it has no %1 blocks)").arg(scaleName(range_)));
  setToolTip(present ? tr("Drop a photo here (from the strip or the file manager) to use it for this scale range; "
                          "the sliders blend the photos.")
                     : tr("%1: not in this model (it has no %2 blocks)").arg(rangeTitle(range_), scaleName(range_)));
  for (int i = 0; i < sliders_.size(); ++i) {
    QSignalBlocker block(sliders_[i]);
    sliders_[i]->setValue(qRound(doc->rangeWeight(range_, i) * 100));
  }
}

void RangePanel::dragEnterEvent(QDragEnterEvent* event) {
  if (event->mimeData()->hasFormat(kSourceMime) || event->mimeData()->hasUrls())
    event->acceptProposedAction();
  else
    event->ignore();
}

void RangePanel::dropEvent(QDropEvent* event) {
  if (event->mimeData()->hasFormat(kSourceMime)) {
    controller_->document()->assignRange(range_, event->mimeData()->data(kSourceMime).toInt());
    event->acceptProposedAction();
  } else if (auto files = localFiles(event->mimeData()); !files.isEmpty()) {
    controller_->photos()->addPhotos(files, range_);
    event->acceptProposedAction();
  }
}

MixTab::MixTab(StudioController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  auto* layout = new QHBoxLayout(this);
  auto* left = new QWidget(this);
  auto* left_layout = new QVBoxLayout(left);
  for (int r = 0; r < 3; ++r) {
    panels_[r] = new RangePanel(controller_, Range(r), left);
    left_layout->addWidget(panels_[r]);
  }
  advanced_ = new QGroupBox(tr("Per decoder block (advanced)"), left);
  advanced_->setCheckable(true);
  advanced_->setChecked(false);
  advanced_->setToolTip(tr("Choose the photo that drives each decoder block on its own"));
  block_rows_ = new QGridLayout;
  auto* adv_inner = new QWidget(advanced_);
  adv_inner->setLayout(block_rows_);
  adv_inner->setVisible(false);
  auto* adv_layout = new QVBoxLayout(advanced_);
  adv_layout->addWidget(adv_inner);
  connect(advanced_, &QGroupBox::toggled, adv_inner, &QWidget::setVisible);
  // Back to range mixing: a per-block choice must not stay active behind panels that show only each
  // range's first block. Each range takes its first block's weights (one undo step).
  connect(advanced_, &QGroupBox::toggled, this, [this](bool on) {
    if (!on) controller_->document()->mixByScales();
  });
  left_layout->addWidget(advanced_);
  left_layout->addStretch(1);
  auto* scroll = new QScrollArea(this);
  scroll->setWidget(left);
  scroll->setWidgetResizable(true);
  scroll->setMinimumWidth(380);
  layout->addWidget(scroll, 2);

  const auto pane = addResultPane(layout, this, tr("Add photos to start mixing"), tr("Mix result"),
                                  tr("The mix, updated live (a coarse preview first)"));
  result_ = pane.image;
  caption_ = pane.caption;

  auto* doc = controller_->document();
  connect(doc, &StudioDocument::sourcesChanged, this, &MixTab::rebuildBlocks);
  connect(doc, &StudioDocument::mixChanged, this, &MixTab::syncBlocks);
  connect(controller_, &StudioController::modelChanged, this, &MixTab::rebuildBlocks);
  connect(controller_->render(), &RenderScheduler::previewReady, this, [this](const QImage& im) { showImage(im, false); });
  connect(controller_->render(), &RenderScheduler::resultReady, this, [this](const QImage& im) { showImage(im, true); });
  rebuildBlocks();
}

void MixTab::rebuildBlocks() {
  for (auto* c : block_combos_) c->deleteLater();
  block_combos_.clear();
  while (auto* item = block_rows_->takeAt(0)) {
    if (item->widget()) item->widget()->deleteLater();
    delete item;
  }
  auto* doc = controller_->document();
  for (int b = 0; b < doc->blocks(); ++b) {
    const int res = doc->layout().resolutions[static_cast<size_t>(b)];
    block_rows_->addWidget(new QLabel(tr("Block %1 · %2×%2 px").arg(b).arg(res)), b, 0);
    auto* combo = new QComboBox;
    for (const auto& s : doc->sources()) combo->addItem(s.name);
    combo->setToolTip(tr("The photo that modulates block %1").arg(b));
    connect(combo, &QComboBox::activated, this, [this, b](int i) { controller_->document()->setBlockSource(b, i); });
    block_rows_->addWidget(combo, b, 1);
    block_combos_.push_back(combo);
  }
  syncBlocks();
}

void MixTab::syncBlocks() {
  auto* doc = controller_->document();
  const auto& mix = doc->mix();
  // A mix that differs within a range (an undo, a project) is a per-block mix: the advanced view says so.
  const bool per_block = doc->mixedPerBlock();
  if (per_block && !advanced_->isChecked()) {
    const QSignalBlocker block(advanced_);
    advanced_->setChecked(true);
    for (auto* child : advanced_->findChildren<QWidget*>(QString(), Qt::FindDirectChildrenOnly)) child->setVisible(true);
  }
  for (int b = 0; b < block_combos_.size() && b < mix.weights.size(); ++b) {
    const auto& row = mix.weights[b];
    int best = 0;
    for (int i = 1; i < row.size(); ++i)
      if (row[i] > row[best]) best = i;
    QSignalBlocker block(block_combos_[b]);
    block_combos_[b]->setCurrentIndex(row.isEmpty() ? -1 : best);
  }
}

void MixTab::showImage(const QImage& image, bool final) {
  showResultImage(result_, image, final);
  caption_->setText(final ? tr("Result · %1 ms").arg(controller_->render()->lastDecodeMs(), 0, 'f', 0) : tr("Preview…"));
}

}  // namespace automod::ui
