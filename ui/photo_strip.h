#pragma once
// The photo strip: every source with its reconstruction. Accepts photos dragged from the file
// manager (and images), and drags sources out to the Mix tab's range panels.
#include <QListWidget>

namespace automod::ui {

class StudioController;

/// The MIME type of a source dragged from the strip: the source index as text.
inline constexpr const char* kSourceMime = "application/x-automod-source";

class PhotoStrip : public QListWidget {
  Q_OBJECT
 public:
  explicit PhotoStrip(StudioController* controller, QWidget* parent = nullptr);

  /// Rebuilds the items from the document.
  void refresh();
  /// Removes the selected photos from the document (one undo step each); Delete, Backspace and the
  /// context menu's "Remove" call it.
  void removeSelected();
  /// Refines the selected photos (the context menu's "Refine", the button on a tile), or cancels
  /// their refinement when it runs.
  void refineSelected();
  /// Where a tile draws its Refine button (item coordinates of the icon), for clicks and tests.
  static QRect refineButtonRect();

 Q_SIGNALS:
  void filesDropped(const QStringList& paths);
  void imageDropped(const QImage& image);

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dragMoveEvent(QDragMoveEvent* event) override;
  void dropEvent(QDropEvent* event) override;
  void keyPressEvent(QKeyEvent* event) override;
  void contextMenuEvent(QContextMenuEvent* event) override;
  QMimeData* mimeData(const QList<QListWidgetItem*>& items) const override;
  QStringList mimeTypes() const override;
  void mousePressEvent(QMouseEvent* event) override;
  void paintEvent(QPaintEvent* event) override;

 private:
  StudioController* controller_;
};

/// Local files among a drop's URLs.
QStringList localFiles(const class QMimeData* mime);

}  // namespace automod::ui
