#pragma once
// Barron's adaptive robust loss (docs/design.md §3, "A general and adaptive robust loss function", 2019) as
// the negative log-likelihood of its general distribution, with a learned shape α and scale c per
// image element (C·H·W of them) and one parameter set per training resolution.
//
// log Z(α) is computed here, not read from Barron's spline table: Z(α) = ∫ exp(−ρ(x, α, 1)) dx is
// integrated numerically on a grid of α ∈ [0, 2] once per process, and read back by cubic
// (Catmull-Rom) interpolation that is differentiable in α.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <vector>

namespace automod {

/// ρ(x, α, 1) for one double (α = 0 and α = 2 use their limits). Used by the table and the tests.
double generalLossScalar(double x, double alpha);

/// log Z(α) by direct numerical integration (slow; the table uses it at start-up).
double integrateLogPartition(double alpha);

/// log Z(α), interpolated from the table; α in [0, 2]. Differentiable in α.
torch::Tensor logPartition(const torch::Tensor& alpha);

/// ρ(x, α, c) elementwise (broadcasting), differentiable in x, α and c. α must lie in (0, 2).
torch::Tensor generalLoss(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& scale);

/// The per-element negative log-likelihood ρ(x, α, c) + log c + log Z(α).
torch::Tensor robustNll(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& scale);

/// How a new resolution's parameters start from the previous one's (4× as many).
enum class RobustGrowth {
  /// Each old element replicated over its 2×2 spatial block (paper Sec. 3.2): the new parameters
  /// see the image as the old ones did.
  Spatial,
  /// The authors' code (Session.prepareAdaptiveLossForNewPhase): new[4i + k] = old[i] for k = 0…3 in
  /// the flattened C·H·W order, which puts each old value on four horizontally adjacent elements of
  /// the same row, and the old rows into the top half of the image, twice.
  Flat,
};

struct RobustLossOptions {
  RobustLossOptions(int64_t channels, int max_resolution) : channels_(channels), max_resolution_(max_resolution) {}
  /// Image channels (1 or 3).
  TORCH_ARG(int64_t, channels);
  /// Largest resolution; one parameter set is registered for every 4·2^b up to it.
  TORCH_ARG(int, max_resolution);
  /// α range (0.001, 1.999) via a sigmoid.
  TORCH_ARG(double, alpha_lo) = 0.001;
  TORCH_ARG(double, alpha_hi) = 1.999;
  /// Parameters per element up to this resolution; larger resolutions keep this many (their loss is
  /// taken on images pooled to it: LossWeights::rec_max_resolution). 0: every resolution's own.
  TORCH_ARG(int, max_element_resolution) = 0;
  /// Lower bound of c.
  TORCH_ARG(double, scale_lo) = 1e-5;
  /// Initial α and c. c = (scale_init − scale_lo)·softplus(latent) + scale_lo, Barron's affine
  /// softplus (his latent is ours minus inv_softplus(1)).
  TORCH_ARG(double, alpha_init) = 1.0;
  TORCH_ARG(double, scale_init) = 1.0;
};

/// The learned α and c of every resolution: α = lo + (hi − lo)·sigmoid(latent), c as above.
/// Parameters are named "alpha_<R>" and "scale_<R>"
/// (unconstrained latents, shape [C, R, R]); parameters of a resolution not yet in use never get a
/// gradient, so the optimiser leaves them alone.
struct RobustLossImpl : torch::nn::Module {
  explicit RobustLossImpl(const RobustLossOptions& options);

  /// Mean NLL over all elements of `diff` = reconstruction − target, [N, C, E, E], with the
  /// parameters of `resolution` (0: E itself; E = elementResolution(resolution)).
  torch::Tensor forward(const torch::Tensor& diff, int resolution = 0);
  /// The size of one resolution's parameters: min(resolution, max_element_resolution).
  int elementResolution(int resolution) const;
  /// α and c at a resolution, [C, R, R], constrained.
  torch::Tensor alpha(int resolution) const;
  torch::Tensor scale(int resolution) const;
  /// Initialises the parameters of `resolution` from those of resolution/2 (RobustGrowth).
  void growTo(int resolution, RobustGrowth growth = RobustGrowth::Spatial);
  /// Sets one resolution's parameters from the authors' checkpoint (their adaptive_loss_k: Barron's
  /// latent_alpha and latent_scale, each [1, C·R·R] in C, H, W order).
  void loadReference(int resolution, const torch::Tensor& latent_alpha, const torch::Tensor& latent_scale);
  /// The parameter latents of one resolution.
  torch::Tensor& alphaLatent(int resolution);
  torch::Tensor& scaleLatent(int resolution);

  RobustLossOptions options;
  std::vector<int> resolutions;
  std::vector<torch::Tensor> alpha_latent, scale_latent;

 private:
  int indexOf(int resolution) const;
};
TORCH_MODULE(RobustLoss);

}  // namespace automod
