#pragma once
// Conditional sampling (docs/design.md §1.3, §4): some scale ranges locked to sources, every other block driven
// by one random code per sample. Seeded: the same seed gives the same gallery. Optional rejection
// sampling keeps the random codes with the best cycle consistency cos(z, φ(θ(z))).
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "core/edit/plan.h"
#include "core/model/automodulator.h"

namespace automod {

struct SamplingOptions {
  /// Samples in the gallery.
  int count = 16;
  uint64_t seed = 0;
  /// Rejection sampling: draw count·candidates codes and keep the `count` most cycle-consistent
  /// (1 = off).
  int candidates = 1;
};

/// cos(z, φ(θ(z))) for each row of z [N, D] (decoded with one latent everywhere).
torch::Tensor cycleConsistency(Automodulator& model, const torch::Tensor& z, int64_t chunk = 16);

/// The random codes [count, D] of a gallery (after rejection, in draw order).
torch::Tensor sampleCodes(Automodulator& model, const SamplingOptions& options);

/// A plan whose batch is the gallery: locked ranges from their sources, other blocks from the codes.
LatentPlan conditionalPlan(Automodulator& model, const std::vector<RangeAssignment>& locks,
                           const SamplingOptions& options);

}  // namespace automod
