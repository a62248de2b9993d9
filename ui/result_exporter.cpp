#include <torch/torch.h>

#include "ui/result_exporter.h"

#include <QFileInfo>
#include <QFontMetrics>
#include <QImageWriter>
#include <QPainter>

#include <algorithm>
#include <cmath>

#include "core/align/face.h"
#include "core/align/photo.h"
#include "core/io/image.h"
#include "core/util/error.h"
#include "core/edit/edit_state.h"
#include "ui/render_scheduler.h"
#include "ui/studio_controller.h"
#include "ui/tensor_image.h"

namespace automod::ui {

namespace {
constexpr int kGap = 4;

/// `image` at `side` × `side` (unchanged when it already is, or when side ≤ 0).
QImage atSide(const QImage& image, int side) {
  if (side <= 0 || image.isNull() || (image.width() == side && image.height() == side)) return image;
  return image.scaled(side, side, Qt::KeepAspectRatio, Qt::SmoothTransformation);
}

bool writeImage(const QImage& image, const QString& path, QString* error) {
  const QByteArray suffix = QFileInfo(path).suffix().toLower().toLatin1();
  if (suffix.isEmpty() || !QImageWriter::supportedImageFormats().contains(suffix == "jpg" ? "jpeg" : suffix)) {
    if (error)
      *error = QObject::tr("'%1' names no image format; end the name with .png, .jpg, .webp, .bmp or .tif")
                   .arg(QFileInfo(path).fileName());
    return false;
  }
  QImageWriter writer(path);
  if (!writer.write(image)) {
    if (error) *error = writer.errorString();
    return false;
  }
  return true;
}

/// A caption band of one line under (or over) images: the text elided to `width`.
void drawCaption(QPainter& p, const QRect& box, const QString& text) {
  p.setPen(Qt::black);
  const QFontMetrics fm(p.font());
  p.drawText(box, Qt::AlignHCenter | Qt::AlignVCenter, fm.elidedText(text, Qt::ElideMiddle, box.width() - 4));
}

/// Height of a caption line in a grid whose cells are `cell` px wide.
int captionHeight(const QFont& font) { return QFontMetrics(font).height() + 6; }

/// The grid's font: readable in cells of `cell` px (at least 9 px, at most 14 px).
QFont gridFont(int cell) {
  QFont f;
  f.setPixelSize(std::clamp(cell / 10, 9, 14));
  return f;
}
}  // namespace

ResultExporter::ResultExporter(StudioController* controller) : QObject(controller), controller_(controller) {}

QImage ResultExporter::result() const { return controller_->render()->result(); }

QList<int> ResultExporter::exportSides() const {
  QList<int> sides;
  const QImage result_ = result();
  const int native = result_.isNull() ? controller_->modelResolution() : result_.width();
  if (native <= 0) return sides;
  sides << native;
  for (int side : {256, 512, 1024})
    if (side > native) sides << side;
  return sides;
}

bool ResultExporter::exportResult(const QString& path, QString* error) const {
  return exportResult(path, 0, error);
}

bool ResultExporter::exportResult(const QString& path, int side, QString* error) const {
  const QImage result_ = result();
  if (result_.isNull()) {
    if (error) *error = tr("there is no result yet");
    return false;
  }
  return writeImage(atSide(result_, side), path, error);
}

std::optional<PhotoOrigin> ResultExporter::sourceOrigin(int index) const {
  const auto& state = controller_->document()->state();
  if (index < 0 || index >= static_cast<int>(state.sources.size())) return std::nullopt;
  const auto& s = state.sources[static_cast<size_t>(index)];
  if (!s.fromPhotoFile() || !s.transform) return std::nullopt;
  PhotoOrigin o;
  o.path = QString::fromStdString(s.spec.path.string());
  o.face = s.spec.center_crop ? -1 : s.spec.face;
  o.photoSize = QSize(s.transform->photo_width, s.transform->photo_height);
  o.transform = QByteArray::fromStdString(s.transform->toJson().dump());
  return o;
}

int ResultExporter::pasteBackSource() const {
  const auto& sources = controller_->document()->sources();
  const auto& weights = controller_->document()->mix().weights;
  int best = -1;
  double best_weight = -1;
  for (int i = 0; i < sources.size(); ++i) {
    if (!sourceOrigin(i)) continue;
    const double w = !weights.isEmpty() && i < weights[0].size() ? weights[0][i] : 0.0;
    if (w > best_weight) {
      best = i;
      best_weight = w;
    }
  }
  return best;
}

QImage ResultExporter::pastedBack(int source, QString* error) const {
  auto fail = [&](const QString& why) {
    if (error) *error = why;
    return QImage();
  };
  const QImage result_ = result();
  if (result_.isNull()) return fail(tr("there is no result yet"));
  if (source < 0) source = pasteBackSource();
  const auto origin = sourceOrigin(source);
  if (!origin) return fail(tr("the result has no originating photo (add a photo, not a project's source)"));
  try {
    const auto photo = readImage(origin->path.toStdString(), 3);
    const auto t = AlignTransform::fromJson(nlohmann::json::parse(origin->transform.toStdString()));
    if (photo.size(1) != t.photo_width || photo.size(0) != t.photo_height)
      return fail(tr("%1 has changed since it was added").arg(QFileInfo(origin->path).fileName()));
    return toQImage(pasteBack(photo, fromQImage(result_), t));
  } catch (const std::exception& e) {
    return fail(QString::fromStdString(errorMessage(e)));
  }
}

bool ResultExporter::exportPastedBack(const QString& path, int source, QString* error) const {
  const QImage image = pastedBack(source, error);
  if (image.isNull()) return false;
  return writeImage(image, path, error);
}

namespace {
/// Where a mix grid puts things: cells of at least 128 px, a caption band on top, row labels left.
struct MixGridGeometry {
  int cell = 0, caption = 0, label_width = 0, columns = 0;
  QFont font;
  QRect cellRect(int column, int row) const {
    const int x = label_width + column * (cell + kGap);
    if (column == columns - 1) return {x, caption + (cell + kGap) / 2, cell, cell};  // the result
    return {x, caption + row * (cell + kGap), cell, cell};
  }
  QSize size() const { return {label_width + columns * cell + (columns - 1) * kGap, caption + 2 * cell + kGap}; }
};

MixGridGeometry mixGridGeometry(int image_side, int sources) {
  MixGridGeometry g;
  g.cell = std::max(128, image_side);
  g.font = gridFont(g.cell);
  g.caption = captionHeight(g.font);
  g.label_width = QFontMetrics(g.font).horizontalAdvance(QObject::tr("reconstruction")) + 8;
  g.columns = sources + 1;
  return g;
}
}  // namespace

QRect ResultExporter::mixGridCell(int column, int row) const {
  const QImage result_ = result();
  const auto& sources = controller_->document()->sources();
  if (result_.isNull() || sources.isEmpty()) return {};
  return mixGridGeometry(result_.width(), int(sources.size())).cellRect(column, row);
}

QImage ResultExporter::mixGrid() const {
  const QImage result_ = result();
  const auto& sources = controller_->document()->sources();
  if (sources.isEmpty() || result_.isNull()) return {};
  const int n = sources.size();
  const auto g = mixGridGeometry(result_.width(), n);
  // Columns: each photo over its reconstruction, captioned with its name; the result at the right,
  // between the two rows. Row labels at the left.
  QImage grid(g.size(), QImage::Format_RGB888);
  grid.fill(Qt::white);
  QPainter p(&grid);
  p.setFont(g.font);
  p.setRenderHint(QPainter::SmoothPixmapTransform);
  p.setRenderHint(QPainter::TextAntialiasing);
  p.setPen(Qt::black);
  const QRect photo_row = g.cellRect(0, 0), recon_row = g.cellRect(0, 1);
  p.drawText(QRect(0, photo_row.top(), g.label_width, g.cell), Qt::AlignRight | Qt::AlignVCenter, tr("photo") + "  ");
  p.drawText(QRect(0, recon_row.top(), g.label_width, g.cell), Qt::AlignRight | Qt::AlignVCenter,
             tr("reconstruction") + "  ");
  for (int i = 0; i < n; ++i) {
    const QRect top = g.cellRect(i, 0);
    drawCaption(p, QRect(top.left(), 0, g.cell, g.caption), sources[i].name);
    if (!sources[i].aligned.isNull()) p.drawImage(top, sources[i].aligned);
    if (!sources[i].reconstruction.isNull()) p.drawImage(g.cellRect(i, 1), sources[i].reconstruction);
  }
  const QRect result = g.cellRect(n, 0);
  drawCaption(p, QRect(result.left(), result.top() - g.caption, g.cell, g.caption), tr("result"));
  p.drawImage(result, result_);
  p.end();
  return grid;
}

QImage ResultExporter::sampleGrid(int columns) const {
  const auto samples_ = controller_->render()->samples();
  const quint64 samples_seed_ = controller_->render()->samplesSeed();
  if (samples_.isEmpty()) return {};
  const int n = samples_.size();
  if (columns <= 0) columns = int(std::ceil(std::sqrt(double(n))));
  columns = std::min(columns, n);
  const int rows = (n + columns - 1) / columns;
  const int s = std::max(128, samples_.front().width());
  const QFont font = gridFont(s);
  const int caption = captionHeight(font);
  // Each sample captioned as in the Sample tab's gallery (seed and number), so that it can be drawn
  // again there.
  QImage grid(columns * s + (columns - 1) * kGap, rows * (s + caption) + (rows - 1) * kGap, QImage::Format_RGB888);
  grid.fill(Qt::white);
  QPainter p(&grid);
  p.setFont(font);
  p.setRenderHint(QPainter::SmoothPixmapTransform);
  p.setRenderHint(QPainter::TextAntialiasing);
  for (int i = 0; i < n; ++i) {
    const int x = (i % columns) * (s + kGap), y = (i / columns) * (s + caption + kGap);
    p.drawImage(QRect(x, y, s, s), samples_[i]);
    drawCaption(p, QRect(x, y + s, s, caption), tr("seed %1 · #%2").arg(samples_seed_).arg(i));
  }
  p.end();
  return grid;
}

}  // namespace automod::ui
