#include "ui/attribute_tab.h"
#include "ui/file_dialogs.h"

#include <QCheckBox>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMimeData>
#include <QPushButton>
#include <QScrollArea>
#include <QShortcut>
#include <QSignalBlocker>
#include <QSlider>
#include <QVBoxLayout>

#include <algorithm>
#include <functional>

#include "ui/photo_strip.h"
#include "ui/result_pane.h"
#include "ui/studio.h"

namespace automod::ui {

int AttributeTab::next_key_ = 0;
int AttributeTab::next_tag_ = 0;

namespace {
QString strengthText(double s) { return QString::asprintf("%+.2f", s); }
}  // namespace

ExemplarWell::ExemplarWell(StudioController* controller, const QString& title, int tag, QWidget* parent)
    : QGroupBox(title, parent), controller_(controller), tag_(tag) {
  setAcceptDrops(true);
  auto* layout = new QVBoxLayout(this);
  list_ = new QListWidget(this);
  list_->setViewMode(QListView::IconMode);
  list_->setIconSize(QSize(56, 56));
  list_->setMovement(QListView::Static);
  list_->setResizeMode(QListView::Adjust);
  list_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  list_->setMinimumHeight(80);
  list_->setMaximumHeight(120);
  list_->setAcceptDrops(false);  // drops land on the well itself
  list_->setAccessibleName(title);
  list_->setToolTip(tr("Drop photos here (from the file manager or the photo strip); Delete removes the selected"));
  auto* del = new QShortcut(QKeySequence::Delete, list_);
  del->setContext(Qt::WidgetShortcut);
  connect(del, &QShortcut::activated, this, &ExemplarWell::removeSelected);
  layout->addWidget(list_);
  connect(controller_->photos(), &PhotoIntake::exemplarEncoded, this, [this](int tag, const Source& s) {
    if (tag == tag_) add({s.name, s.path, s.latent, s.aligned});
  });
}

void ExemplarWell::add(const Exemplar& e) {
  exemplars_.push_back(e);
  auto* item = new QListWidgetItem(QIcon(QPixmap::fromImage(e.thumbnail)), e.name, list_);
  item->setToolTip(e.path.isEmpty() ? e.name : e.path);
  Q_EMIT changed();
}

void ExemplarWell::removeSelected() {
  QVector<int> rows;
  for (auto* item : list_->selectedItems()) rows << list_->row(item);
  if (rows.isEmpty()) return;
  std::sort(rows.begin(), rows.end(), std::greater<>());
  for (int r : rows) {
    delete list_->takeItem(r);
    exemplars_.remove(r);
  }
  Q_EMIT changed();
}

void ExemplarWell::clear() {
  if (exemplars_.isEmpty()) return;
  list_->clear();
  exemplars_.clear();
  Q_EMIT changed();
}

void ExemplarWell::reencode(const QStringList& files) {
  if (!files.isEmpty()) controller_->photos()->encodeExemplars(files, tag_);
}

void ExemplarWell::dragEnterEvent(QDragEnterEvent* event) {
  if (event->mimeData()->hasFormat(kSourceMime) || event->mimeData()->hasUrls())
    event->acceptProposedAction();
  else
    event->ignore();
}

void ExemplarWell::dragMoveEvent(QDragMoveEvent* event) {
  if (event->mimeData()->hasFormat(kSourceMime) || event->mimeData()->hasUrls())
    event->acceptProposedAction();
  else
    event->ignore();
}

void ExemplarWell::dropEvent(QDropEvent* event) {
  if (event->mimeData()->hasFormat(kSourceMime)) {
    // A photo from the strip: it is encoded already.
    const int index = event->mimeData()->data(kSourceMime).toInt();
    const auto& sources = controller_->document()->sources();
    if (index < 0 || index >= sources.size()) {
      event->ignore();
      return;
    }
    const auto& s = sources[index];
    add({s.name, s.path, s.latent, s.aligned});
    event->acceptProposedAction();
  } else if (auto files = localFiles(event->mimeData()); !files.isEmpty()) {
    controller_->photos()->encodeExemplars(files, tag_);
    event->acceptProposedAction();
  } else {
    event->ignore();
  }
}

AttributeTab::AttributeTab(StudioController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  auto* layout = new QHBoxLayout(this);
  // The controls on the left (in a scroll area, so that nothing is cut off in a small window), the
  // edited result on the right.
  auto* left = new QWidget(this);
  auto* left_layout = new QVBoxLayout(left);
  createWells(left);
  auto* wells = new QHBoxLayout;  // side by side, so that the whole column fits a 700 px high window
  for (auto* w : wells_) wells->addWidget(w, 1);
  left_layout->addLayout(wells);
  left_layout->addLayout(createForm(left));
  status_ = new QLabel(left);
  status_->setWordWrap(true);
  left_layout->addWidget(status_);
  left_layout->addLayout(createStrengthRow(left));
  left_layout->addLayout(createButtons(left));
  left_layout->addStretch(1);

  auto* scroll = new QScrollArea(this);
  scroll->setWidget(left);
  scroll->setWidgetResizable(true);
  scroll->setMinimumWidth(380);
  layout->addWidget(scroll, 2);

  const auto pane = addResultPane(layout, this,
                                  tr("Add a photo to the strip, then build or load an attribute and apply it"),
                                  tr("Edited result"), tr("The mix with the attribute applied, updated live"));
  result_ = pane.image;
  caption_ = pane.caption;

  connectDocument();
  syncFromDocument();
  updateStatus();
}

void AttributeTab::createWells(QWidget* parent) {
  const int tag = next_tag_;
  next_tag_ += 2;
  wells_[Positive] = new ExemplarWell(controller_, tr("With it (positive)"), tag + Positive, parent);
  wells_[Negative] = new ExemplarWell(controller_, tr("Without it (negative)"), tag + Negative, parent);
  wells_[Positive]->setToolTip(tr("Positive exemplars: photos that show the attribute (e.g. smiling); at least 2"));
  wells_[Negative]->setToolTip(tr("Negative exemplars: photos that do not show it (e.g. neutral); at least 2"));
  for (auto* w : wells_) connect(w, &ExemplarWell::changed, this, &AttributeTab::rebuild);
}

QFormLayout* AttributeTab::createForm(QWidget* parent) {
  auto* form = new QFormLayout;
  name_ = new QLineEdit(tr("attribute"), parent);
  name_->setToolTip(tr("The attribute's name (saved in its file)"));
  connect(name_, &QLineEdit::editingFinished, this, [this] {
    if (current_ && current_->name != name_->text()) {
      current_->name = name_->text();
      updateStatus();
    }
  });
  form->addRow(tr("&Name:"), name_);
  auto* scales = new QWidget(parent);
  auto* scales_layout = new QHBoxLayout(scales);
  scales_layout->setContentsMargins(0, 0, 0, 0);
  const QString names[3] = {tr("&Coarse"), tr("Interme&diate"), tr("F&ine")};
  const QString tips[3] = {tr("Blocks of 4–8 px: pose, face shape"), tr("Blocks of 16–32 px: features, expression"),
                           tr("Blocks of 64 px and up: colours, texture")};
  for (int r = 0; r < 3; ++r) {
    ranges_[r] = new QCheckBox(names[r], scales);
    ranges_[r]->setToolTip(tr("Apply the attribute to the %1").arg(tips[r]));
    ranges_[r]->setChecked(r != int(Range::Coarse));
    connect(ranges_[r], &QCheckBox::toggled, this, &AttributeTab::onRangesToggled);
    scales_layout->addWidget(ranges_[r]);
  }
  form->addRow(tr("Scales:"), scales);
  return form;
}

QHBoxLayout* AttributeTab::createStrengthRow(QWidget* parent) {
  auto* strength_row = new QHBoxLayout;
  strength_ = new QSlider(Qt::Horizontal, parent);
  strength_->setRange(-300, 300);
  strength_->setSingleStep(5);
  strength_->setPageStep(50);
  strength_->setTickInterval(100);
  strength_->setTickPosition(QSlider::TicksBelow);
  strength_->setValue(100);
  strength_->setToolTip(tr("Strength of the attribute, −3 to +3 (negative removes it); updates the result live"));
  strength_->setAccessibleName(tr("Attribute strength"));
  strength_label_ = new QLabel(strengthText(1.0), parent);
  strength_label_->setMinimumWidth(48);
  auto* strength_caption = new QLabel(tr("Stren&gth:"), parent);
  strength_caption->setBuddy(strength_);
  strength_row->addWidget(strength_caption);
  strength_row->addWidget(strength_, 1);
  strength_row->addWidget(strength_label_);
  connect(strength_, &QSlider::sliderPressed, this, [this] { drag_key_ = next_key_++; });
  connect(strength_, &QSlider::sliderReleased, this, [this] { drag_key_ = -1; });
  connect(strength_, &QSlider::valueChanged, this, &AttributeTab::onStrengthChanged);

  return strength_row;
}

QGridLayout* AttributeTab::createButtons(QWidget* parent) {
  auto* buttons = new QGridLayout;
  apply_ = new QPushButton(tr("A&pply"), parent);
  apply_->setShortcut(QKeySequence(tr("Ctrl+Return")));
  apply_->setToolTip(tr("Apply the attribute to the result at this strength (Ctrl+Return)"));
  remove_ = new QPushButton(tr("&Remove"), parent);
  remove_->setShortcut(QKeySequence(tr("Ctrl+Backspace")));
  remove_->setToolTip(tr("Take the attribute off the result (Ctrl+Backspace)"));
  load_ = new QPushButton(tr("&Load…"), parent);
  load_->setShortcut(QKeySequence(tr("Ctrl+Alt+O")));
  load_->setToolTip(tr("Load an attribute file (JSON, also made by `automod attribute build`) (Ctrl+Alt+O)"));
  save_ = new QPushButton(tr("Sa&ve…"), parent);
  save_->setShortcut(QKeySequence(tr("Ctrl+Alt+S")));
  save_->setToolTip(tr("Save the attribute as JSON, for `automod attribute apply` and later sessions (Ctrl+Alt+S)"));
  clear_ = new QPushButton(tr("Clear E&xemplars"), parent);
  clear_->setToolTip(tr("Empty both wells"));
  buttons->addWidget(apply_, 0, 0);
  buttons->addWidget(remove_, 0, 1);
  buttons->addWidget(clear_, 0, 2);
  buttons->addWidget(load_, 1, 0);
  buttons->addWidget(save_, 1, 1);
  connect(apply_, &QPushButton::clicked, this, &AttributeTab::apply);
  connect(remove_, &QPushButton::clicked, this, &AttributeTab::removeFromResult);
  connect(clear_, &QPushButton::clicked, this, [this] {
    for (auto* w : wells_) w->clear();
  });
  connect(save_, &QPushButton::clicked, this, [this] {
    const auto suggested = (current_ && !current_->name.isEmpty() ? current_->name : QStringLiteral("attribute")) + ".json";
    auto path = QFileDialog::getSaveFileName(this, tr("Save Attribute"), startPath("attributes", suggested),
                                             tr("Attributes (*.json)"));
    if (path.isEmpty()) return;
    rememberDirectory("attributes", path);
    if (!path.endsWith(".json", Qt::CaseInsensitive)) path += ".json";
    saveAttribute(path);
  });
  connect(load_, &QPushButton::clicked, this, [this] {
    const auto path = QFileDialog::getOpenFileName(this, tr("Load Attribute"), startDirectory("attributes"),
                                                   tr("Attributes (*.json);;All files (*)"));
    if (path.isEmpty()) return;
    rememberDirectory("attributes", path);
    loadAttribute(path);
  });

  return buttons;
}

void AttributeTab::connectDocument() {
  auto* doc = controller_->document();
  connect(doc, &StudioDocument::attributeChanged, this, &AttributeTab::syncFromDocument);
  connect(doc, &StudioDocument::sourcesChanged, this, &AttributeTab::updateButtons);
  connect(controller_, &StudioController::modelChanged, this, [this] {
    // The exemplars' codes belong to the old model: their photos are encoded again by the new one (the
    // applied attribute itself is rebuilt by the controller). Exemplars without a file (a pasted
    // image dragged from the strip) cannot come along.
    int dropped = 0;
    for (auto* w : wells_) {
      QStringList files;
      for (const auto& e : w->exemplars()) {
        if (!e.path.isEmpty() && QFileInfo(e.path).isFile())
          files << e.path;
        else
          ++dropped;
      }
      w->clear();
      w->reencode(files);
    }
    current_.reset();
    updateStatus(dropped ? tr("%n exemplar(s) without a photo file left the wells", "", dropped) : QString());
  });
  // A range the model does not have (no fine blocks in a 32 px model) cannot carry the attribute.
  auto sync_ranges = [this] {
    const auto& layout = controller_->document()->layout();
    for (int r = 0; r < 3; ++r) ranges_[r]->setEnabled(rangeInModel(Range(r), layout));
  };
  connect(doc, &StudioDocument::mixChanged, this, sync_ranges);
  sync_ranges();
  connect(controller_->photos(), &PhotoIntake::busyChanged, this, &AttributeTab::rebuild);  // "encoding…" in the status
  connect(controller_->render(), &RenderScheduler::previewReady, this, [this](const QImage& im) { showImage(im, false); });
  connect(controller_->render(), &RenderScheduler::resultReady, this, [this](const QImage& im) { showImage(im, true); });
}

Ranges AttributeTab::checkedRanges() const {
  Ranges set;
  for (Range r : allScales())
    if (ranges_[int(r)]->isChecked()) set |= flagOf(r);
  return set;
}

void AttributeTab::rebuild() {
  const auto& pos = wells_[Positive]->exemplars();
  const auto& neg = wells_[Negative]->exemplars();
  if (pos.isEmpty() && neg.isEmpty()) {
    updateStatus();
    return;
  }
  QVector<QVector<float>> p, n;
  QStringList pos_names, neg_names;
  for (const auto& e : pos) {
    p << e.latent;
    pos_names << (e.path.isEmpty() ? e.name : e.path);
  }
  for (const auto& e : neg) {
    n << e.latent;
    neg_names << (e.path.isEmpty() ? e.name : e.path);
  }
  QString error;
  auto built = controller_->attributes()->build(p, n, controller_->attributes()->scalesOf(checkedRanges()), name_->text(), &error);
  if (!built) {
    current_.reset();
    updateStatus(error);
    return;
  }
  built->positives = pos_names;
  built->negatives = neg_names;
  current_ = built;
  updateStatus();
}

bool AttributeTab::apply() {
  if (!current_) {
    Q_EMIT message(tr("Cannot apply: %1").arg(statusText()));
    return false;
  }
  AttributeEdit a = *current_;
  a.strength = strength_->value() / 100.0;
  auto* doc = controller_->document();
  if (doc->sources().isEmpty()) {
    Q_EMIT message(tr("Cannot apply: add a photo to the strip first"));
    return false;
  }
  doc->setAttribute(a, tr("Apply %1").arg(a.name.isEmpty() ? tr("attribute") : a.name));
  return true;
}

void AttributeTab::removeFromResult() { controller_->document()->removeAttribute(); }

bool AttributeTab::saveAttribute(const QString& path) {
  QString error;
  if (!current_) error = tr("there is no attribute yet (%1)").arg(statusText());
  if (current_ && controller_->attributes()->save(path, *current_, &error)) {
    Q_EMIT message(tr("Saved %1").arg(QFileInfo(path).fileName()));
    return true;
  }
  Q_EMIT message(tr("Cannot save %1: %2").arg(QFileInfo(path).fileName(), error));
  return false;
}

bool AttributeTab::loadAttribute(const QString& path) {
  QString error;
  auto loaded = controller_->attributes()->load(path, &error);
  if (!loaded) {
    Q_EMIT message(tr("Cannot load %1: %2").arg(QFileInfo(path).fileName(), error));
    return false;
  }
  // The wells held the exemplars of another attribute.
  {
    const QSignalBlocker b0(wells_[Positive]), b1(wells_[Negative]);
    for (auto* w : wells_) w->clear();
  }
  current_ = loaded;
  name_->setText(loaded->name);
  {
    const Ranges set = controller_->attributes()->rangesOf(loaded->scales);
    for (Range r : allScales()) {
      const QSignalBlocker block(ranges_[int(r)]);
      ranges_[int(r)]->setChecked(set.testFlag(flagOf(r)));
    }
  }
  updateStatus();
  Q_EMIT message(tr("Loaded %1").arg(QFileInfo(path).fileName()));
  return true;
}

void AttributeTab::onRangesToggled() {
  const QString scales = controller_->attributes()->scalesOf(checkedRanges());
  if (current_) current_->scales = scales;
  if (!controller_->document()->attribute().isNull()) controller_->document()->setAttributeScales(scales);
  updateStatus();
}

void AttributeTab::onStrengthChanged(int value) {
  strength_label_->setText(strengthText(value / 100.0));
  controller_->document()->setAttributeStrength(value / 100.0, strength_->isSliderDown() ? drag_key_ : -1);
}

void AttributeTab::syncFromDocument() {
  const auto& a = controller_->document()->attribute();
  if (!a.isNull()) {
    // The tab's attribute follows the document's (undo, an opened project) unless it is another one
    // the user built or loaded and has not applied yet.
    if (!current_ || current_->vector == a.vector) current_ = a;
    {
      const QSignalBlocker block(strength_);
      strength_->setValue(qRound(a.strength * 100));
      strength_label_->setText(strengthText(a.strength));
    }
    const Ranges set = controller_->attributes()->rangesOf(a.scales);
    for (Range r : allScales()) {
      const QSignalBlocker block(ranges_[int(r)]);
      ranges_[int(r)]->setChecked(set.testFlag(flagOf(r)));
    }
    if (!name_->hasFocus()) name_->setText(a.name);
  }
  updateStatus();
}

QString AttributeTab::statusText() const { return status_->text(); }

void AttributeTab::updateStatus(const QString& text) {
  QString s = text;
  if (s.isEmpty()) {
    const int np = wells_[Positive]->count(), nn = wells_[Negative]->count();
    if (current_) {
      const int ep = current_->positives.size(), en = current_->negatives.size();
      s = tr("“%1”: built from %2 + %3 exemplars, blocks %4")
              .arg(current_->name)
              .arg(ep)
              .arg(en)
              .arg(current_->scales.isEmpty() ? tr("none (choose a scale)") : current_->scales);
    } else if (np + nn == 0) {
      s = tr("Drop at least 2 photos with the attribute and 2 without it, or load an attribute file");
    } else {
      s = tr("%1 + %2 exemplars: at least 2 of each are needed").arg(np).arg(nn);
    }
    if (controller_->photos()->pendingExemplars() > 0) s += tr(" (encoding %1…)").arg(controller_->photos()->pendingExemplars());
  }
  status_->setText(s);
  const auto& applied = controller_->document()->attribute();
  caption_->setText(applied.isNull() ? tr("No attribute applied")
                                     : tr("“%1” at %2 on blocks %3")
                                           .arg(applied.name, strengthText(applied.strength), applied.scales));
  updateButtons();
}

void AttributeTab::updateButtons() {
  const bool applied = !controller_->document()->attribute().isNull();
  apply_->setEnabled(current_.has_value() && !controller_->document()->sources().isEmpty());
  remove_->setEnabled(applied);
  save_->setEnabled(current_.has_value());
  clear_->setEnabled(wells_[Positive]->count() + wells_[Negative]->count() > 0);
}

void AttributeTab::showImage(const QImage& image, bool final) { showResultImage(result_, image, final); }

}  // namespace automod::ui
