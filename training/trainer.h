#pragma once
// The automodulator trainer (docs/design.md §3): progressive growing from a preset, alternating encoder and
// decoder steps, EMA decoder, run folder with config, JSON-lines log, preview grids and atomic
// checkpoints holding the full training state, exact resume, NaN rollback.
//
// GUI / API use: construct a Trainer with a TrainerConfig and an ImageDataset, register callbacks,
// then either call run() in your own worker thread or start() to get one; pause(), resume() and
// stop() may be called from any thread. Callbacks run in the training thread and receive values
// (copy what you keep). LibTorch exceptions never escape run(): errors come back in the result.
#include <torch/optim/adam.h>
#include <torch/types.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/data/dataset.h"
#include "core/io/archive.h"
#include "core/model/automodulator.h"
#include "training/losses.h"
#include "training/robust_loss.h"
#include "training/schedule.h"

namespace automod {

class Distributed;

// ---------------------------------------------------------------------------------------------
// One training iteration, shared by the Trainer and `automod bench train`.

/// What learns: the model's encoder and decoder, the robust-loss parameters, and one Adam
/// (β = (0, 0.99), ε = 1e-8) for the encoder + robust loss and one for the decoder. With
/// `style_in_encoder_step` (flip-invariance training) the encoder's Adam also holds the decoder's
/// AdaIN style linears, which then learn in both steps.
struct TrainingModules {
  /// The encoder's Adam (with the robust-loss parameters) runs at lr × encoder_lr_factor, the
  /// decoder's at lr.
  /// `rec_max_resolution`: LossWeights::rec_max_resolution (the robust loss keeps parameters up to it).
  TrainingModules(Automodulator& model, double lr, bool style_in_encoder_step = false, double encoder_lr_factor = 1.0,
                  int rec_max_resolution = 0);
  Automodulator& model;
  RobustLoss robust{nullptr};
  std::unique_ptr<torch::optim::Adam> encoder_opt, decoder_opt;
  /// Data-parallel training (not owned; null = one process): gradients are averaged over the
  /// ranks after each backward; random numbers are drawn for the global batch (identical generator
  /// state on every rank) and each rank keeps its rows; the KL terms, the mixed/plain split, the
  /// image pool and the means of the loss terms are those of the global batch. With equal
  /// per-rank batches and the same generator state, N ranks with batch b compute one process's step
  /// with batch N·b (up to floating-point summation order).
  Distributed* dist = nullptr;
  void setLearningRate(double lr);
  double encoder_lr_factor = 1.0;
  /// Called after each step's backward pass, before its optimiser step (tests read the gradients).
  enum class Step { Encoder, Decoder };
  std::function<void(Step)> after_backward;
};

struct IterationResult {
  EncoderStepLosses enc;
  DecoderStepLosses dec;
  /// false when a loss was NaN/Inf; the step that saw it was not applied.
  bool finite = true;
};

/// Encoder step (decoder frozen, except its AdaIN style linears with ctx.flip_invariance), then
/// decoder step (encoder frozen), then the EMA update. Layer noise is on unless ctx.flip_invariance.
/// `poison` (tests only) makes the encoder loss NaN.
IterationResult trainIteration(TrainingModules& m, const torch::Tensor& x, const StepContext& ctx, const LossWeights& w,
                               ImagePool* pool, double ema_decay, bool poison = false);

/// Where a run stands, as a checkpoint records it.
struct TrainingCounters {
  int64_t images_seen = 0;
  int64_t iteration = 0;
  int64_t epoch = 0, epoch_pos = 0;
  double lr_scale = 1.0;
  int stage = 0;
  uint64_t seed = 0;
  int rollbacks = 0;
};

/// A run's checkpoint (what latest.amod holds): the model, the robust-loss parameters, both Adams,
/// the generator state, the image pool and the counters. `automod train --resume` continues it.
/// The Trainer writes its own with this; importers of other training states build one too.
TensorArchive trainingCheckpoint(Automodulator& model, TrainingModules& modules, const TrainingPreset& preset,
                                 const TrainingCounters& counters, const ImagePool* pool);

// ---------------------------------------------------------------------------------------------

struct TrainerConfig {
  TrainingPreset preset;
  /// The run folder: config.json, log.jsonl, previews/, latest.amod, checkpoint-NNNNNNNNN.amod.
  std::filesystem::path run_dir;
  uint64_t seed = 0;
  /// Stop once this many images have been seen in total (0 = the preset's total_images).
  int64_t max_images = 0;
  /// Continue from run_dir/latest.amod (its preset wins over `preset`).
  bool resume = false;
  /// With resume: go on under this preset instead of the checkpoint's (TrainingPreset::checkCanContinue
  /// must pass). The change is logged and later checkpoints carry the new preset.
  std::optional<TrainingPreset> continue_with;
  /// Start afresh in a folder that holds another run, removing that run's files (clearRunFolder).
  /// Without it (or resume), a folder that holds a run is refused: runs never overwrite runs.
  bool overwrite = false;
  torch::Device device = torch::kCPU;
  bool write_previews = true;
  /// Data-parallel training (not owned; see training/distributed.h): parameters are broadcast
  /// from rank 0 at start and on resume, `batch` in the preset is per rank and images are counted
  /// over all ranks, each rank reads its slice of every global batch, only rank 0 writes. Training
  /// then matches one process with the whole batch (same seed), up to float rounding.
  Distributed* distributed = nullptr;
  /// Number of samples / held-out reconstructions / mix rows in a preview.
  int preview_count = 8;
};

/// Loss values of one iteration as plain numbers.
struct TrainingLosses {
  double encoder_total = 0, kl_real = 0, kl_fake = 0, gap = 0, reconstruction = 0;
  double decoder_total = 0, kl_generated = 0, cosine = 0, layer = 0, decoder_rec = 0;
  nlohmann::json toJson() const;
};

struct TrainingProgress {
  int64_t images_seen = 0;
  int64_t target_images = 0;
  int64_t iteration = 0;
  int phase = 0;
  int resolution = 4;
  double alpha = 1.0;
  double lr = 0.0;
  TrainingLosses losses;
  double images_per_second = 0.0;
  /// Seconds to target_images at the current speed; < 0 while unknown.
  double eta_seconds = -1.0;
};

/// Preview grids, uint8 [H, W, C]; `reconstructions` and `mixes` are undefined without held-out data.
struct TrainingPreview {
  int64_t images_seen = 0;
  int resolution = 4;
  /// Random samples of the EMA decoder (fixed codes, so successive previews are comparable).
  torch::Tensor samples;
  /// Held-out images (top row) and their reconstructions (bottom row).
  torch::Tensor reconstructions;
  /// One row per pair: A, B, then A with B's coarse, intermediate and fine scales.
  torch::Tensor mixes;
};

struct TrainingResult {
  enum Status { Finished, Stopped, Failed } status = Finished;
  int64_t images_seen = 0;
  int rollbacks = 0;
  double seconds = 0.0;
  std::filesystem::path latest;
  std::string error;  ///< one line, when status == Failed
};

class Trainer {
 public:
  Trainer(TrainerConfig config, std::shared_ptr<ImageDataset> data);
  ~Trainer();  ///< stops and joins a thread started by start()
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Called from the training thread after every iteration.
  void onProgress(std::function<void(const TrainingProgress&)> fn) { progress_fn_ = std::move(fn); }
  /// Called from the training thread at every preview interval (and at the end).
  void onPreview(std::function<void(const TrainingPreview&)> fn) { preview_fn_ = std::move(fn); }
  /// Human-readable events: checkpoints, rollbacks, phase changes.
  void onMessage(std::function<void(const std::string&)> fn) { message_fn_ = std::move(fn); }

