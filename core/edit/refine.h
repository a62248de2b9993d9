#pragma once
// Refinement of a photo's code beyond one encoder pass (docs/refinement.md). The encoder gives one
// unit code z for every decoder block; refinement starts there and optimises one unit code per block
// (the model's own "extended" latent, a LatentPlan) and, by default, style offsets (per AdaIN layer,
// values added to the styles its block's code gives, LatentPlan::offsets) with Adam so that the
// decoded image comes closer to the photo: a pixel loss (L2 + L1), multi-scale SSIM, a feature term
// from the model's own encoder (its block outputs for the decoded image against the photo's), and
// regularisers that keep the block codes near the encoder's code and near each other and the offsets
// small (the fidelity/editability dial). The decoder and encoder are frozen (no gradient reaches a
// weight) and every code stays on the unit sphere, so mixing, attributes and interpolation take
// refined codes exactly as they take encoded ones, and carry the offsets with them. Nothing but the
// model is used: no other network, no data.
//
// Determinism: Adam runs on each photo's own codes with that photo's own loss (the batch loss is the
// sum of per-photo losses, early stopping is per photo), so the same photos give the same codes run
// twice on the same thread count, and refining N photos in one batch gives each photo's codes as
// refining it alone does, up to float rounding (convolution kernels may round differently for
// another batch size).
#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/model/latent_plan.h"

namespace automod {

class Automodulator;

struct RefineOptions {
  /// Adam steps; 0 = refinement off.
  int steps = 0;
  /// Peak learning rate: reached after `warmup` of the steps (linear ramp), then a cosine decay to
  /// zero at the last step.
  double lr = 0.01;
  double warmup = 0.05;
  /// Adam in whitened style coordinates (refine.cpp, Preconditioner) with damping λ = this fraction
  /// of the block's largest style gain; 0 = Adam on the codes themselves.
  double precondition = 0.0;
  /// Loss weights (per photo): mean squared error and mean absolute error of the pixels (images in
  /// [−1, 1]), 1 − MS-SSIM, and the encoder-feature term (the relative squared difference of each
  /// encoder block's output for the decoded image and the photo, summed over blocks).
  double pixel_l2 = 1.0;
  double pixel_l1 = 0.5;
  double ms_ssim = 0.0;
  double feature = 0.0;
  /// Regulariser (the fidelity/editability dial): Σ_b ‖z_b − z‖² towards the encoder's code z, and
  /// Σ_b ‖z_{b+1} − z_b‖² between neighbouring blocks.
  double anchor = 0.0;
  double neighbour = 0.0;
  /// Style offsets (LatentPlan::offsets): besides the codes, optimise per-photo offsets added to the
  /// styles every AdaIN layer computes from its block's code, starting at zero. They reach detail
  /// the codes cannot (a code moves a layer's styles only along the directions its style linear
  /// spans, together); mixing, attributes and interpolation carry them with the codes. `offset_lr`:
  /// their peak learning rate (0 = lr); `offset_decay`: the weight of their mean square in the loss
  /// (the dial for offsets: higher keeps a refined photo's styles closer to its codes' own).
  /// docs/refinement.md measures what each costs.
  /// The defaults (on, 3× the codes' learning rate, decay 1) are the measured choice: +4.4 dB instead
  /// of +2.4 dB in 100 steps on the bundled model's held-out faces, with mixes, attribute transfer
  /// and attribute edits as good as the encoder's codes' (docs/refinement.md; decay 0 gains 0.25 dB
  /// more but its attribute edits flip 12% less often).
  bool offsets = true;
  double offset_lr = 0.03;
  double offset_decay = 1.0;
  /// The resolution at which the loss is taken (a power of two ≤ the model's; 0 = the model's): below
  /// the model's resolution the decoder runs only up to the block of that resolution and its toRGB,
  /// the photo is area-downscaled, and blocks above it keep the encoder's code.
  int loss_resolution = 0;
  /// Per-photo early stop: a photo stops once its loss has improved by less than this fraction over
  /// the last `early_stop_window` steps (0 = run every step). Stopped photos keep their best codes.
  double early_stop = 0.0;
  int early_stop_window = 10;
  /// Seeds the random jitter of the initial codes (`init_jitter`, 0 = start exactly at the encoder's
  /// code); with no jitter the result does not depend on it.
  uint64_t seed = 0;
  double init_jitter = 0.0;

  bool enabled() const { return steps > 0; }
  /// {"steps", "lr", ...}: every field. fromJson accepts any subset (missing fields keep the
  /// defaults) and throws automod::Error "<where>: <field>: <problem>" for unknown keys, wrong types
  /// and values out of range.
  nlohmann::json toJson() const;
  static RefineOptions fromJson(const nlohmann::json& j, const std::string& where);
  /// Throws automod::Error for values out of range (negative weights or steps, a learning rate ≤ 0,
  /// a loss resolution that is not a power of two ≥ 4).
  void validate(const std::string& where = "refine options") const;
  bool operator==(const RefineOptions&) const = default;
};

struct RefineResult {
  /// One code batch per decoder block, [N, D] unit codes on the model's device, with their style
  /// offsets (for the blocks the loss saw) when options.offsets.
  LatentPlan codes;
  /// Per photo: PSNR (dB) of the model-resolution reconstruction from the encoder's code and from
  /// the refined codes (clamped to [−1, 1], as a user sees them).
  std::vector<double> psnr_before, psnr_after;
  /// The most steps any photo ran (fewer than options.steps after an early stop or a cancel).
  int steps_run = 0;
  bool cancelled = false;
};

/// Refines the encoder's codes z [N, D] of `images` [N, C, R, R] in [−1, 1] at the model's
/// resolution. progress(step, steps) is called after each step (step = 1 .. steps); returning false
/// cancels: then `cancelled` is true and `codes` are the best codes reached so far. With options
/// off (steps 0) the codes are LatentPlan::uniform(z). Runs on the model's device, in eval mode with
/// the EMA decoder's layer noise off; thread-safe against inference on the same model (it reads the
/// weights only). Throws automod::Error for images or codes of the wrong shape and bad options.
RefineResult refineCodes(Automodulator& model, const torch::Tensor& images, const torch::Tensor& z,
                         const RefineOptions& options, const std::function<bool(int step, int steps)>& progress = {});

}  // namespace automod
