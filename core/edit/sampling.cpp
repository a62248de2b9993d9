#include "core/edit/sampling.h"

#include <algorithm>
#include <numeric>

#include "core/util/error.h"

namespace automod {

torch::Tensor cycleConsistency(Automodulator& model, const torch::Tensor& z, int64_t chunk) {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < z.size(0); i += chunk) {
    auto part = z.narrow(0, i, std::min(chunk, z.size(0) - i)).to(model.device());
    auto back = model.encode(model.decode(part));
    out.push_back((part * back).sum(1).to(torch::kCPU));
  }
  return torch::cat(out);
}

torch::Tensor sampleCodes(Automodulator& model, const SamplingOptions& o) {
  if (o.count < 1) throw Error("the gallery needs at least one sample");
  if (o.candidates < 1) throw Error("rejection sampling needs at least one candidate per sample");
  auto z = model.randomLatents(int64_t(o.count) * o.candidates, o.seed);
  if (o.candidates == 1) return z;
  auto score = cycleConsistency(model, z);
  auto order = std::get<1>(score.sort(/*stable=*/true, 0, /*descending=*/true)).narrow(0, 0, o.count);
  order = std::get<0>(order.sort());  // keep the draw order among the kept codes
  return z.index_select(0, order.to(z.device()));
}

LatentPlan conditionalPlan(Automodulator& model, const std::vector<RangeAssignment>& locks, const SamplingOptions& o) {
  return buildPlan(model.numBlocks(), sampleCodes(model, o), locks);
}

}  // namespace automod
