#include "ui/result_pane.h"

#include <QBoxLayout>
#include <QPixmap>
#include <QResizeEvent>

#include <algorithm>

namespace automod::ui {

ScaledImageLabel::ScaledImageLabel(const QString& placeholder, QWidget* parent) : QLabel(placeholder, parent) {
  setAlignment(Qt::AlignCenter);
  setWordWrap(true);
  setMinimumSize(256, 256);
  // The pixmap's size must not feed back into the layout (it would only ever grow).
  setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Ignored);
}

void ScaledImageLabel::setImage(const QImage& image, bool smooth) {
  image_ = image;
  smooth_ = smooth;
  rescale();
}

void ScaledImageLabel::resizeEvent(QResizeEvent* event) {
  QLabel::resizeEvent(event);
  if (!image_.isNull()) rescale();
}

void ScaledImageLabel::rescale() {
  if (image_.isNull()) return;
  const int side = std::max(256, std::min(width(), height()));
  setPixmap(QPixmap::fromImage(image_).scaled(side, side, Qt::KeepAspectRatio,
                                              smooth_ ? Qt::SmoothTransformation : Qt::FastTransformation));
}

ResultPane addResultPane(QBoxLayout* layout, QWidget* parent, const QString& placeholder, const QString& name,
                         const QString& tooltip) {
  ResultPane pane;
  auto* column = new QVBoxLayout;
  pane.image = new ScaledImageLabel(placeholder, parent);
  pane.image->setAccessibleName(name);
  pane.image->setToolTip(tooltip);
  pane.caption = new QLabel(parent);
  pane.caption->setAlignment(Qt::AlignCenter);
  column->addWidget(pane.image, 1);
  column->addWidget(pane.caption);
  layout->addLayout(column, 3);
  return pane;
}

void showResultImage(ScaledImageLabel* label, const QImage& image, bool final) { label->setImage(image, final); }

}  // namespace automod::ui