  /// Trains until the target, stop(), or an error; writes latest.amod before returning. Blocking.
  TrainingResult run();
  /// run() in a new thread; wait() joins it and returns its result.
  void start();
  TrainingResult wait();
  /// Thread-safe controls.
  void pause();
  void resume();
  void stop();
  bool isPaused() const { return paused_; }
  bool stopRequested() const { return stop_; }

  /// Tests only: return true to make that iteration's loss NaN.
  void setFaultInjector(std::function<bool(int64_t iteration)> fn) { fault_fn_ = std::move(fn); }

  /// The model being trained (valid after construction; do not touch while run() is active).
  Automodulator& model() { return *model_; }
  const TrainerConfig& config() const { return config_; }
  int64_t imagesSeen() const { return images_seen_; }

 private:
  void setUp();
  void writeConfig();
  void enterStage(int stage);
  void syncRanks();
  torch::Tensor nextRealBatch(int batch, int resolution);
  TrainingProgress progressAfter(const IterationResult& r, const SchedulePoint& s, double rate) const;
  bool rollBack(std::string* error);
  void checkpoint(bool numbered);
  TensorArchive checkpointArchive();
  void restore(const TensorArchive& archive, const std::string& source);
  void writePreview();
  void log(const nlohmann::json& line);
  void message(const std::string& text);
  int64_t targetImages() const;

  TrainerConfig config_;
  std::shared_ptr<ImageDataset> data_;
  std::unique_ptr<Automodulator> model_;
  std::unique_ptr<TrainingModules> modules_;
  ImagePool pool_;

  // Training state saved in checkpoints.
  int64_t images_seen_ = 0;
  int64_t iteration_ = 0;
  int64_t epoch_ = 0, epoch_pos_ = 0;
  double lr_scale_ = 1.0;
  int stage_ = 0;
  int rollbacks_ = 0;
  torch::Tensor order_;  // data order of the current epoch
  int64_t last_checkpoint_images_ = -1;

  std::function<void(const TrainingProgress&)> progress_fn_;
  std::function<void(const TrainingPreview&)> preview_fn_;
  std::function<void(const std::string&)> message_fn_;
  std::function<bool(int64_t)> fault_fn_;

  std::atomic<bool> paused_{false}, stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
  TrainingResult thread_result_;
};

}  // namespace automod
