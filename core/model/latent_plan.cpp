#include "core/model/latent_plan.h"

#include <c10/util/Exception.h>

namespace automod {

namespace {
bool sameValues(const torch::Tensor& x, const torch::Tensor& y) {
  if (x.is_same(y)) return true;
  if (!x.defined() || !y.defined()) return x.defined() == y.defined();
  return x.sizes().equals(y.sizes()) && x.device() == y.device() && torch::equal(x, y);
}
}  // namespace

LatentPlan LatentPlan::uniform(const torch::Tensor& z, int blocks) {
  return LatentPlan(std::vector<torch::Tensor>(static_cast<size_t>(blocks), z));
}

LatentPlan LatentPlan::mixed(const torch::Tensor& a, const torch::Tensor& b, int split, int blocks) {
  TORCH_CHECK(split >= 0 && split <= blocks, "mix split block ", split, " is outside 0..", blocks);
  LatentPlan p;
  for (int k = 0; k < blocks; ++k) p.latents.push_back(k < split ? a : b);
  return p;
}

torch::Tensor LatentPlan::offset(int block) const {
  if (block < 0 || block >= static_cast<int>(offsets.size())) return {};
  return offsets[static_cast<size_t>(block)];
}

bool LatentPlan::hasOffsets() const {
  for (auto& o : offsets)
    if (o.defined()) return true;
  return false;
}

void LatentPlan::setOffset(int block, torch::Tensor offset) {
  TORCH_CHECK(block >= 0 && block < size(), "style offsets for block ", block, " of a plan of ", size(), " blocks");
  if (offsets.size() < latents.size()) offsets.resize(latents.size());
  offsets[static_cast<size_t>(block)] = std::move(offset);
}

int LatentPlan::firstDifferentBlock(const LatentPlan& other) const {
  const int n = std::min(size(), other.size());
  for (int b = 0; b < n; ++b)
    if (!sameValues(latents[b], other.latents[b]) || !sameValues(offset(b), other.offset(b))) return b;
  return size() == other.size() ? size() : n;
}

LatentPlan LatentPlan::to(const torch::Device& device) const {
  LatentPlan p;
  for (auto& z : latents) p.latents.push_back(z.to(device));
  for (auto& o : offsets) p.offsets.push_back(o.defined() ? o.to(device) : o);
  return p;
}

LatentPlan LatentPlan::clone() const {
  LatentPlan p;
  for (auto& z : latents) p.latents.push_back(z.clone());
  for (auto& o : offsets) p.offsets.push_back(o.defined() ? o.clone() : o);
  return p;
}

LatentPlan LatentPlan::narrow(int64_t start, int64_t length) const {
  LatentPlan p;
  for (auto& z : latents) p.latents.push_back(z.narrow(0, start, length));
  for (auto& o : offsets) p.offsets.push_back(o.defined() ? o.narrow(0, start, length) : o);
  return p;
}

LatentPlan LatentPlan::indexSelect(const torch::Tensor& index) const {
  LatentPlan p;
  for (auto& z : latents) p.latents.push_back(z.index_select(0, index.to(z.device())));
  for (auto& o : offsets) p.offsets.push_back(o.defined() ? o.index_select(0, index.to(o.device())) : o);
  return p;
}

LatentPlan LatentPlan::cat(const std::vector<LatentPlan>& plans) {
  LatentPlan out;
  if (plans.empty()) return out;
  const int nb = plans.front().size();
  for (auto& p : plans) TORCH_CHECK(p.size() == nb, "cannot join plans of ", nb, " and ", p.size(), " blocks");
  for (int b = 0; b < nb; ++b) {
    std::vector<torch::Tensor> rows, offs;
    torch::Tensor like;
    for (auto& p : plans) {
      rows.push_back(p[b]);
      if (p.offset(b).defined()) like = p.offset(b);
    }
    out.latents.push_back(torch::cat(rows));
    if (!like.defined()) continue;
    for (auto& p : plans)
      offs.push_back(p.offset(b).defined() ? p.offset(b) : torch::zeros({p[b].size(0), like.size(1)}, like.options()));
    out.setOffset(b, torch::cat(offs));
  }
  return out;
}

}  // namespace automod
