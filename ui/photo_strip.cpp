#include "ui/photo_strip.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include <QContextMenuEvent>
#include <QDragEnterEvent>
#include <QFileInfo>
#include <QKeyEvent>
#include <QMenu>
#include <QMimeData>
#include <QMouseEvent>
#include <QPainter>

#include "ui/document.h"
#include "ui/photo_intake.h"
#include "ui/studio_controller.h"

namespace automod::ui {

QStringList localFiles(const QMimeData* mime) {
  QStringList out;
  if (!mime) return out;
  for (const auto& url : mime->urls())
    if (url.isLocalFile()) out << url.toLocalFile();
  return out;
}

namespace {
constexpr int kTileHeight = 96, kTileWidth = 192;
}

QRect PhotoStrip::refineButtonRect() { return QRect(kTileWidth - 24, kTileHeight - 24, 22, 22); }

PhotoStrip::PhotoStrip(StudioController* controller, QWidget* parent)
    : QListWidget(parent), controller_(controller) {
  setViewMode(QListView::IconMode);
  setFlow(QListView::LeftToRight);
  setWrapping(false);
  setIconSize(QSize(192, 96));
  setMovement(QListView::Static);
  setResizeMode(QListView::Adjust);
  setDragEnabled(true);
  setAcceptDrops(true);
  // setMovement(Static) turned the viewport's drops off; photos from the file manager land there.
  viewport()->setAcceptDrops(true);
  setDropIndicatorShown(true);
  setDragDropMode(QAbstractItemView::DragDrop);
  setFixedHeight(150);
  setToolTip(tr("Your photos with their reconstructions. Drop photos here, or drag one onto a range of the Mix "
                "tab. Delete removes the selected photo (undoable)."));
  setSelectionMode(QAbstractItemView::ExtendedSelection);
  setAccessibleName(tr("Photo strip"));
  connect(controller_->document(), &StudioDocument::sourcesChanged, this, &PhotoStrip::refresh);
  connect(controller_->photos(), &PhotoIntake::refineProgressChanged, this, &PhotoStrip::refresh);
  connect(controller_->photos(), &PhotoIntake::refineFinished, this, &PhotoStrip::refresh);
  refresh();  // a window opened on a controller that already holds photos shows them
}

void PhotoStrip::refresh() {
  clear();
  const auto& sources = controller_->document()->sources();
  auto* intake = controller_->photos();
  for (int i = 0; i < sources.size(); ++i) {
    const auto& s = sources[i];
    QPixmap pix(192, 96);
    pix.fill(Qt::transparent);
    QPainter p(&pix);
    p.setRenderHint(QPainter::SmoothPixmapTransform);
    if (!s.aligned.isNull()) p.drawImage(QRect(0, 0, 96, 96), s.aligned);
    if (!s.reconstruction.isNull()) p.drawImage(QRect(96, 0, 96, 96), s.reconstruction);
    const bool refining = intake->refining(s.id);
    if (refining) {  // the refinement's progress across the reconstruction
      const double f = intake->refineProgress(s.id);
      p.fillRect(QRect(96, kTileHeight - 6, 96, 6), QColor(0, 0, 0, 120));
      p.fillRect(QRect(96, kTileHeight - 6, int(96 * f), 6), QColor(80, 170, 255));
    }
    if (s.encoded) {  // the Refine button (a stop sign while it runs)
      const QRect b = refineButtonRect();
      p.setRenderHint(QPainter::Antialiasing);
      p.setPen(Qt::NoPen);
      p.setBrush(refining ? QColor(200, 60, 60, 220) : QColor(40, 40, 40, 170));
      p.drawRoundedRect(b, 4, 4);
      p.setPen(Qt::white);
      QFont font = p.font();
      font.setBold(true);
      font.setPixelSize(12);
      p.setFont(font);
      p.drawText(b, Qt::AlignCenter, refining ? QStringLiteral("■") : QStringLiteral("R"));
    }
    if (!s.note.isEmpty()) {  // a note to read (no face: center-cropped; a small face): a badge
      p.setRenderHint(QPainter::Antialiasing);
      p.setPen(Qt::NoPen);
      p.setBrush(QColor(255, 180, 0));
      p.drawEllipse(QRectF(3, 3, 18, 18));
      p.setPen(Qt::black);
      QFont font = p.font();
      font.setBold(true);
      font.setPixelSize(13);
      p.setFont(font);
      p.drawText(QRectF(3, 3, 18, 18), Qt::AlignCenter, QStringLiteral("!"));
    }
    p.end();
    // The name, and how well the model reconstructs the photo (PSNR; SSIM in the tooltip).
    const bool measured = std::isfinite(s.psnr);
    QString caption = measured ? tr("%1\n%2 dB").arg(s.name).arg(s.psnr, 0, 'f', 1) : s.name;
    if (!s.encoded) caption = tr("%1\nencoding…").arg(s.name);
    auto* item = new QListWidgetItem(QIcon(pix), caption, this);
    item->setData(Qt::UserRole, i);
    QString tip = tr("%1\nleft: the prepared photo, right: its reconstruction").arg(s.path.isEmpty() ? s.name : s.path);
    if (s.refineSteps > 0) tip += tr("\nrefined (%1 steps): one code per decoder block").arg(s.refineSteps);
    tip += refining ? tr("\nrefining… (click ■ to stop)") : tr("\nR: refine the reconstruction beyond one encoder pass");
    if (measured)
      tip += tr("\nreconstruction: PSNR %1 dB, SSIM %2").arg(s.psnr, 0, 'f', 1).arg(s.ssim, 0, 'f', 3);
    if (!s.note.isEmpty()) tip += "\n" + s.note;
    item->setToolTip(tip);
  }
}

QStringList PhotoStrip::mimeTypes() const { return {kSourceMime, "text/uri-list"}; }

QMimeData* PhotoStrip::mimeData(const QList<QListWidgetItem*>& items) const {
  auto* mime = new QMimeData;
  if (!items.isEmpty()) mime->setData(kSourceMime, QByteArray::number(items.front()->data(Qt::UserRole).toInt()));
  return mime;
}

void PhotoStrip::dragEnterEvent(QDragEnterEvent* event) {
  if (event->mimeData()->hasUrls() || event->mimeData()->hasImage())
    event->acceptProposedAction();
  else
    event->ignore();
}

void PhotoStrip::dragMoveEvent(QDragMoveEvent* event) {
  if (event->mimeData()->hasUrls() || event->mimeData()->hasImage())
    event->acceptProposedAction();
  else
    event->ignore();
}

void PhotoStrip::dropEvent(QDropEvent* event) {
  const auto files = localFiles(event->mimeData());
  if (!files.isEmpty()) {
    Q_EMIT filesDropped(files);
    event->acceptProposedAction();
  } else if (event->mimeData()->hasImage()) {
    Q_EMIT imageDropped(qvariant_cast<QImage>(event->mimeData()->imageData()));
    event->acceptProposedAction();
  } else {
    event->ignore();
  }
}

void PhotoStrip::removeSelected() {
  QList<int> rows;
  for (const auto* item : selectedItems()) rows << row(item);
  // From the last, so that the indices still to remove stay valid.
  std::sort(rows.begin(), rows.end(), std::greater<>());
  for (int r : rows) controller_->document()->removeSource(r);
}

void PhotoStrip::refineSelected() {
  auto* intake = controller_->photos();
  const auto& sources = controller_->document()->sources();
  for (const auto* item : selectedItems()) {
    const int r = row(item);
    if (r < 0 || r >= sources.size()) continue;
    if (intake->refining(sources[r].id)) {
      intake->cancelRefine(r);
    } else {
      QString why;
      if (!intake->refine(r, 0, &why)) setToolTip(why);
    }
  }
}

void PhotoStrip::mousePressEvent(QMouseEvent* event) {
  // The Refine button drawn on a tile's icon.
  if (auto* item = itemAt(event->position().toPoint()); item && event->button() == Qt::LeftButton) {
    const QRect icon = visualItemRect(item);
    const QPoint inIcon = event->position().toPoint() - icon.topLeft() -
                          QPoint((icon.width() - iconSize().width()) / 2, 0);
    if (refineButtonRect().contains(inIcon)) {
      clearSelection();
      item->setSelected(true);
      refineSelected();
      event->accept();
      return;
    }
  }
  QListWidget::mousePressEvent(event);
}

void PhotoStrip::paintEvent(QPaintEvent* event) {
  QListWidget::paintEvent(event);
  if (count() > 0) return;
  // The first thing a new user sees: what to do with this empty strip.
  QPainter p(viewport());
  p.setPen(palette().color(QPalette::PlaceholderText));
  p.drawText(viewport()->rect().adjusted(12, 0, -12, 0), Qt::AlignCenter | Qt::TextWordWrap,
             tr("Drop photos here (or File → Open Photos, Ctrl+O, or paste an image). Each is aligned, encoded and "
                "shown beside its reconstruction; then mix their scales in the Mix tab."));
}

void PhotoStrip::keyPressEvent(QKeyEvent* event) {
  if ((event->key() == Qt::Key_Delete || event->key() == Qt::Key_Backspace) && !selectedItems().isEmpty()) {
    removeSelected();
    event->accept();
    return;
  }
  QListWidget::keyPressEvent(event);
}

void PhotoStrip::contextMenuEvent(QContextMenuEvent* event) {
  auto* item = itemAt(event->pos());
  if (!item) return;
  if (!item->isSelected()) {
    clearSelection();
    item->setSelected(true);
  }
  QMenu menu(this);
  const int n = int(selectedItems().size());
  const auto& sources = controller_->document()->sources();
  const int r = row(item);
  const bool running = r < sources.size() && controller_->photos()->refining(sources[r].id);
  menu.addAction(running ? tr("&Stop Refining") : tr("Re&fine"), this, &PhotoStrip::refineSelected)
      ->setToolTip(tr("Optimise the photo's codes (one per decoder block) beyond the encoder's single pass"));
  menu.addAction(n == 1 ? tr("&Remove %1").arg(r < sources.size() ? sources[r].name : item->text()) : tr("&Remove %1 Photos").arg(n), this,
                 &PhotoStrip::removeSelected);
  menu.exec(event->globalPos());
}

}  // namespace automod::ui
