#pragma once
// The automodulator's two alternating training steps (docs/design.md §3) as small functions that compute
// losses; the trainer owns the optimisers and calls backward/step. Everything here is differentiable
// where the design (docs/design.md) says so and runs under NoGradGuard where it does not.
#include <torch/types.h>

#include <vector>

#include "core/model/latent_plan.h"
#include "core/model/networks.h"
#include "training/robust_loss.h"

namespace automod {

/// Batch-statistics KL of latents Z [B, D] against N(0, I):
/// mean_d [ (σ²_d + μ²_d)/2 − ½·log σ²_d − ½ ], with biased batch variance σ²_d.
torch::Tensor batchKL(const torch::Tensor& z);

/// n random codes on the unit sphere (global LibTorch generator, or the DrawScope's source).
torch::Tensor randomSphere(int64_t n, int64_t dim, const torch::Device& device);

/// Real images during fade-in: α·x + (1−α)·up2(down2(x)).
torch::Tensor blendRealForFadeIn(const torch::Tensor& x, double alpha);

/// Weights and ratios of the two steps (the reference code's values, docs/design.md §3).
struct LossWeights {
  double kl = 0.1;
  double gap = 0.1;
  double rec = 0.2;
  double lambda_x_fade = 1.0;
  double lambda_x_stable = 1.5;
  double cos = 0.2;
  double layer = 1.0;
  /// Reconstruction distance in the encoder step: Barron's adaptive robust loss (the paper), or
  /// plain L1 (the paper's ablation baseline, Table 1). The robust parameters then stay unused.
  bool robust = true;
  /// Fraction of style-mixed generated images in the encoder step (3:1 plain:mixed).
  double encoder_mix_fraction = 0.25;
  /// Fraction of style-mixed codes in the decoder step (1:1).
  double decoder_mix_fraction = 0.5;
  /// Weight of a reconstruction term in the decoder step, mean |θ(sg[φ(x)]) − x| on the real batch
  /// through the frozen encoder (JSON losses.decoder_rec). Not part of the paper, where the decoder
  /// learns only from latent-space terms (0 = the paper). The CPU presets use 1: at 16 px and 30 k
  /// images it lifts held-out PSNR of the EMA decoder from 13.1 to 18.4 dB and sample SWD from 73.5 to
  /// 53.5 ×10³ (docs/training-at-cpu-budgets.md).
  double decoder_rec = 0.0;
  /// Above this resolution the reconstruction distance is taken between 2×2-average-pooled copies of
  /// the images at this resolution, with that many robust-loss parameters (0: always at full
  /// resolution, one parameter per image element, as the authors' code; no preset uses it: it only
  /// saves memory and time at 128 px and up).
  int rec_max_resolution = 0;
  /// How a new resolution's robust-loss parameters start (RobustLossImpl::growTo): each old element
  /// over its 2×2 block (the paper, CPU presets) or the authors' flat interleave (paper presets).
  RobustGrowth robust_growth = RobustGrowth::Spatial;

  // Where the paper's text and the authors' code differ (docs/training-fidelity.md). The defaults
  // keep what the CPU presets were tuned with; the paper presets follow the authors' code.

  /// The KL gap term: Hinge = max(−M, w_gap·ΔKL) (M = 0 is a hinge at zero); Reference = the
  /// authors' min(M/2, max(−M, w_gap·ΔKL)) for M > 0 and no clamp at all for M = 0.
  enum class GapClamp { Hinge, Reference } gap_clamp = GapClamp::Hinge;
  /// The latent cycle term: Cosine = mean over plain codes of (1 − cos(z, ẑ)) (weight `cos`, ≈ 0.2);
  /// Reference = the authors' match_z · mean over plain codes and dimensions of (2 − ẑ_d·z_d)
  /// (weight `cos` = 100: 100/nz per unit of cos, and 200 added to the loss value).
  enum class Cycle { Cosine, Reference } cycle = Cycle::Cosine;
  /// Encode the real and the generated batch in two encoder passes (real first), as the authors
  /// do: with their in-graph spectral norm each pass runs its own power iteration. false: one pass
  /// over both (one power iteration, one larger convolution).
  bool separate_encoder_passes = false;
};

/// Where training stands for one iteration.
struct StepContext {
  int stage = 0;       ///< top resolution level in use (its decoder blocks: Decoder::blocksAtStage)
  double alpha = 1.0;  ///< fade-in weight of level `stage`
  double m_gap = 0.0;  ///< margin of the KL gap term
  /// Flip-invariance training (docs/design.md §3, paper Sec. 3.3): the real batch holds pairs, rows 2i and
  /// 2i+1 being horizontal flips of each other; the decoder has the extra 8×8 block. The encoder
  /// step's reconstruction then swaps the pair's codes from block 2 on (flipInvariantPlan), the
  /// layer noise is off, and the decoder's AdaIN style linears also learn in the encoder step.
  bool flip_invariance = false;
  /// λ_X of the reconstruction term (the schedule's: lambda_x_fade or lambda_x_stable); < 0: from
  /// α (fade while α < 1, stable after).
  double lambda_x = -1.0;
  /// Per-element layer noise in the decoder during training (off in flip-invariance training).
  bool layer_noise = true;
  /// During a fade-in the decoder step does not train the previous resolution's toRGB.
  bool freeze_previous_to_rgb = false;
  bool fading() const { return alpha < 1.0; }
};

/// The reconstruction plan of flip-invariance training for codes z [2n, D] of n flip pairs (rows 2i,
/// 2i+1): every row keeps its own code in blocks 0–1 (θ_{0:2}) and takes its partner's from block 2
/// on (θ_{2:N}), so row 2i+1 decodes θ_{2:N}(θ_{0:2}(ξ⁽⁰⁾, z₂), z₁) ≈ x₂ and row 2i decodes
/// θ_{2:N}(θ_{0:2}(ξ⁽⁰⁾, z₁), z₂) ≈ x₁ (paper Eqs. 10–11). The mean of ρ over the batch is then
/// ½·(L_inv + L'_inv) per pair, the same scale as the plain reconstruction term (every image is
/// the target once). With fewer than 3 blocks (4 px) it is the plain reconstruction.
LatentPlan flipInvariantPlan(const torch::Tensor& z, int blocks);

/// Keeps the last `capacity` generated images; once full, each incoming image is swapped with a
/// random stored one with probability 0.5 (docs/design.md §3). Uses the global LibTorch generator.
class ImagePool {
 public:
  explicit ImagePool(int capacity = 200) : capacity_(capacity) {}
  torch::Tensor query(const torch::Tensor& images);
  void clear() { images_ = torch::Tensor(); count_ = 0; }
  int count() const { return count_; }
  int capacity() const { return capacity_; }
  /// Stored images [count, C, R, R] (for checkpoints) and their restoration.
  torch::Tensor state() const { return count_ > 0 ? images_.narrow(0, 0, count_) : torch::Tensor(); }
  void restore(const torch::Tensor& stored);

