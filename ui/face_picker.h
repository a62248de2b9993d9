#pragma once
// The face picker: a photo with several faces shows them numbered (boxes on the photo, and the
// aligned crops as buttons); the user picks one, or "All faces" to add each as its own source.
#include <QDialog>
#include <QImage>
#include <QRect>
#include <QVector>

class QAbstractButton;
class QLabel;

namespace automod::ui {

class FacePicker : public QDialog {
  Q_OBJECT
 public:
  /// `photo` may be a downscaled copy of the photo of `photoSize`; boxes are in photo pixels.
  FacePicker(const QString& name, const QImage& photo, QSize photoSize, const QVector<QRect>& boxes,
             const QVector<QImage>& crops, QWidget* parent = nullptr);

  /// The faces chosen (indices into the boxes), empty until accepted.
  QVector<int> selectedFaces() const { return selected_; }
  int faceCount() const { return boxes_.size(); }
  QAbstractButton* faceButton(int index) const { return face_buttons_.value(index); }
  QAbstractButton* allFacesButton() const { return all_button_; }
  QLabel* photoView() const { return photo_view_; }

  /// The photo with the numbered boxes, scaled to fit `maxSide`.
  static QImage annotated(const QImage& photo, QSize photoSize, const QVector<QRect>& boxes, int maxSide);

  void choose(const QVector<int>& faces);

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  QVector<QRect> boxes_;
  QSize photo_size_;
  double view_scale_ = 1;  // photo pixels → view pixels
  QVector<QAbstractButton*> face_buttons_;
  QAbstractButton* all_button_ = nullptr;
  QLabel* photo_view_ = nullptr;
  QVector<int> selected_;
};

}  // namespace automod::ui
