#pragma once
// Plans (docs/design.md §1.2, §4): an assignment of scale ranges to one or more latents with blend weights,
// turned into a LatentPlan (one latent per decoder block). Several latents in a range are mixed by
// the normalised weighted sum (back onto the sphere); blocks no assignment covers take the base.
#include <torch/types.h>

#include <vector>

#include "core/model/ranges.h"
#include "core/model/latent_plan.h"

namespace automod {

/// normalise(Σ wᵢ zᵢ) of latents [N or 1, D] (broadcast to the largest batch). Throws automod::Error
/// for no latents, mismatched counts, negative weights, all-zero weights, or a sum that cancels out.
torch::Tensor blendLatents(const std::vector<torch::Tensor>& latents, const std::vector<double>& weights);

/// The style offsets that go with blendLatents' blend (LatentPlan::offsets): Σ wᵢ Δᵢ / Σ wᵢ, with an
/// undefined Δᵢ (a source without offsets) counting as zeros; undefined when none has any. The
/// weights are blendLatents' (checked there; empty = equal).
torch::Tensor blendOffsets(const std::vector<torch::Tensor>& offsets, const std::vector<double>& weights);

struct RangeAssignment {
  BlockRange range;
  /// The latents mixed into this range, [N or 1, D] each, and their weights (empty = equal).
  std::vector<torch::Tensor> latents;
  std::vector<double> weights;
};

/// The per-block form of RangeAssignment, for sources that carry one code per block (a refined
/// photo's codes, core/edit/refine.h; LatentPlan::uniform of a latent for any other source): block b
/// of the range blends the sources' block-b codes ([N or 1, D] each) with `weights` (empty = equal),
/// and their style offsets with blendOffsets.
struct PlanAssignment {
  BlockRange range;
  std::vector<LatentPlan> sources;
  std::vector<double> weights;
};

/// A LatentPlan of `num_blocks` blocks: `base` everywhere, then each assignment (later ones win where
/// ranges overlap). Throws automod::Error for out-of-range blocks and empty assignments.
LatentPlan buildPlan(int num_blocks, const torch::Tensor& base, const std::vector<RangeAssignment>& assignments);
/// The same with per-block sources: `base` gives block b its own code base[b] (it and every source
/// must have num_blocks blocks). buildPlan above is this one with uniform plans.
LatentPlan buildPlan(int num_blocks, const LatentPlan& base, const std::vector<PlanAssignment>& assignments);

/// The editor's mix: block b blends `latents` ([1, D] each) with the weights weights[b] (the
/// normalised weighted sum, blendLatents); a block whose weights are all zero, or that has none,
/// takes latents[base]. Throws automod::Error for no latents, a negative weight, or more weights
/// than latents.
LatentPlan blockMixPlan(const std::vector<torch::Tensor>& latents, const std::vector<std::vector<double>>& weights,
                        int num_blocks, int base = 0);
/// The same for sources with per-block codes (a refined photo's, each a plan of num_blocks [1, D]
/// codes): block b blends sources[i][b] with weights[b][i], and a block without weights takes
/// sources[base][b]. The overload above is this one with LatentPlan::uniform of each latent.
LatentPlan blockMixPlan(const std::vector<LatentPlan>& sources, const std::vector<std::vector<double>>& weights,
                        int num_blocks, int base = 0);

/// Throws automod::Error unless the plan has exactly one latent per block of a model with
/// `num_blocks` blocks (a plan built for another resolution).
void checkPlanFits(const LatentPlan& plan, int num_blocks);

/// Rows [start, start + length) of every block's latents and offsets (for decoding a large batch in
/// chunks): LatentPlan::narrow.
inline LatentPlan slicePlan(const LatentPlan& plan, int64_t start, int64_t length) { return plan.narrow(start, length); }

}  // namespace automod