 private:
  int capacity_;
  int count_ = 0;
  torch::Tensor images_;
};

struct EncoderStepLosses {
  torch::Tensor kl_real, kl_fake, gap, rec, total;
};

/// L_φ = w_kl·KL(φ(x)) + max(−M_gap, w_gap·(KL(φ(x)) − KL(φ(x̃)))) + w_rec·λ_X·mean ρ(θ(φ(x)) − x).
/// x̃ are decoded random codes (no grad), a fraction of them style-mixed, passed through `pool`
/// when it is given. Real and generated images share one encoder pass. The decoder's parameters
/// must not require grad (the trainer freezes them); gradients reach the encoder and `robust`.
EncoderStepLosses encoderStep(Encoder& encoder, Decoder& decoder, RobustLoss& robust, const torch::Tensor& x,
                              const StepContext& ctx, const LossWeights& w, ImagePool* pool);

/// Combines the encoder-step terms (exposed for tests of the margin clamp).
torch::Tensor encoderTotal(const torch::Tensor& kl_real, const torch::Tensor& kl_fake, const torch::Tensor& rec,
                           const StepContext& ctx, const LossWeights& w, torch::Tensor* gap_out = nullptr);

struct DecoderStepLosses {
  torch::Tensor kl_fake, cos, layer, rec, total;  ///< rec: the decoder_rec term (0 when off)
  int split = 0;  ///< the split block j used for mixing (0 when nothing was mixed)
};

/// L_θ = w_kl·KL(φ(x̂)) + λ_cos·mean_plain(1 − cos(z, φ(x̂))) + w_layer·mean_mixed ‖θ_{0:j}(ẑ_AB) − θ_{0:j}(z_A)‖².
/// Plain and mixed codes are decoded in one pass; the canvas θ_{0:j}(z_A) is taken from that pass.
/// With w.decoder_rec > 0 and a real batch `x`, + w.decoder_rec·mean|θ(sg[φ(x)]) − x|.
/// The encoder's parameters must not require grad.
DecoderStepLosses decoderStep(Encoder& encoder, Decoder& decoder, int64_t batch, const StepContext& ctx,
                              const LossWeights& w, const torch::Tensor& x = {});

/// The layer loss L_j: MSE between θ_{0:j}(z_hat) and the given canvas ξ⁽ʲ⁾ of z_A.
torch::Tensor layerLoss(Decoder& decoder, const torch::Tensor& canvas_a, const torch::Tensor& z_hat, int split);

/// Decodes a plan at (stage, α) and also returns ξ⁽ʲ⁾ (the canvas after blocks 0..j−1) when j > 0.
struct DecodeWithCanvas {
  torch::Tensor image, canvas;
};
DecodeWithCanvas decodeKeepingCanvas(Decoder& decoder, const LatentPlan& plan, int stage, double alpha, int split);

/// EMA update: ema ← decay·ema + (1 − decay)·decoder (parameters); buffers are copied.
void updateEma(Decoder& ema, Decoder& decoder, double decay = 0.999);

/// The EMA decay for decoder step `step` (0-based): min(decay, (1 + step) / (10 + step)). A fixed
/// 0.999 still holds ~half of the random initial weights after 700 steps, which is all a short CPU
/// run has; the warm-up (as in TensorFlow's ExponentialMovingAverage with num_updates) follows the
/// early weights and reaches the full decay at step 8 991 (for 0.999).
double emaDecayAt(double decay, int64_t step);

}  // namespace automod
