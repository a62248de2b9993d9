#pragma once
// The right-hand result pane shared by the Mix and Attributes tabs: the image, scaled to the pane,
// over a caption.
#include <QString>

class QBoxLayout;
class QImage;
class QLabel;
class QWidget;

namespace automod::ui {

struct ResultPane {
  QLabel* image = nullptr;
  QLabel* caption = nullptr;
};

/// Adds the pane to `layout` (stretch 3) with a placeholder text, accessible name and tooltip.
ResultPane addResultPane(QBoxLayout* layout, QWidget* parent, const QString& placeholder, const QString& name,
                         const QString& tooltip);

/// Shows `image` scaled to the pane (at least 256 px), smoothly for a final result, fast for a preview.
void showResultImage(QLabel* label, const QImage& image, bool final);

}  // namespace automod::ui
