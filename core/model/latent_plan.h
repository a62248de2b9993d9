#pragma once
// A LatentPlan gives each decoder block its own latent (docs/design.md §2): per-block modulation is what
// mixing, conditional sampling, the layer loss L_j and incremental decoding are built on.
#include <torch/types.h>

#include <vector>

namespace automod {

struct LatentPlan {
  /// latents[b] is an [N, latent_dim] batch for decoder block b.
  std::vector<torch::Tensor> latents;

  LatentPlan() = default;
  explicit LatentPlan(std::vector<torch::Tensor> per_block) : latents(std::move(per_block)) {}
  /// The same latent batch in every one of `blocks` blocks.
  static LatentPlan uniform(const torch::Tensor& z, int blocks);
  /// `a` for blocks < split, `b` for blocks >= split (style mixing at split block j).
  static LatentPlan mixed(const torch::Tensor& a, const torch::Tensor& b, int split, int blocks);

  int size() const { return static_cast<int>(latents.size()); }
  const torch::Tensor& operator[](int block) const { return latents.at(block); }
  torch::Tensor& operator[](int block) { return latents.at(block); }
  int64_t batch() const { return latents.empty() ? 0 : latents.front().size(0); }
  /// The first block whose latent differs (not the same tensor and not equal in value) from
  /// `other`'s; size() when none differ. Incremental decoding restarts there.
  int firstDifferentBlock(const LatentPlan& other) const;
  LatentPlan to(const torch::Device& device) const;
};

}  // namespace automod
