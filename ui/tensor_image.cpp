#include <torch/torch.h>

#include "ui/tensor_image.h"

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

std::vector<torch::Tensor> toLatents(const QVector<QVector<float>>& latents, const torch::Device& device) {
  std::vector<torch::Tensor> out;
  for (const auto& z : latents) out.push_back(fromFloatVector(z).unsqueeze(0).to(device));
  return out;
}

std::vector<std::vector<double>> toWeights(const MixSettings& mix) {
  std::vector<std::vector<double>> out;
  for (const auto& block : mix.weights) out.emplace_back(block.begin(), block.end());
  return out;
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

}  // namespace automod::ui
