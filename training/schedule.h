#pragma once
// The progressive training schedule (docs/design.md §3) and the JSON presets that describe a whole run:
// phases (resolution, images at start, learning rate, M_gap), batch size per resolution, fade-in
// length, model widths and latent size, loss weights, checkpoint/preview/log intervals.
//
// Presets ship as resources/presets/<name>.json and are found in $AUTOMOD_PRESET_DIR, the
// installed share/automod/presets, or the source tree; a path to any JSON file works too.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/model/config.h"
#include "training/losses.h"

namespace automod {

struct Phase {
  int resolution = 4;
  int64_t images_at_start = 0;
  double lr = 5e-4;
  double m_gap = 0.0;
  /// The cycle term's weight in this phase (JSON phase "cos"); unset: the preset's losses.cos.
  std::optional<double> cos;
};

/// Where the schedule stands at a given number of images seen.
struct SchedulePoint {
  int phase = 0;
  int resolution = 4;
  int stage = 0;
  double alpha = 1.0;  ///< fade-in weight of the top block; 1 when stable
  double lr = 5e-4;
  double m_gap = 0.0;
  std::optional<double> cos;  ///< the phase's cycle weight, when it sets one
  int batch = 16;
  /// The first fade-in has completed (the image pool starts then, unless pool_from is "stable").
  bool past_first_fade_in = false;
  /// Within the first fade_in_images of this resolution (the first resolution included): the
  /// authors' λ_X = lambda_x_fade applies then (lambda_x_schedule "stage-start").
  bool stage_start = false;
  /// Capacity of the image pool at this resolution.
  int pool_size = 200;
  bool fading() const { return alpha < 1.0; }
};

struct TrainingPreset {
  std::string name = "custom";
  std::string description;
  /// Model: final resolution, width table (or explicit widths), latent size. image_channels
  /// follows the data.
  int resolution = 16;
  std::string width_table = "cpu-32";
  std::vector<int> widths;  ///< overrides the table when not empty
  int latent_dim = 512;
  /// ModelConfig::plain_modulation for the model trained (JSON model.plain_modulation; the shipped
  /// presets set it; absent means false, so runs checkpointed before the option resume unchanged).
  bool plain_modulation = false;
  std::vector<Phase> phases;
  std::map<int, int> batch_by_resolution;
  /// Images over which a new resolution fades in (α rising 0 → 1).
  int64_t fade_in_images = 1200000;
  /// Length of the whole run.
  int64_t total_images = 0;
  int64_t checkpoint_every = 100000;
  int64_t preview_every = 50000;
  int64_t log_every = 1000;
  int pool_size = 200;
  /// Pool capacity by resolution where it differs from pool_size (the authors': 100 from 256 px).
  std::map<int, int> pool_size_by_resolution;
  /// When generated images go through the pool: "first-fade-in" (from the end of the first
  /// fade-in on) or "stable" (whenever α = 1, as the authors' code: not during any fade-in).
  enum class PoolFrom { FirstFadeIn, Stable } pool_from = PoolFrom::FirstFadeIn;
  /// λ_X of the reconstruction term: "fade-in" (lambda_x_fade while α < 1) or "stage-start"
  /// (lambda_x_fade for the first fade_in_images of every resolution, the first included: the
  /// authors' code).
  enum class LambdaXSchedule { FadeIn, StageStart } lambda_x_schedule = LambdaXSchedule::FadeIn;
  /// During a fade-in the decoder step leaves the previous resolution's toRGB alone, as the authors'
  /// code does. Off: it learns in the decoder step like every other decoder weight.
  bool freeze_previous_to_rgb = false;
  double ema_decay = 0.999;
  /// The EMA decay warms up as min(decay, (1 + t)/(10 + t)) (emaDecayAt); off: the fixed decay of
  /// the authors' code.
  bool ema_warmup = true;
  /// The encoder's learning rate relative to the phase's (JSON "encoder_lr_factor", 1 = the paper).
  /// Below 1 the encoder, whose spectrally normalised weights move several times faster under Adam
  /// than the decoder's equalised ones, changes slowly enough for the decoder's cycle term to follow
  /// it: at CPU budgets this is what makes cos(z, φ(θ(z))) grow at all (README, training notes).
  double encoder_lr_factor = 1.0;
  LossWeights losses;
  /// Flip-invariance training (docs/design.md §3, paper Sec. 3.3; JSON "flip_invariance", off by default):
  /// each batch is half images, half their horizontal flips (batch sizes must be even), the model
  /// gets the extra 8×8 decoder block, and the encoder step uses the swapped-code reconstruction.
  bool flip_invariance = false;

  /// λ_X at a point of the schedule.
  double lambdaX(const SchedulePoint& s) const;
  /// The loss weights at a point of the schedule: `losses` with the phase's own cycle weight.
  LossWeights lossesAt(const SchedulePoint& s) const;
  /// The schedule at `images_seen` (clamped to the last phase).
  SchedulePoint at(int64_t images_seen) const;
  /// Fade-in weight at `images_seen`: 1 for the first resolution, else linear over fade_in_images
  /// from the first phase at the current resolution.
  double fadeAlpha(int64_t images_seen) const;
  int batchFor(int resolution) const;
  /// The model config for data with `image_channels` channels.
  ModelConfig modelConfig(int image_channels) const;

  /// Throws automod::Error naming the bad field (empty phases, unsorted starts, resolutions that
  /// do not grow by ×2, missing batch sizes, ...).
  void validate() const;
  /// Throws automod::Error saying what differs unless a run trained under `from` for `images_seen`
  /// images can go on under this preset (automod train --resume --schedule): the same model
  /// (resolution, widths, latent size, modulation, flip invariance), the same resolution and fade-in
  /// position at `images_seen`, and images left to train. Learning rates, later phases, the length,
  /// intervals and loss weights may differ: that is what a new schedule is for (e.g. a learning-rate
  /// decay for the rest of a run).
  void checkCanContinue(const TrainingPreset& from, int64_t images_seen) const;
  nlohmann::json toJson() const;
  static TrainingPreset fromJson(const nlohmann::json& j);
};

/// The folders searched for presets, in order (existing ones only).
std::vector<std::filesystem::path> presetDirs();
/// Names of the presets found (sorted, unique).
std::vector<std::string> listPresets();
/// Loads a preset by name, or from a path when `name_or_path` ends in .json or names a file.
TrainingPreset loadPreset(const std::string& name_or_path);

}  // namespace automod
