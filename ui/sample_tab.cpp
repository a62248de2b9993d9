#include "ui/sample_tab.h"

#include <QCheckBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include "ui/document.h"
#include "ui/studio.h"

namespace automod::ui {

namespace {
/// A sample scaled up to the gallery's icon size (a QIcon never enlarges its pixmap, and a 32 px
/// model's samples would otherwise show as stamps).
QImage galleryImage(const QImage& image, const QSize& icon) {
  if (image.width() >= icon.width() && image.height() >= icon.height()) return image;
  return image.scaled(icon, Qt::KeepAspectRatio, Qt::SmoothTransformation);
}
}  // namespace

SampleTab::SampleTab(StudioController* controller, QWidget* parent) : QWidget(parent), controller_(controller) {
  auto* layout = new QHBoxLayout(this);
  auto* left = new QVBoxLayout;
  auto* locks = new QGroupBox(tr("Keep from the mix"), this);
  auto* locks_layout = new QVBoxLayout(locks);
  const QString names[3] = {tr("&Coarse (pose, face shape)"), tr("&Intermediate (features)"),
                            tr("&Fine (colours, texture)")};
  for (int r = 0; r < 3; ++r) {
    lock_[r] = new QCheckBox(names[r], locks);
    lock_[r]->setToolTip(tr("Locked ranges follow the current mix; the others are drawn at random"));
    locks_layout->addWidget(lock_[r]);
  }
  lock_[0]->setChecked(true);
  left->addWidget(locks);
  auto* form = new QFormLayout;
  seed_ = new QSpinBox(this);
  seed_->setRange(0, 1000000000);
  seed_->setToolTip(tr("The same seed gives the same gallery"));
  count_ = new QSpinBox(this);
  count_->setRange(1, 64);
  count_->setValue(8);
  form->addRow(tr("&Seed:"), seed_);
  form->addRow(tr("Sa&mples:"), count_);
  left->addLayout(form);
  generate_ = new QPushButton(tr("&Generate"), this);
  reroll_ = new QPushButton(tr("&Reroll"), this);
  keep_ = new QPushButton(tr("&Keep as Source"), this);
  generate_->setToolTip(tr("Draw a gallery of conditional samples (Ctrl+G)"));
  generate_->setShortcut(QKeySequence(tr("Ctrl+G")));
  reroll_->setToolTip(tr("A new seed, a new gallery (Ctrl+R)"));
  reroll_->setShortcut(QKeySequence(tr("Ctrl+R")));
  keep_->setToolTip(tr("Add the selected sample to your photos"));
  for (auto* b : {generate_, reroll_, keep_}) left->addWidget(b);
  left->addStretch(1);
  layout->addLayout(left);

  gallery_ = new QListWidget(this);
  gallery_->setViewMode(QListView::IconMode);
  gallery_->setIconSize(QSize(128, 128));
  gallery_->setResizeMode(QListView::Adjust);
  gallery_->setMovement(QListView::Static);
  gallery_->setAccessibleName(tr("Sample gallery"));
  layout->addWidget(gallery_, 1);

  // A range the model does not have (no fine blocks in a 32 px model) has nothing to lock.
  auto sync_locks = [this] {
    const auto& layout = controller_->document()->layout();
    for (int r = 0; r < 3; ++r) lock_[r]->setEnabled(rangeInModel(Range(r), layout));
  };
  connect(controller_->document(), &StudioDocument::mixChanged, this, sync_locks);
  sync_locks();

  connect(generate_, &QPushButton::clicked, this, &SampleTab::generate);
  connect(reroll_, &QPushButton::clicked, this, &SampleTab::reroll);
  connect(keep_, &QPushButton::clicked, this, &SampleTab::keepSelected);
  connect(gallery_, &QListWidget::itemDoubleClicked, this, &SampleTab::keepSelected);
  connect(controller_->render(), &RenderScheduler::samplesReady, this, [this](const QVector<QImage>& images, quint64 seed) {
    gallery_->clear();
    for (int i = 0; i < images.size(); ++i) {
      auto icon = QIcon(QPixmap::fromImage(galleryImage(images[i], gallery_->iconSize())));
      auto* item = new QListWidgetItem(icon, tr("seed %1 · #%2").arg(seed).arg(i), gallery_);
      item->setData(Qt::UserRole, i);
    }
    if (gallery_->count() > 0) gallery_->setCurrentRow(0);
  });
  // A model change empties the gallery at once (its samples belong to the old model); the same
  // settings draw a new one when the photos are back.
  connect(controller_->render(), &RenderScheduler::samplesCleared, gallery_, &QListWidget::clear);
}

Ranges SampleTab::lockedRanges() const {
  Ranges set;
  for (Range r : allScales())
    if (lock_[int(r)]->isChecked()) set |= flagOf(r);
  return set;
}

void SampleTab::generate() { controller_->render()->requestSamples(lockedRanges(), quint64(seed_->value()), count_->value()); }

void SampleTab::reroll() {
  seed_->setValue(seed_->value() + 1);
  generate();
}

void SampleTab::keepSelected() {
  auto* item = gallery_->currentItem();
  if (!item) return;
  const int i = item->data(Qt::UserRole).toInt();
  // The sample's own codes, bit for bit (not its picture encoded again), named as in the gallery.
  controller_->render()->keepSample(i, tr("sample %1").arg(item->text()));  // "sample seed 3 · #2"
}

}  // namespace automod::ui
