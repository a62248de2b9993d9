#include "core/edit/plan.h"

#include "core/model/layers.h"
#include "core/util/error.h"

namespace automod {

torch::Tensor blendLatents(const std::vector<torch::Tensor>& latents, const std::vector<double>& weights) {
  if (latents.empty()) throw Error("nothing to blend: a scale range needs at least one source");
  if (!weights.empty() && weights.size() != latents.size())
    throw Error("got " + std::to_string(weights.size()) + " weights for " + std::to_string(latents.size()) + " sources");
  if (latents.size() == 1) return latents.front();
  double total = 0;
  for (double w : weights) {
    if (!(w >= 0)) throw Error("blend weights must be non-negative (got " + std::to_string(w) + ")");
    total += w;
  }
  if (!weights.empty() && total <= 0) throw Error("blend weights are all zero");
  torch::Tensor sum;
  for (size_t i = 0; i < latents.size(); ++i) {
    auto term = latents[i] * (weights.empty() ? 1.0 : weights[i]);
    sum = sum.defined() ? sum + term : term;
  }
  if ((sum.norm(2, 1) < 1e-6).any().item<bool>())
    throw Error("the blended latents cancel out (opposite codes with equal weights); change the weights");
  return normaliseLatent(sum);
}

LatentPlan buildPlan(int num_blocks, const torch::Tensor& base, const std::vector<RangeAssignment>& assignments) {
  if (num_blocks < 1) throw Error("the model has no decoder blocks");
  if (!base.defined()) throw Error("a plan needs a base source for the blocks no range covers");
  auto plan = LatentPlan::uniform(base, num_blocks);
  int64_t batch = base.size(0);
  for (auto& a : assignments) {
    if (a.range.first < 0 || a.range.first > a.range.last || a.range.last >= num_blocks)
      throw Error("scale range " + a.range.toString() + " is outside the model's blocks 0-" +
                  std::to_string(num_blocks - 1));
    auto z = blendLatents(a.latents, a.weights);
    batch = std::max(batch, z.size(0));
    for (int b = a.range.first; b <= a.range.last; ++b) plan[b] = z;
  }
  for (auto& z : plan.latents)
    if (z.size(0) != batch) {
      if (z.size(0) != 1) throw Error("sources with different batch sizes cannot be mixed");
      z = z.expand({batch, z.size(1)});
    }
  return plan;
}

void checkPlanFits(const LatentPlan& plan, int num_blocks) {
  if (plan.size() != num_blocks)
    throw Error("the plan was built for a model with " + std::to_string(plan.size()) + " blocks (" +
                std::to_string(4 << std::max(plan.size() - 1, 0)) + " px) but this model has " +
                std::to_string(num_blocks) + " (" + std::to_string(4 << (num_blocks - 1)) + " px)");
  for (auto& z : plan.latents)
    if (!z.defined()) throw Error("the plan has a block without a latent");
}

LatentPlan slicePlan(const LatentPlan& plan, int64_t start, int64_t length) {
  LatentPlan out;
  for (auto& z : plan.latents) out.latents.push_back(z.narrow(0, start, length));
  return out;
}

}  // namespace automod
