#pragma once
// A LatentPlan gives each decoder block its own latent (docs/design.md §2): per-block modulation is what
// mixing, conditional sampling, the layer loss L_j and incremental decoding are built on.
//
// A plan may also carry style offsets (docs/refinement.md): per block, one row per image of values
// added to the styles the block's AdaIN layers compute from its latent, s = A z + c + Δ. Refinement
// finds them for a photo (the detail its codes alone cannot reach); everything that takes a block's
// latent from a source takes that source's offsets with it (mixing blends them with the same
// weights, attribute edits and interpolation keep them), so a refined photo stays itself under every
// edit. A block without offsets (an undefined tensor, or no offsets at all) adds nothing.
#include <torch/types.h>

#include <vector>

namespace automod {

struct LatentPlan {
  /// latents[b] is an [N, latent_dim] batch for decoder block b.
  std::vector<torch::Tensor> latents;
  /// Empty, or one entry per block: offsets[b] is undefined or [N, S_b], S_b = the block's style
  /// width (2 × channels for each of its AdaIN layers, first layer first: its scales, then shifts).
  std::vector<torch::Tensor> offsets;

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
  /// Block b's style offsets, or an undefined tensor when it has none.
  torch::Tensor offset(int block) const;
  /// Whether any block has style offsets.
  bool hasOffsets() const;
  /// Sets block b's offsets (undefined = none), growing `offsets` to one entry per block.
  void setOffset(int block, torch::Tensor offset);
  /// The first block whose latent or offsets differ (not the same tensor and not equal in value)
  /// from `other`'s; size() when none differ. Incremental decoding restarts there.
  int firstDifferentBlock(const LatentPlan& other) const;
  LatentPlan to(const torch::Device& device) const;
  /// A deep copy (every tensor cloned).
  LatentPlan clone() const;
  /// Rows [start, start + length) of every block's latents and offsets.
  LatentPlan narrow(int64_t start, int64_t length) const;
  /// The rows `index` (int64, any device) of every block's latents and offsets.
  LatentPlan indexSelect(const torch::Tensor& index) const;
  /// The plans' rows one after another (every plan must have the same number of blocks; a block
  /// without offsets in some plans gets zeros there when another plan has them).
  static LatentPlan cat(const std::vector<LatentPlan>& plans);
};

}  // namespace automod
