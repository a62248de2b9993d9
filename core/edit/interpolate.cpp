#include "core/edit/interpolate.h"

#include <cmath>

#include "core/model/layers.h"
#include "core/util/error.h"


namespace automod {

torch::Tensor slerp(const torch::Tensor& a, const torch::Tensor& b, double t) {
  if (t <= 0.0) return a;
  if (t >= 1.0) return b;
  auto an = normaliseLatent(a), bn = normaliseLatent(b);
  auto cos = (an * bn).sum(1, true).clamp(-1.0, 1.0);
  auto omega = torch::acos(cos);
  auto so = torch::sin(omega);
  auto near = so.abs() < 1e-6;
  auto wa = torch::where(near, torch::full_like(so, 1.0 - t), torch::sin((1.0 - t) * omega) / so);
  auto wb = torch::where(near, torch::full_like(so, t), torch::sin(t * omega) / so);
  return normaliseLatent(wa * an + wb * bn);
}

torch::Tensor slerpPath(const std::vector<torch::Tensor>& keys, double t) {
  if (keys.empty()) throw Error("interpolation needs at least one source");
  if (keys.size() == 1 || t <= 0.0) return keys.front();
  if (t >= 1.0) return keys.back();
  const double pos = t * double(keys.size() - 1);
  const size_t seg = std::min(static_cast<size_t>(pos), keys.size() - 2);
  return slerp(keys[seg], keys[seg + 1], pos - double(seg));
}

namespace {
void checkInterpolation(const std::vector<torch::Tensor>& keys, int num_blocks, const std::vector<BlockRange>& ranges) {
  if (keys.size() < 2) throw Error("interpolation needs at least two sources");
  for (auto& r : ranges)
    if (r.first < 0 || r.last >= num_blocks || r.first > r.last)
      throw Error("scale range " + r.toString() + " is outside the model's blocks 0-" + std::to_string(num_blocks - 1));
}

LatentPlan movingPlan(const torch::Tensor& moving, const torch::Tensor& fixed, int num_blocks,
                      const std::vector<BlockRange>& ranges) {
  LatentPlan plan;
  for (int b = 0; b < num_blocks; ++b) plan.latents.push_back(ranges.empty() || rangesContain(ranges, b) ? moving : fixed);
  return plan;
}
}  // namespace

LatentPlan interpolationPlan(const std::vector<torch::Tensor>& keys, int steps, int num_blocks,
                             const std::vector<BlockRange>& ranges) {
  checkInterpolation(keys, num_blocks, ranges);
  if (steps < 2) throw Error("interpolation needs at least 2 steps (got " + std::to_string(steps) + ")");
  std::vector<torch::Tensor> path;
  for (int i = 0; i < steps; ++i) path.push_back(slerpPath(keys, double(i) / double(steps - 1)));
  return movingPlan(torch::cat(path), keys.front().expand({steps, keys.front().size(1)}), num_blocks, ranges);
}

LatentPlan interpolationPlanAt(const std::vector<torch::Tensor>& keys, double t, int num_blocks,
                               const std::vector<BlockRange>& ranges) {
  checkInterpolation(keys, num_blocks, ranges);
  return movingPlan(slerpPath(keys, t), keys.front(), num_blocks, ranges);
}

}  // namespace automod
