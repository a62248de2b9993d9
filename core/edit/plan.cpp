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

torch::Tensor blendOffsets(const std::vector<torch::Tensor>& offsets, const std::vector<double>& weights) {
  torch::Tensor sum;
  double total = 0;
  for (size_t i = 0; i < offsets.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights.at(i);
    total += w;
    if (!offsets[i].defined() || w == 0.0) continue;
    auto term = offsets[i] * w;
    if (!sum.defined()) {
      sum = term;
    } else {
      if (sum.size(0) != term.size(0)) {
        const auto rows = std::max(sum.size(0), term.size(0));
        sum = sum.expand({rows, sum.size(1)});
        term = term.expand({rows, term.size(1)});
      }
      sum = sum + term;
    }
  }
  if (!sum.defined() || total <= 0) return {};
  return offsets.size() == 1 ? offsets.front() : sum / total;
}

namespace {

// A source's per-block codes must match the model's blocks (codes refined with another model or at
// another resolution do not).
void checkSourceBlocks(const LatentPlan& source, int num_blocks) {
  if (source.size() != num_blocks)
    throw Error("a source has codes for " + std::to_string(source.size()) + " blocks but the model has " +
                std::to_string(num_blocks) + " (its codes were made with another model)");
  for (auto& z : source.latents)
    if (!z.defined()) throw Error("a source has a block without a code");
}

}  // namespace

LatentPlan buildPlan(int num_blocks, const torch::Tensor& base, const std::vector<RangeAssignment>& assignments) {
  if (num_blocks < 1) throw Error("the model has no decoder blocks");
  if (!base.defined()) throw Error("a plan needs a base source for the blocks no range covers");
  std::vector<PlanAssignment> per_block;
  for (auto& a : assignments) {
    PlanAssignment p{a.range, {}, a.weights};
    for (auto& z : a.latents) p.sources.push_back(LatentPlan::uniform(z, num_blocks));
    per_block.push_back(std::move(p));
  }
  return buildPlan(num_blocks, LatentPlan::uniform(base, num_blocks), per_block);
}

LatentPlan buildPlan(int num_blocks, const LatentPlan& base, const std::vector<PlanAssignment>& assignments) {
  if (num_blocks < 1) throw Error("the model has no decoder blocks");
  if (base.size() == 0) throw Error("a plan needs a base source for the blocks no range covers");
  checkSourceBlocks(base, num_blocks);
  LatentPlan plan = base;
  for (auto& a : assignments) {
    if (a.range.first < 0 || a.range.first > a.range.last || a.range.last >= num_blocks)
      throw Error("scale range " + a.range.toString() + " is outside the model's blocks 0-" +
                  std::to_string(num_blocks - 1));
    if (a.sources.empty()) throw Error("nothing to blend: a scale range needs at least one source");
    for (auto& s : a.sources) checkSourceBlocks(s, num_blocks);
    for (int b = a.range.first; b <= a.range.last; ++b) {
      std::vector<torch::Tensor> codes, offsets;
      for (auto& s : a.sources) {
        codes.push_back(s[b]);
        offsets.push_back(s.offset(b));
      }
      plan[b] = blendLatents(codes, a.weights);
      if (plan.offset(b).defined() || blendOffsets(offsets, a.weights).defined())
        plan.setOffset(b, blendOffsets(offsets, a.weights));
    }
  }
  int64_t batch = 0;
  for (auto& z : plan.latents) batch = std::max(batch, z.size(0));
  auto expand = [&](torch::Tensor& t) {
    if (!t.defined() || t.size(0) == batch) return;
    if (t.size(0) != 1) throw Error("sources with different batch sizes cannot be mixed");
    t = t.expand({batch, t.size(1)});
  };
  for (auto& z : plan.latents) expand(z);
  for (auto& o : plan.offsets) expand(o);
  return plan;
}

LatentPlan blockMixPlan(const std::vector<torch::Tensor>& latents, const std::vector<std::vector<double>>& weights,
                        int num_blocks, int base) {
  std::vector<LatentPlan> sources;
  for (auto& z : latents) sources.push_back(LatentPlan::uniform(z, num_blocks));
  return blockMixPlan(sources, weights, num_blocks, base);
}

LatentPlan blockMixPlan(const std::vector<LatentPlan>& sources, const std::vector<std::vector<double>>& weights,
                        int num_blocks, int base) {
  if (sources.empty()) throw Error("the mix has no sources: add a photo first");
  if (base < 0 || base >= static_cast<int>(sources.size()))
    throw Error("the mix's base source " + std::to_string(base) + " does not exist");
  std::vector<PlanAssignment> assignments;
  for (int b = 0; b < num_blocks && b < static_cast<int>(weights.size()); ++b) {
    const auto& w = weights[b];
    if (w.size() > sources.size())
      throw Error("block " + std::to_string(b) + " has weights for " + std::to_string(w.size()) + " sources but the mix has " +
                  std::to_string(sources.size()));
    PlanAssignment a{BlockRange{b, b}, {}, {}};
    for (size_t i = 0; i < w.size(); ++i) {
      if (!(w[i] >= 0.0)) throw Error("block " + std::to_string(b) + ": weights must be non-negative");
      if (w[i] > 0.0) {
        a.sources.push_back(sources[i]);
        a.weights.push_back(w[i]);
      }
    }
    if (!a.sources.empty()) assignments.push_back(std::move(a));
  }
  return buildPlan(num_blocks, sources[base], assignments);
}

void checkPlanFits(const LatentPlan& plan, int num_blocks) {
  if (plan.size() != num_blocks)
    throw Error("the plan was built for a model with " + std::to_string(plan.size()) + " blocks (" +
                std::to_string(4 << std::max(plan.size() - 1, 0)) + " px) but this model has " +
                std::to_string(num_blocks) + " (" + std::to_string(4 << (num_blocks - 1)) + " px)");
  for (auto& z : plan.latents)
    if (!z.defined()) throw Error("the plan has a block without a latent");
}

}  // namespace automod
