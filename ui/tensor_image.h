#pragma once
// Conversions between LibTorch tensors and Qt values. Include only from torch TUs (after torch).
#include <torch/types.h>

#include <QImage>
#include <QVector>

namespace automod::ui {

/// uint8 [H, W, C] (C = 1 or 3) → a deep-copied QImage (Grayscale8 or RGB888).
QImage toQImage(const torch::Tensor& image);
/// A QImage → uint8 [H, W, 3].
torch::Tensor fromQImage(const QImage& image);
QVector<float> toFloatVector(const torch::Tensor& t);
torch::Tensor fromFloatVector(const QVector<float>& v);

}  // namespace automod::ui
