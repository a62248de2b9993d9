#pragma once
// Conversions between LibTorch tensors and Qt values, and between the document's plain values and
// core's (latents, mix weights, attribute edits). Include only from torch TUs (after torch). No
// computation here: the editing itself is core's (core/edit).
#include <torch/types.h>

#include <QImage>
#include <QVector>

#include <vector>

#include "core/edit/attribute.h"
#include "core/edit/ranges.h"
#include "ui/document.h"

namespace automod::ui {

/// uint8 [H, W, C] (C = 1 or 3) → a deep-copied QImage (Grayscale8 or RGB888).
QImage toQImage(const torch::Tensor& image);
/// A QImage → uint8 [H, W, 3].
torch::Tensor fromQImage(const QImage& image);
QVector<float> toFloatVector(const torch::Tensor& t);
torch::Tensor fromFloatVector(const QVector<float>& v);

/// The sources' codes as [1, D] tensors on `device`.
std::vector<torch::Tensor> toLatents(const QVector<QVector<float>>& latents, const torch::Device& device);
/// The mix's per-block weights as core's blockMixPlan takes them.
std::vector<std::vector<double>> toWeights(const MixSettings& mix);
/// The document's attribute as core's AttributeVector, its scales resolved for these blocks.
AttributeVector toAttributeVector(const AttributeEdit& edit, const BlockLayout& layout);
/// The same, for the blocks of the model the attribute was built with.
AttributeVector toAttributeVector(const AttributeEdit& edit);

}  // namespace automod::ui
