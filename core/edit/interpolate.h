#pragma once
// Interpolation (docs/design.md §1.5, §4): slerp on the unit sphere between two or more latents, globally or for
// some scale ranges only (videos of them: core/io/video.h).
#include <torch/types.h>

#include <vector>

#include "core/model/ranges.h"
#include "core/model/latent_plan.h"

namespace automod {

/// Spherical interpolation of unit latents [N, D] (or [1, D]) at t ∈ [0, 1]; falls back to a
/// normalised lerp when the two are (nearly) parallel. slerp(a, b, 0) == a and slerp(a, b, 1) == b.
torch::Tensor slerp(const torch::Tensor& a, const torch::Tensor& b, double t);

/// The point at t ∈ [0, 1] along the piecewise slerp path through `keys` (each [1, D]), equal time per
/// segment.
torch::Tensor slerpPath(const std::vector<torch::Tensor>& keys, double t);

/// `steps` plans (as one plan with batch = steps) moving along the path through `keys`: blocks in
/// `ranges` follow the path (all blocks when ranges is empty), the others keep the first key. The
/// first and last entries are exactly the first and last keys.
LatentPlan interpolationPlan(const std::vector<torch::Tensor>& keys, int steps, int num_blocks,
                             const std::vector<BlockRange>& ranges = {});

/// The plan at one point t ∈ [0, 1] of that path (interpolationPlan's rule for a single frame): the
/// blocks in `ranges` (all when empty) at slerpPath(keys, t), the others at the first key.
LatentPlan interpolationPlanAt(const std::vector<torch::Tensor>& keys, double t, int num_blocks,
                               const std::vector<BlockRange>& ranges = {});

}  // namespace automod
