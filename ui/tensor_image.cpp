#include <torch/torch.h>

#include "ui/tensor_image.h"

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

}  // namespace automod::ui
