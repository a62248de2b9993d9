#include "ui/result_pane.h"

#include <QBoxLayout>
#include <QImage>
#include <QLabel>
#include <QPixmap>

#include <algorithm>

namespace automod::ui {

ResultPane addResultPane(QBoxLayout* layout, QWidget* parent, const QString& placeholder, const QString& name,
                         const QString& tooltip) {
  ResultPane pane;
  auto* column = new QVBoxLayout;
  pane.image = new QLabel(placeholder, parent);
  pane.image->setAlignment(Qt::AlignCenter);
  pane.image->setWordWrap(true);
  pane.image->setMinimumSize(256, 256);
  pane.image->setAccessibleName(name);
  pane.image->setToolTip(tooltip);
  pane.caption = new QLabel(parent);
  pane.caption->setAlignment(Qt::AlignCenter);
  column->addWidget(pane.image, 1);
  column->addWidget(pane.caption);
  layout->addLayout(column, 3);
  return pane;
}

void showResultImage(QLabel* label, const QImage& image, bool final) {
  const int side = std::max(256, std::min(label->width(), label->height()));
  label->setPixmap(QPixmap::fromImage(image).scaled(side, side, Qt::KeepAspectRatio,
                                                    final ? Qt::SmoothTransformation : Qt::FastTransformation));
}

}  // namespace automod::ui
