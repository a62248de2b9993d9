#pragma once
// The measured quality of a model on held-out images (docs/design.md §6), what `automod eval` prints: SWD of
// random samples and of coarse / intermediate / fine mixes against the held-out images (with the
// real-vs-real floor), reconstruction PSNR / SSIM, cycle consistency cos(z, φ(θ(z))) and the layer
// entanglement error L_j. The measurements ask of a model only what EvalModel offers, so a test can
// hand them an autoencoder whose answers are known. With refinement (EvalOptions::refine) the held-out
// images' codes are refined per block before reconstruction and mixing (core/edit/refine.h); cycle
// consistency and L_j stay properties of the encoder's codes.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/edit/refine.h"
#include "core/metrics/swd.h"
#include "core/model/latent_plan.h"
#include "core/model/ranges.h"

namespace automod {

class Automodulator;
class ImageDataset;

/// What the measurements need of a model: an encoder, a decoder driven per block, the decoder's
/// canvas after its first blocks, and its prior. Tensors go in and come out on the CPU.
class EvalModel {
 public:
  virtual ~EvalModel() = default;
  /// The output resolution of each decoder block; named scales and L_j's splits come from it.
  virtual BlockLayout layout() const = 0;
  /// Side of the images it encodes and decodes.
  virtual int resolution() const = 0;
  /// Images [N, C, R, R] in [−1, 1] → latents [N, D].
  virtual torch::Tensor encode(const torch::Tensor& images) = 0;
  /// One latent batch per block → images [N, C, R, R], not clamped.
  virtual torch::Tensor decode(const LatentPlan& plan) = 0;
  /// The decoder's canvas after blocks [0, blocks): what L_j compares.
  virtual torch::Tensor canvas(const LatentPlan& plan, int blocks) = 0;
  /// n codes drawn from the prior with a seeded generator.
  virtual torch::Tensor randomLatents(int64_t n, uint64_t seed) = 0;
  /// Per-block codes of `images` refined from their codes `z` (refineCodes); progress as there.
  /// This default supports only options that are off (LatentPlan::uniform(z)) and throws
  /// automod::Error otherwise.
  virtual LatentPlan refine(const torch::Tensor& images, const torch::Tensor& z, const RefineOptions& options,
                            const std::function<bool(int, int)>& progress = {});

  int numBlocks() const { return layout().size(); }
};

/// An Automodulator as EvalModel: its encoder and EMA decoder (eval mode, layer noise off, no grad),
/// run on the model's device.
class AutomodulatorEvalModel : public EvalModel {
 public:
  explicit AutomodulatorEvalModel(Automodulator& model);
  BlockLayout layout() const override;
  int resolution() const override;
  torch::Tensor encode(const torch::Tensor& images) override;
  torch::Tensor decode(const LatentPlan& plan) override;
  torch::Tensor canvas(const LatentPlan& plan, int blocks) override;
  torch::Tensor randomLatents(int64_t n, uint64_t seed) override;
  LatentPlan refine(const torch::Tensor& images, const torch::Tensor& z, const RefineOptions& options,
                    const std::function<bool(int, int)>& progress = {}) override;

 private:
  Automodulator& model_;
};

/// Encodes images in chunks of `chunk`.
torch::Tensor encodeInChunks(EvalModel& model, const torch::Tensor& images, int64_t chunk = 32);
/// Decodes a plan in chunks of `chunk`; the images are clamped to [−1, 1] (what a user sees).
torch::Tensor decodeInChunks(EvalModel& model, const LatentPlan& plan, int64_t chunk = 32);
/// `b` on the blocks of `range`, `a` on every other block.
LatentPlan rangeMix(const torch::Tensor& a, const torch::Tensor& b, const BlockRange& range, int blocks);
/// The same for per-block codes: b[k] on the blocks k of `range`, a[k] elsewhere.
LatentPlan rangeMix(const LatentPlan& a, const LatentPlan& b, const BlockRange& range);
/// Rows `index` of every block's codes.
LatentPlan selectRows(const LatentPlan& plan, const torch::Tensor& index);
/// Refines images [N, C, R, R] in [−1, 1] from their codes z [N, D] in chunks of `chunk` (model.refine);
/// progress(step, steps) counts the steps of all chunks. LatentPlan::uniform(z) when options are off.
LatentPlan refineInChunks(EvalModel& model, const torch::Tensor& images, const torch::Tensor& z,
                          const RefineOptions& options, const std::function<void(int64_t, int64_t)>& progress = {},
                          int64_t chunk = 32);

struct EvalOptions {
  /// Held-out images to measure on (at most; fewer when the data holds fewer).
  int64_t count = 64;
  /// Seeds the real-vs-real draw, the random samples, the mix pairs and the SWD projections.
  uint64_t seed = 0;
  /// Progress lines ("encoding 32 held-out images at 64 px"); nothing when empty.
  std::function<void(const std::string&)> log;
  /// Refinement of the held-out images' codes before reconstruction and mixing (off by default), and
  /// its progress (refineInChunks).
  RefineOptions refine;
  std::function<void(int64_t, int64_t)> refine_progress;
};

/// L_j at one split: the canvas after blocks [0, j) driven by the re-encoded mixture φ(θ(z_A; z_B at
/// blocks ≥ j)) against the one driven by z_A (mean squared difference).
struct LayerEntanglement {
  int j = 0;
  /// Resolution of that canvas (the output of block j − 1).
  int canvas_resolution = 0;
  double mse = 0.0;
};

struct EvalResult {
  int resolution = 0;
  int64_t held_out_images = 0;
  /// The data set's one-line description.
  std::string data;
  uint64_t seed = 0;
  /// Reconstruction θ(φ(x)) of the held-out images (∞ dB when perfect), from their refined codes
  /// when refinement is on.
  double psnr_db = 0.0;
  double ssim = 0.0;
  /// With refinement: its options, the reconstruction from the encoder's codes, and its seconds.
  std::optional<RefineOptions> refine;
  double encoder_psnr_db = 0.0, encoder_ssim = 0.0, refine_seconds = 0.0;
  /// Mean cos(z, φ(θ(z))) over random codes z.
  double cycle_consistency_cos = 0.0;
  /// One entry per split j = 1 .. blocks − 1.
  std::vector<LayerEntanglement> layer_entanglement;
  /// Mean of layer_entanglement's mse (0 for a one-block model).
  double layer_entanglement_mean = 0.0;
  /// Whether SWD was measured: not below the 7 px patch size.
  bool swd_computed = false;
  /// SWD × 10³ against the held-out images: training images (the floor), random samples, and mixes
  /// of random held-out pairs (B's code on the named scale, A's elsewhere), coarse to fine.
  SwdResult swd_real_floor, swd_samples;
  std::vector<std::pair<std::string, SwdResult>> swd_mixes;
  double swd_mixes_average = 0.0;

  /// The JSON `automod eval` prints (without the "model" and "seconds" the command adds).
  nlohmann::json toJson() const;
};

/// Measures `model` on the first options.count held-out images of `data` (at the model's resolution).
/// Throws automod::Error when the data holds no held-out image.
EvalResult evaluate(EvalModel& model, ImageDataset& data, const EvalOptions& options);
/// The same for an Automodulator (AutomodulatorEvalModel).
EvalResult evaluate(Automodulator& model, ImageDataset& data, const EvalOptions& options);

}  // namespace automod
