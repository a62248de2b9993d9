#include <torch/torch.h>

#include "ui/tensor_image.h"

#include <QBuffer>

#include "core/util/error.h"

namespace automod::ui {

QImage toQImage(const torch::Tensor& image) {
  auto t = image.to(torch::kCPU).to(torch::kUInt8).contiguous();
  TORCH_CHECK(t.dim() == 3 && (t.size(2) == 1 || t.size(2) == 3), "toQImage needs uint8 [H, W, 1|3]");
  const int h = int(t.size(0)), w = int(t.size(1)), c = int(t.size(2));
  QImage img(w, h, c == 1 ? QImage::Format_Grayscale8 : QImage::Format_RGB888);
  for (int y = 0; y < h; ++y) std::memcpy(img.scanLine(y), t.data_ptr<uint8_t>() + int64_t(y) * w * c, size_t(w) * c);
  return img;
}

torch::Tensor fromQImage(const QImage& image) {
  QImage rgb = image.convertToFormat(QImage::Format_RGB888);
  auto t = torch::empty({rgb.height(), rgb.width(), 3}, torch::kUInt8);
  for (int y = 0; y < rgb.height(); ++y)
    std::memcpy(t.data_ptr<uint8_t>() + int64_t(y) * rgb.width() * 3, rgb.constScanLine(y), size_t(rgb.width()) * 3);
  return t;
}

QVector<float> toFloatVector(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).to(torch::kFloat).contiguous().flatten();
  return QVector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

torch::Tensor fromFloatVector(const QVector<float>& v) {
  return torch::from_blob(const_cast<float*>(v.data()), {v.size()}, torch::kFloat).clone();
}

Source toSourceView(const EditSource& s) {
  Source v;
  v.id = s.id;
  v.name = QString::fromStdString(s.name);
  v.path = s.fromPhotoFile() ? QString::fromStdString(s.spec.path.string()) : QString();
  v.fromPhoto = s.fromPhotoFile();
  v.face = s.fromPhotoFile() && !s.spec.center_crop ? std::max(s.spec.face, 0) : -1;
  if (s.picture.defined()) v.aligned = toQImage(s.picture);
  if (s.reconstruction.defined()) v.reconstruction = toQImage(s.reconstruction);
  // The encoder's code (what an attribute's exemplars average), else the first block's.
  if (s.z.defined())
    v.latent = toFloatVector(s.z);
  else if (s.hasCodes())
    v.latent = toFloatVector(s.codes[0]);
  v.encoded = s.hasCodes();
  v.refineSteps = s.refined() ? s.refine.value("steps", 0) : 0;
  v.note = QString::fromStdString(s.note);
  v.psnr = s.psnr;
  v.ssim = s.ssim;
  return v;
}

std::string toPngBase64(const torch::Tensor& image) {
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  toQImage(image).save(&buffer, "PNG");
  return bytes.toBase64().toStdString();
}

torch::Tensor fromPngBase64(const std::string& text) {
  QImage image;
  if (!image.loadFromData(QByteArray::fromBase64(QByteArray::fromStdString(text)), "PNG")) return {};
  if (image.format() == QImage::Format_Grayscale8) {
    auto t = torch::empty({image.height(), image.width(), 1}, torch::kUInt8);
    for (int y = 0; y < image.height(); ++y)
      std::memcpy(t.data_ptr<uint8_t>() + int64_t(y) * image.width(), image.constScanLine(y), size_t(image.width()));
    return t;
  }
  return fromQImage(image);
}

AttributeVector toAttributeVector(const AttributeEdit& edit, const BlockLayout& layout) {
  AttributeVector a;
  a.name = edit.name.toStdString();
  for (const auto& p : edit.positives) a.positives.push_back(p.toStdString());
  for (const auto& n : edit.negatives) a.negatives.push_back(n.toStdString());
  a.resolution = edit.resolution;
  a.blocks = edit.blocks;
  a.latent_dim = edit.vector.size();
  a.vector = fromFloatVector(edit.vector);
  if (!edit.scales.trimmed().isEmpty()) a.ranges = parseBlockRanges(edit.scales.toStdString(), layout);
  return a;
}

AttributeVector toAttributeVector(const AttributeEdit& edit) {
  int implied = 0;
  try {
    implied = ModelConfig::blockForResolution(edit.resolution) + 1;
  } catch (const std::exception&) {
    throw Error("the attribute's model resolution " + std::to_string(edit.resolution) + " is not 4·2^k");
  }
  return toAttributeVector(edit, BlockLayout::forResolution(edit.resolution, edit.blocks == implied + 1));
}

EditAttribute toEditAttribute(const AttributeEdit& edit, const BlockLayout& layout) {
  EditAttribute a;
  a.vector = edit.resolution > 0 ? toAttributeVector(edit) : toAttributeVector(edit, layout);
  if (!edit.scales.trimmed().isEmpty() && layout.size() > 0)
    a.vector.ranges = parseBlockRanges(edit.scales.toStdString(), layout);
  a.strength = edit.strength;
  return a;
}

AttributeEdit toAttributeEdit(const EditAttribute& attribute) {
  const auto& v = attribute.vector;
  AttributeEdit e;
  e.name = QString::fromStdString(v.name);
  if (v.vector.defined()) e.vector = toFloatVector(v.vector);
  e.scales = QString::fromStdString(rangesToString(v.ranges));
  e.resolution = v.resolution;
  e.blocks = v.blocks;
  for (const auto& p : v.positives) e.positives << QString::fromStdString(p);
  for (const auto& n : v.negatives) e.negatives << QString::fromStdString(n);
  e.strength = attribute.strength;
  return e;
}

std::string scalesString(Ranges ranges) {
  if ((ranges & allRanges()) == allRanges()) return {};
  std::string out;
  for (Range r : allScales())
    if (ranges.testFlag(flagOf(r))) out += (out.empty() ? "" : ",") + std::string(scaleName(r));
  return out;
}

Ranges rangesOf(const std::string& scales, const BlockLayout& layout) {
  if (scales.empty()) return allRanges();
  if (layout.size() < 1) return {};
  std::vector<BlockRange> parsed;
  try {
    parsed = parseBlockRanges(scales, layout);
  } catch (const std::exception&) {
    return {};
  }
  Ranges set;
  for (Range r : allScales()) {
    if (!hasScale(r, layout)) continue;
    const auto range = scaleRange(r, layout);
    bool all = true;
    for (int b = range.first; b <= range.last; ++b) all = all && rangesContain(parsed, b);
    if (all) set |= flagOf(r);
  }
  return set;
}

EditMorph toEditMorph(const MorphSettings& morph, const BlockLayout&) {
  EditMorph m;
  m.a = morph.a;
  m.b = morph.b;
  m.scales = scalesString(morph.moving);
  m.t = morph.t;
  m.frames = morph.frames;
  m.fps = morph.fps;
  return m;
}

MorphSettings toMorphSettings(const EditMorph& morph, const BlockLayout& layout) {
  MorphSettings m;
  m.a = morph.a;
  m.b = morph.b;
  m.moving = rangesOf(morph.scales, layout);
  m.t = morph.t;
  m.frames = morph.frames;
  m.fps = morph.fps;
  return m;
}

}  // namespace automod::ui
