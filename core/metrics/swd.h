#pragma once
// Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, PGGAN; docs/design.md §6).
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace automod {

struct SwdOptions {
  /// Patch side (7×7×C descriptors).
  int patch = 7;
  /// Random patches per image and pyramid level.
  int patches_per_image = 128;
  /// Projections per repeat; repeats × directions = 512 projections in all.
  int directions = 128;
  int repeats = 4;
  /// The coarsest pyramid level (the low-pass residual). Images smaller than this use one level,
  /// the image itself.
  int min_resolution = 16;
  uint64_t seed = 0;
};

struct SwdResult {
  /// Resolution of each pyramid level, finest first (e.g. 64, 32, 16).
  std::vector<int> resolutions;
  /// SWD × 10³ per level, same order.
  std::vector<double> per_level;
  /// Mean of per_level.
  double average = 0.0;
};

/// Images [N, C, H, W], uint8 or float in [−1, 1] (any common scale: descriptors are normalised per
/// channel over each set). Both sets need the same C, H, W; their sizes may differ (the larger is
/// subsampled to the smaller's descriptor count). Deterministic for a given seed.
SwdResult slicedWassersteinDistance(const torch::Tensor& a, const torch::Tensor& b, const SwdOptions& options = {});

/// The Laplacian pyramid used above: band-pass levels from full resolution down, the last one the
/// low-pass residual at ≥ min_resolution. Float [N, C, H, W] in, list finest first.
std::vector<torch::Tensor> laplacianPyramid(const torch::Tensor& images, int min_resolution = 16);

/// The sliced Wasserstein distance between two descriptor sets [K, D] (same K), averaged over
/// repeats × directions random unit projections. Not scaled.
double slicedWasserstein(const torch::Tensor& a, const torch::Tensor& b, int directions, int repeats, uint64_t seed);

}  // namespace automod
