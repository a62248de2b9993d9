#pragma once
// The right-hand result pane shared by the Mix and Attributes tabs: the image, scaled to the pane,
// over a caption. The image follows the pane's size at once when the window is resized.
#include <QImage>
#include <QLabel>
#include <QString>

class QBoxLayout;
class QWidget;

namespace automod::ui {

/// A label showing one image as large as it fits (aspect kept, at least 256 px), rescaled from the
/// original whenever the label is resized; the layout, not the image, decides its size.
class ScaledImageLabel : public QLabel {
 public:
  explicit ScaledImageLabel(const QString& placeholder, QWidget* parent = nullptr);
  /// Shows `image`, smoothly scaled for a final result, fast for a preview.
  void setImage(const QImage& image, bool smooth);
  const QImage& image() const { return image_; }

 protected:
  void resizeEvent(QResizeEvent* event) override;

 private:
  void rescale();
  QImage image_;
  bool smooth_ = true;
};

struct ResultPane {
  ScaledImageLabel* image = nullptr;
  QLabel* caption = nullptr;
};

/// Adds the pane to `layout` (stretch 3) with a placeholder text, accessible name and tooltip.
ResultPane addResultPane(QBoxLayout* layout, QWidget* parent, const QString& placeholder, const QString& name,
                         const QString& tooltip);

/// Shows `image` in the pane's label, smoothly for a final result, fast for a preview.
void showResultImage(ScaledImageLabel* label, const QImage& image, bool final);

}  // namespace automod::ui
