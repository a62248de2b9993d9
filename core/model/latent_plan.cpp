#include "core/model/latent_plan.h"

#include <c10/util/Exception.h>

namespace automod {

LatentPlan LatentPlan::uniform(const torch::Tensor& z, int blocks) {
  return LatentPlan(std::vector<torch::Tensor>(static_cast<size_t>(blocks), z));
}

LatentPlan LatentPlan::mixed(const torch::Tensor& a, const torch::Tensor& b, int split, int blocks) {
  TORCH_CHECK(split >= 0 && split <= blocks, "mix split block ", split, " is outside 0..", blocks);
  LatentPlan p;
  for (int k = 0; k < blocks; ++k) p.latents.push_back(k < split ? a : b);
  return p;
}

int LatentPlan::firstDifferentBlock(const LatentPlan& other) const {
  const int n = std::min(size(), other.size());
  for (int b = 0; b < n; ++b) {
    const auto& x = latents[b];
    const auto& y = other.latents[b];
    if (x.is_same(y)) continue;
    if (!x.defined() || !y.defined() || !x.sizes().equals(y.sizes()) || x.device() != y.device() || !torch::equal(x, y))
      return b;
  }
  return size() == other.size() ? size() : n;
}

LatentPlan LatentPlan::to(const torch::Device& device) const {
  LatentPlan p;
  for (auto& z : latents) p.latents.push_back(z.to(device));
  return p;
}

}  // namespace automod
