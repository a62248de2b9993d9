#include "core/data/dataset.h"

#include <torch/nn/functional.h>

#include "core/util/error.h"

namespace automod {
namespace F = torch::nn::functional;

TensorImageDataset::TensorImageDataset(torch::Tensor images_u8, int64_t held_out, std::string description)
    : images_(std::move(images_u8)), held_out_(held_out), description_(std::move(description)) {
  TORCH_CHECK(images_.dim() == 4 && images_.scalar_type() == torch::kUInt8 && images_.size(2) == images_.size(3),
              "TensorImageDataset expects uint8 [N, C, S, S] images");
  if (held_out_ < 0 || held_out_ >= images_.size(0))
    throw Error("the data set has " + std::to_string(images_.size(0)) + " images: too few for a held-out split of " +
                std::to_string(held_out_) + " plus training images");
}

const torch::Tensor& TensorImageDataset::atResolution(int resolution) {
  for (auto& [r, t] : by_resolution_)
    if (r == resolution) return t;
  const int64_t s = images_.size(2);
  if (resolution > s)
    throw Error("the images are " + std::to_string(s) + " px, smaller than the training resolution " +
                std::to_string(resolution) + " px");
  torch::Tensor t = images_;
  if (resolution != s) {
    auto f = F::interpolate(images_.to(torch::kFloat32),
                            F::InterpolateFuncOptions().size(std::vector<int64_t>{resolution, resolution}).mode(torch::kArea));
    t = f.round().clamp(0, 255).to(torch::kUInt8).contiguous();
  }
  by_resolution_.emplace_back(resolution, t);
  return by_resolution_.back().second;
}

torch::Tensor TensorImageDataset::batch(const std::vector<int64_t>& indices, int resolution) {
  auto idx = torch::tensor(indices, torch::kInt64);
  TORCH_CHECK(indices.empty() || (idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < size()),
              "training index out of range");
  return atResolution(resolution).index_select(0, idx);
}

torch::Tensor TensorImageDataset::heldOut(const std::vector<int64_t>& indices, int resolution) {
  auto idx = torch::tensor(indices, torch::kInt64);
  TORCH_CHECK(indices.empty() || (idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < held_out_),
              "held-out index out of range");
  return atResolution(resolution).index_select(0, idx + size());
}

}  // namespace automod
