#include "ui/face_picker.h"

#include <QDialogButtonBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QPushButton>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>

namespace automod::ui {

namespace {
constexpr int kViewSide = 480;
constexpr int kCropSide = 96;
}  // namespace

QImage FacePicker::annotated(const QImage& photo, QSize photoSize, const QVector<QRect>& boxes, int maxSide) {
  if (photo.isNull()) return {};
  const QSize size = photo.size().scaled(maxSide, maxSide, Qt::KeepAspectRatio);
  QImage out = photo.scaled(size, Qt::IgnoreAspectRatio, Qt::SmoothTransformation).convertToFormat(QImage::Format_RGB32);
  const double s = photoSize.width() > 0 ? double(out.width()) / photoSize.width() : 1.0;
  QPainter p(&out);
  p.setRenderHint(QPainter::Antialiasing);
  QFont font = p.font();
  font.setBold(true);
  font.setPixelSize(16);
  p.setFont(font);
  for (int i = 0; i < boxes.size(); ++i) {
    const QRectF r(boxes[i].x() * s, boxes[i].y() * s, boxes[i].width() * s, boxes[i].height() * s);
    p.setPen(QPen(QColor(255, 200, 0), 2));
    p.setBrush(Qt::NoBrush);
    p.drawRect(r);
    const QString label = QString::number(i + 1);
    const QRectF tag(r.left(), std::max(0.0, r.top() - 20), 20, 20);
    p.fillRect(tag, QColor(255, 200, 0));
    p.setPen(Qt::black);
    p.drawText(tag, Qt::AlignCenter, label);
  }
  p.end();
  return out;
}

FacePicker::FacePicker(const QString& name, const QImage& photo, QSize photoSize, const QVector<QRect>& boxes,
                       const QVector<QImage>& crops, QWidget* parent)
    : QDialog(parent), boxes_(boxes), photo_size_(photoSize) {
  setWindowTitle(tr("Choose a Face"));
  setAccessibleName(tr("Face picker"));
  auto* layout = new QVBoxLayout(this);
  auto* text = new QLabel(
      tr("%1 faces found in %2. Which one do you want to use? Click a face, or add them all as separate photos.")
          .arg(boxes.size())
          .arg(name),
      this);
  text->setWordWrap(true);
  layout->addWidget(text);

  photo_view_ = new QLabel(this);
  const QImage view = annotated(photo, photoSize, boxes, kViewSide);
  if (!view.isNull()) {
    photo_view_->setPixmap(QPixmap::fromImage(view));
    view_scale_ = photoSize.width() > 0 ? double(view.width()) / photoSize.width() : 1.0;
  }
  photo_view_->setAlignment(Qt::AlignCenter);
  photo_view_->setToolTip(tr("Click a numbered face to use it"));
  photo_view_->setCursor(Qt::PointingHandCursor);
  photo_view_->installEventFilter(this);
  layout->addWidget(photo_view_, 1);

  auto* row = new QHBoxLayout;
  for (int i = 0; i < boxes.size(); ++i) {
    auto* b = new QToolButton(this);
    b->setToolButtonStyle(Qt::ToolButtonTextUnderIcon);
    b->setText(tr("Face %1").arg(i + 1));
    if (i < crops.size() && !crops[i].isNull())
      b->setIcon(QPixmap::fromImage(crops[i].scaled(kCropSide, kCropSide, Qt::KeepAspectRatio, Qt::SmoothTransformation)));
    b->setIconSize(QSize(kCropSide, kCropSide));
    b->setToolTip(tr("Use face %1 (aligned as the model will see it)").arg(i + 1));
    connect(b, &QToolButton::clicked, this, [this, i] { choose({i}); });
    row->addWidget(b);
    face_buttons_ << b;
  }
  row->addStretch(1);
  layout->addLayout(row);

  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Cancel, this);
  auto* all = buttons->addButton(tr("&All Faces"), QDialogButtonBox::AcceptRole);
  all->setToolTip(tr("Add every face as its own source"));
  all_button_ = all;
  connect(all, &QPushButton::clicked, this, [this] {
    QVector<int> every;
    for (int i = 0; i < boxes_.size(); ++i) every << i;
    choose(every);
  });
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  layout->addWidget(buttons);
}

void FacePicker::choose(const QVector<int>& faces) {
  selected_ = faces;
  accept();
}

bool FacePicker::eventFilter(QObject* watched, QEvent* event) {
  if (watched == photo_view_ && event->type() == QEvent::MouseButtonRelease && !photo_view_->pixmap().isNull()) {
    const auto* me = static_cast<QMouseEvent*>(event);
    // The pixmap is centred in the label: label → view → photo pixels.
    const QSize pix = photo_view_->pixmap().deviceIndependentSize().toSize();
    const QPointF offset((photo_view_->width() - pix.width()) / 2.0, (photo_view_->height() - pix.height()) / 2.0);
    const QPointF p = (me->position() - offset) / view_scale_;
    // The smallest box under the click (a face inside another's box wins).
    int best = -1;
    for (int i = 0; i < boxes_.size(); ++i)
      if (QRectF(boxes_[i]).contains(p) &&
          (best < 0 || boxes_[i].width() * boxes_[i].height() < boxes_[best].width() * boxes_[best].height()))
        best = i;
    if (best >= 0) {
      choose({best});
      return true;
    }
  }
  return QDialog::eventFilter(watched, event);
}

}  // namespace automod::ui
