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
#include <QPainter>

#include "ui/document.h"

namespace automod::ui {

QStringList localFiles(const QMimeData* mime) {
  QStringList out;
  if (!mime) return out;
  for (const auto& url : mime->urls())
    if (url.isLocalFile()) out << url.toLocalFile();
  return out;
}

PhotoStrip::PhotoStrip(StudioDocument* document, QWidget* parent) : QListWidget(parent), document_(document) {
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
  connect(document_, &StudioDocument::sourcesChanged, this, &PhotoStrip::refresh);
  refresh();  // a window opened on a controller that already holds photos shows them
}

void PhotoStrip::refresh() {
  clear();
  const auto& sources = document_->sources();
  for (int i = 0; i < sources.size(); ++i) {
    const auto& s = sources[i];
    QPixmap pix(192, 96);
    pix.fill(Qt::transparent);
    QPainter p(&pix);
    p.setRenderHint(QPainter::SmoothPixmapTransform);
    if (!s.aligned.isNull()) p.drawImage(QRect(0, 0, 96, 96), s.aligned);
    if (!s.reconstruction.isNull()) p.drawImage(QRect(96, 0, 96, 96), s.reconstruction);
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
    auto* item = new QListWidgetItem(QIcon(pix), measured ? tr("%1\n%2 dB").arg(s.name).arg(s.psnr, 0, 'f', 1) : s.name, this);
    item->setData(Qt::UserRole, i);
    QString tip = tr("%1\nleft: the prepared photo, right: its reconstruction").arg(s.path);
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
  for (int r : rows) document_->removeSource(r);
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
  const auto& sources = document_->sources();
  const int r = row(item);
  menu.addAction(n == 1 ? tr("&Remove %1").arg(r < sources.size() ? sources[r].name : item->text()) : tr("&Remove %1 Photos").arg(n), this,
                 &PhotoStrip::removeSelected);
  menu.exec(event->globalPos());
}

}  // namespace automod::ui
