#include "training/robust_loss.h"

#include <torch/nn/functional.h>

#include <cmath>
#include <string>

#include "core/model/networks.h"

namespace automod {
namespace {

// inv_softplus(1) = log(e − 1): the latent at which softplus is 1 (Barron's `shift`).
const double kSoftplusOfOne = std::log(std::expm1(1.0));

// log Z(α) has ε·log ε terms at both ends (ε = α or 2 − α), which a uniform grid in α
// interpolates poorly. The table is uniform in t instead, with α = 2·(3t² − 2t³): nodes crowd
// quadratically towards α = 0 and α = 2.
constexpr int kTableNodes = 1025;
double alphaOfT(double t) { return 2.0 * (3.0 * t * t - 2.0 * t * t * t); }

// Z(α)/2 = ∫_0^∞ exp(−ρ(x, α, 1)) dx = ∫ exp(−ρ(e^u, α, 1)) e^u du over u ∈ R. The integrand decays
// exponentially on both sides for every α in [0, 2] (even the Cauchy tail 1/x² becomes e^{−u}), so
// the trapezoid rule in u converges geometrically.
double integrateHalfPartition(double alpha) {
  const double lo = -40.0, hi = 90.0, h = 0.01;
  const int n = static_cast<int>((hi - lo) / h);
  double sum = 0.0;
  for (int i = 0; i <= n; ++i) {
    const double u = lo + i * h;
    const double x = std::exp(u);
    const double w = (i == 0 || i == n) ? 0.5 : 1.0;
    sum += w * std::exp(-generalLossScalar(x, alpha) + u);
  }
  return sum * h;
}

const torch::Tensor& logPartitionTable() {
  static const torch::Tensor table = [] {
    auto t = torch::empty({kTableNodes}, torch::kFloat64);
    auto a = t.accessor<double, 1>();
    for (int i = 0; i < kTableNodes; ++i) a[i] = integrateLogPartition(alphaOfT(double(i) / (kTableNodes - 1)));
    return t;
  }();
  return table;
}

}  // namespace

double generalLossScalar(double x, double alpha) {
  const double x2 = x * x;
  if (alpha <= 0.0) return std::log1p(0.5 * x2);
  if (alpha >= 2.0) return 0.5 * x2;
  const double b = std::abs(alpha - 2.0);
  return b / alpha * std::expm1(0.5 * alpha * std::log1p(x2 / b));
}

double integrateLogPartition(double alpha) { return std::log(2.0 * integrateHalfPartition(alpha)); }

torch::Tensor logPartition(const torch::Tensor& alpha) {
  const auto& table64 = logPartitionTable();
  auto table = table64.to(alpha.device(), alpha.scalar_type());
  const int64_t n = kTableNodes;
  // Inverse of α = 2·(3t² − 2t³): t = ½ − sin(asin(1 − α) / 3), scaled to node units.
  auto t = (0.5 - torch::sin(torch::asin((1.0 - alpha).clamp(-1.0, 1.0)) / 3.0)) * double(n - 1);
  auto i1 = t.detach().floor().clamp(0, n - 2).to(torch::kLong);
  auto f = t - i1.to(t.scalar_type());
  auto at = [&](const torch::Tensor& idx) { return table.index({idx.clamp(0, n - 1).flatten()}).view(alpha.sizes()); };
  auto p0 = at(i1 - 1), p1 = at(i1), p2 = at(i1 + 1), p3 = at(i1 + 2);
  // Linear extrapolation at the ends keeps the Catmull-Rom tangents one-sided there.
  p0 = torch::where(i1 == 0, 2 * p1 - p2, p0);
  p3 = torch::where(i1 == n - 2, 2 * p2 - p1, p3);
  auto f2 = f * f, f3 = f2 * f;
  return 0.5 * ((2 * p1) + (p2 - p0) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f2 + (3 * p1 - p0 - 3 * p2 + p3) * f3);
}

torch::Tensor generalLoss(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& scale) {
  auto y = (x / scale).square();
  auto b = (alpha - 2.0).abs();
  return b / alpha * torch::expm1(0.5 * alpha * torch::log1p(y / b));
}

torch::Tensor robustNll(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& scale) {
  return generalLoss(x, alpha, scale) + scale.log() + logPartition(alpha);
}

// ---------------------------------------------------------------------------------------------

RobustLossImpl::RobustLossImpl(const RobustLossOptions& o) : options(o) {
  TORCH_CHECK(o.alpha_init() > o.alpha_lo() && o.alpha_init() < o.alpha_hi(), "robust loss: alpha_init out of range");
  TORCH_CHECK(o.scale_init() > o.scale_lo(), "robust loss: scale_init must exceed scale_lo");
  const double p = (o.alpha_init() - o.alpha_lo()) / (o.alpha_hi() - o.alpha_lo());
  const double a0 = std::log(p / (1.0 - p));
  const double s0 = kSoftplusOfOne;  // c = (c_init − c_lo)·softplus(s0) + c_lo = c_init
  for (int r = 4; r <= o.max_resolution(); r *= 2) {
    resolutions.push_back(r);
    const std::string suffix = std::to_string(r);
    const int64_t e = elementResolution(r);
    alpha_latent.push_back(register_parameter("alpha_" + suffix, torch::full({o.channels(), e, e}, a0)));
    scale_latent.push_back(register_parameter("scale_" + suffix, torch::full({o.channels(), e, e}, s0)));
  }
}

int RobustLossImpl::indexOf(int resolution) const {
  for (size_t i = 0; i < resolutions.size(); ++i)
    if (resolutions[i] == resolution) return static_cast<int>(i);
  TORCH_CHECK(false, "robust loss has no parameters for resolution ", resolution);
}

torch::Tensor& RobustLossImpl::alphaLatent(int resolution) { return alpha_latent[indexOf(resolution)]; }
torch::Tensor& RobustLossImpl::scaleLatent(int resolution) { return scale_latent[indexOf(resolution)]; }

torch::Tensor RobustLossImpl::alpha(int resolution) const {
  return options.alpha_lo() + (options.alpha_hi() - options.alpha_lo()) * torch::sigmoid(alpha_latent[indexOf(resolution)]);
}

torch::Tensor RobustLossImpl::scale(int resolution) const {
  return (options.scale_init() - options.scale_lo()) * torch::nn::functional::softplus(scale_latent[indexOf(resolution)]) +
         options.scale_lo();
}

void RobustLossImpl::loadReference(int resolution, const torch::Tensor& latent_alpha, const torch::Tensor& latent_scale) {
  const int i = indexOf(resolution);
  auto& a = alpha_latent[i];
  auto& c = scale_latent[i];
  TORCH_CHECK(latent_alpha.numel() == a.numel() && latent_scale.numel() == c.numel(), "robust loss at ", resolution,
              " px has ", a.numel(), " elements, the reference's ", latent_alpha.numel(), " and ", latent_scale.numel());
  torch::NoGradGuard no_grad;
  a.copy_(latent_alpha.reshape(a.sizes()));
  // Barron's affine softplus evaluates softplus(latent + inv_softplus(1)); our latent holds the sum.
  c.copy_(latent_scale.reshape(c.sizes()).to(torch::kFloat32) + static_cast<float>(kSoftplusOfOne));
}

int RobustLossImpl::elementResolution(int resolution) const {
  const int cap = options.max_element_resolution();
  return cap > 0 ? std::min(resolution, cap) : resolution;
}

torch::Tensor RobustLossImpl::forward(const torch::Tensor& diff, int resolution) {
  TORCH_CHECK(diff.dim() == 4 && diff.size(2) == diff.size(3), "robust loss expects [N, C, R, R], got ", diff.sizes());
  const int r = resolution > 0 ? resolution : static_cast<int>(diff.size(2));
  TORCH_CHECK(diff.size(2) == elementResolution(r), "robust loss at ", r, " px expects differences of ",
              elementResolution(r), " px, got ", diff.sizes());
  return robustNll(diff, alpha(r), scale(r)).mean();
}

void RobustLossImpl::growTo(int resolution, RobustGrowth growth) {
  const int i = indexOf(resolution);
  TORCH_CHECK(i > 0, "robust loss: the smallest resolution cannot grow from a smaller one");
  torch::NoGradGuard no_grad;
  // A latent replicated gives exactly the replicated α and c (a copy where both resolutions keep
  // max_element_resolution parameters).
  const bool same = alpha_latent[i].sizes() == alpha_latent[i - 1].sizes();
  const auto grown = [&](const torch::Tensor& old, const torch::Tensor& like) -> torch::Tensor {
    if (same) return old;
    if (growth == RobustGrowth::Spatial) return upsample2(old.unsqueeze(0)).squeeze(0);
    // new.flatten()[4i + k] = old.flatten()[i]: each old value repeated 4 times in a row.
    return old.reshape({-1, 1}).expand({old.numel(), 4}).reshape(like.sizes());
  };
  alpha_latent[i].copy_(grown(alpha_latent[i - 1], alpha_latent[i]));
  scale_latent[i].copy_(grown(scale_latent[i - 1], scale_latent[i]));
}

}  // namespace automod
