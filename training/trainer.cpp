#include "training/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <deque>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/model/ranges.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"
#include "training/distributed.h"
#include "training/run_folder.h"

namespace automod {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// One iteration

namespace {

torch::optim::AdamOptions adamOptions(double lr) { return torch::optim::AdamOptions(lr).betas({0.0, 0.99}).eps(1e-8); }

void setRequiresGrad(torch::nn::Module& m, bool on) {
  for (auto& p : m.parameters(true)) p.requires_grad_(on);
}

// Gradients are reset to "none" (not zero), so a parameter unused this step is left alone by Adam,
// the same way in a fresh and in a resumed run.
void clearGrads(torch::optim::Optimizer& opt) {
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();
}

bool finite(const torch::Tensor& t) { return std::isfinite(t.item<double>()); }

}  // namespace

TrainingModules::TrainingModules(Automodulator& m, double lr, bool style_in_encoder_step, double encoder_lr_factor,
                                 int rec_max_resolution)
    : model(m), encoder_lr_factor(encoder_lr_factor) {
  const auto& c = m.config();
  robust = RobustLoss(RobustLossOptions(c.image_channels, c.resolution).max_element_resolution(rec_max_resolution));
  robust->to(m.device());
  auto enc_params = m.encoder->parameters(true);
  for (auto& p : robust->parameters(true)) enc_params.push_back(p);
  // (A parameter in both Adams has a separate state in each.)
  if (style_in_encoder_step)
    for (auto& p : m.decoder->styleParameters()) enc_params.push_back(p);
  encoder_opt = std::make_unique<torch::optim::Adam>(enc_params, adamOptions(lr * encoder_lr_factor));
  decoder_opt = std::make_unique<torch::optim::Adam>(m.decoder->parameters(true), adamOptions(lr));
}

void TrainingModules::setLearningRate(double lr) {
  for (auto& g : encoder_opt->param_groups())
    static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr * encoder_lr_factor);
  for (auto& g : decoder_opt->param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
}

IterationResult trainIteration(TrainingModules& m, const torch::Tensor& x, const StepContext& ctx, const LossWeights& w,
                               ImagePool* pool, double ema_decay, bool poison) {
  auto& model = m.model;
  model.encoder->train();
  model.decoder->train();
  model.decoder->setNoise(ctx.layer_noise && !ctx.flip_invariance);
  IterationResult r;
  GlobalBatchScope global_batch(m.dist);
  auto finiteEverywhere = [&](const torch::Tensor& t) { return m.dist ? m.dist->allFinite(t) : finite(t); };

  // Encoder step: the decoder is frozen (no weight gradients are computed for it), except for its
  // AdaIN style linears in flip-invariance training.
  setRequiresGrad(*model.decoder, false);
  if (ctx.flip_invariance)
    for (auto& p : model.decoder->styleParameters()) p.requires_grad_(true);
  setRequiresGrad(*model.encoder, true);
  clearGrads(*m.encoder_opt);
  r.enc = encoderStep(model.encoder, model.decoder, m.robust, x, ctx, w, pool);
  if (poison) r.enc.total = r.enc.total * std::numeric_limits<double>::quiet_NaN();
  if (!finiteEverywhere(r.enc.total)) {
    r.finite = false;
    setRequiresGrad(*model.decoder, true);
    return r;
  }
  r.enc.total.backward();
  if (m.dist) m.dist->allReduceMeanGradients(*m.encoder_opt);
  if (m.after_backward) m.after_backward(TrainingModules::Step::Encoder);
  m.encoder_opt->step();

  // Decoder step: the encoder is frozen (and, with freeze_previous_to_rgb, the fading-out toRGB).
  setRequiresGrad(*model.encoder, false);
  setRequiresGrad(*model.decoder, true);
  if (ctx.freeze_previous_to_rgb && ctx.fading() && ctx.stage > 0)
    for (auto& p : model.decoder->to_rgb->ptr(ctx.stage - 1)->parameters()) p.requires_grad_(false);
  clearGrads(*m.decoder_opt);
  r.dec = decoderStep(model.encoder, model.decoder, x.size(0), ctx, w, x);
  if (!finiteEverywhere(r.dec.total)) {
    r.finite = false;
    setRequiresGrad(*model.encoder, true);
    return r;
  }
  r.dec.total.backward();
  if (m.dist) m.dist->allReduceMeanGradients(*m.decoder_opt);
  if (m.after_backward) m.after_backward(TrainingModules::Step::Decoder);
  m.decoder_opt->step();
  setRequiresGrad(*model.encoder, true);
  updateEma(model.ema, model.decoder, ema_decay);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Helpers

namespace {

double value(const torch::Tensor& t) { return t.defined() ? t.item<double>() : 0.0; }

torch::Tensor tensorFromBytes(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data(), s.size());
  return t;
}

std::string bytesFromTensor(const torch::Tensor& t) {
  auto c = t.contiguous().to(torch::kCPU);
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()));
}

torch::Tensor saveOptimizer(torch::optim::Optimizer& opt) {
  torch::serialize::OutputArchive archive;
  opt.save(archive);
  std::ostringstream os;
  archive.save_to(os);
  return tensorFromBytes(os.str());
}

void loadOptimizer(torch::optim::Optimizer& opt, const torch::Tensor& bytes, const torch::Device& device) {
  std::istringstream is(bytesFromTensor(bytes));
  torch::serialize::InputArchive archive;
  archive.load_from(is, device);
  opt.load(archive);
}

torch::Tensor cpuRngState() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void setCpuRngState(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

std::string checkpointName(int64_t images) {
  std::ostringstream s;
  s << "checkpoint-" << std::setw(9) << std::setfill('0') << images << ".amod";
  return s.str();
}

bool allFinite(torch::nn::Module& m) {
  for (auto& p : m.parameters(true))
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

}  // namespace

nlohmann::json TrainingLosses::toJson() const {
  return {{"encoder_total", encoder_total}, {"kl_real", kl_real}, {"kl_fake", kl_fake},
          {"gap", gap},                     {"rec", reconstruction}, {"decoder_total", decoder_total},
          {"kl_generated", kl_generated},   {"cos", cosine},       {"layer", layer},
          {"decoder_rec", decoder_rec}};
}

// ---------------------------------------------------------------------------------------------
// Trainer

Trainer::Trainer(TrainerConfig config, std::shared_ptr<ImageDataset> data)
    : config_(std::move(config)), data_(std::move(data)), pool_(config_.preset.pool_size) {
  TORCH_CHECK(data_, "the trainer needs a data set");
  setUp();
}

Trainer::~Trainer() {
  stop();
  if (thread_.joinable()) thread_.join();
}

int64_t Trainer::targetImages() const {
  return config_.max_images > 0 ? config_.max_images : config_.preset.total_images;
}

void Trainer::message(const std::string& text) {
  if (message_fn_) message_fn_(text);
}

void Trainer::log(const nlohmann::json& line) {
  if (config_.distributed && !config_.distributed->isMain()) return;
  std::ofstream out(config_.run_dir / "log.jsonl", std::ios::app);
  out << line.dump() << '\n';
}

void Trainer::setUp() {
  std::error_code ec;
  fs::create_directories(config_.run_dir, ec);
  if (ec) throw Error("cannot create the run folder " + config_.run_dir.string() + ": " + ec.message());
  const fs::path latest = config_.run_dir / "latest.amod";
  TensorArchive archive;
  if (config_.resume) {
    if (!fs::exists(latest)) throw Error("nothing to resume: " + latest.string() + " does not exist");
    archive = readArchive(latest);
    if (archive.header.value("kind", "") != "checkpoint" || !archive.header.contains("training"))
      throw Error(latest.string() + " is a model file, not a training checkpoint");
    config_.preset = TrainingPreset::fromJson(archive.header["training"].at("preset"));
    config_.seed = archive.header["training"].value("seed", config_.seed);
  }
  nlohmann::json schedule_change;
  if (config_.resume && config_.continue_with) {
    const auto seen = archive.header["training"].at("images_seen").get<int64_t>();
    config_.continue_with->checkCanContinue(config_.preset, seen);
    schedule_change = {{"event", "schedule"},
                       {"images", seen},
                       {"from", config_.preset.toJson()},
                       {"to", config_.continue_with->toJson()}};
    config_.preset = *config_.continue_with;
  }
  if (!config_.resume && inspectRunFolder(config_.run_dir).holds_run) {
    if (!config_.overwrite)
      throw Error(config_.run_dir.string() + " already holds a run: continue it (resume) or choose another folder");
    if (!config_.distributed || config_.distributed->isMain()) clearRunFolder(config_.run_dir);
  }
  config_.preset.validate();
  if (data_->size() < config_.preset.batchFor(config_.preset.phases.front().resolution))
    throw Error("the data set has " + std::to_string(data_->size()) + " training images, fewer than one batch");
  const auto mc = config_.preset.modelConfig(data_->channels());
  if (config_.resume && ModelConfig::fromJson(archive.header.at("config")) != mc)
    throw Error(latest.string() + " was trained on data with a different number of channels");
  torch::manual_seed(config_.seed);
  model_ = std::make_unique<Automodulator>(mc, config_.device);
  modules_ = std::make_unique<TrainingModules>(*model_, config_.preset.phases.front().lr, config_.preset.flip_invariance,
                                               config_.preset.encoder_lr_factor, config_.preset.losses.rec_max_resolution);
  modules_->dist = config_.distributed;
  stage_ = config_.preset.at(0).stage;
  model_->setStage(stage_);
  if (config_.resume) {
    restore(archive, latest.string());
    message("resumed " + latest.string() + " at " + std::to_string(images_seen_) + " images");
    if (!schedule_change.is_null()) {
      // The run goes on under the new preset: its config.json and its log say so from here on.
      log(schedule_change);
      writeConfig();
      last_checkpoint_images_ = -1;  // run() saves the new preset into latest.amod before its first step
      message("continuing under preset '" + config_.preset.name + "' (" +
              std::to_string(config_.preset.total_images) + " images)");
    }
  } else {
    writeConfig();
  }
  syncRanks();
}

void Trainer::writeConfig() {
  if (config_.distributed && !config_.distributed->isMain()) return;
  nlohmann::json cfg{{"preset", config_.preset.toJson()}, {"seed", config_.seed}, {"data", data_->describe()},
                     {"device", config_.device.str()}, {"model", model_->config().toJson()}};
  std::ofstream(config_.run_dir / "config.json") << cfg.dump(2) << '\n';
}

void Trainer::syncRanks() {
  auto* dist = config_.distributed;
  if (!dist || dist->worldSize() == 1) return;
  // Rank 0's weights, EMA, robust-loss parameters and spectral-norm vectors everywhere.
  std::vector<torch::Tensor> state;
  for (auto* m : std::initializer_list<torch::nn::Module*>{model_->encoder.get(), model_->decoder.get(),
                                                         model_->ema.get(), modules_->robust.get()})
    for (auto& t : stateTensors(*m)) state.push_back(t);
  // And rank 0's generator state: every rank draws every random number of a step (codes, split
  // blocks, flips, noise, pool swaps) for the global batch and keeps its own rows, so that N ranks
  // with batch b train exactly like one process with batch N·b (see losses.cpp).
  state.push_back(cpuRngState());
  dist->broadcast(state);
  setCpuRngState(state.back());
}

void Trainer::enterStage(int stage) {
  while (stage_ < stage) {
    ++stage_;
    modules_->robust->growTo(ModelConfig::blockResolution(stage_), config_.preset.losses.robust_growth);
    model_->setStage(stage_);
    pool_.clear();
    message("growing to " + std::to_string(ModelConfig::blockResolution(stage_)) + " px");
  }
}

torch::Tensor Trainer::nextRealBatch(int batch, int resolution) {
  const int64_t n = data_->size();
  // Flip-invariance training reads half a batch and adds each image's mirror image next to it, so
  // its data stream advances by half the images seen.
  const bool pairs = config_.preset.flip_invariance;
  const int reads = pairs ? batch / 2 : batch;
  std::vector<int64_t> idx;
  idx.reserve(reads);
  if (config_.distributed && config_.distributed->worldSize() > 1)
    idx = DistributedSampler(n, config_.seed, config_.distributed->rank(), config_.distributed->worldSize())
              .localBatch(pairs ? images_seen_ / 2 : images_seen_, reads);
  while (static_cast<int>(idx.size()) < reads) {
    if (!order_.defined() || epoch_pos_ >= n) {
      if (order_.defined()) {
        ++epoch_;
        epoch_pos_ = 0;
      }
      auto gen = at::detail::createCPUGenerator(config_.seed * 1000003ULL + static_cast<uint64_t>(epoch_));
      order_ = torch::randperm(n, gen, torch::kLong);
    }
    idx.push_back(order_[epoch_pos_++].item<int64_t>());
  }
  auto u8 = data_->batch(idx, resolution);
  auto x = u8.to(model_->device(), torch::kFloat32).div(127.5).sub(1.0);
  // Pairs: rows 2i and 2i+1 are an image and its horizontal flip.
  if (pairs) return torch::stack({x, x.flip({3})}, 1).flatten(0, 1);
  // Random horizontal flip, p = 0.5 (drawn for the global batch; this rank's rows).
  const auto* dist = config_.distributed;
  BatchRowsScope rows(dist && dist->worldSize() > 1
                          ? BatchRows{int64_t(dist->rank()) * batch, int64_t(dist->worldSize()) * batch}
                          : BatchRows{});
  auto flip = (randRows({batch}) < 0.5).to(model_->device()).view({batch, 1, 1, 1});
  return torch::where(flip, x.flip({3}), x);
}

TrainingProgress Trainer::progressAfter(const IterationResult& r, const SchedulePoint& s, double rate) const {
  TrainingProgress p;
  p.images_seen = images_seen_;
  p.target_images = targetImages();
  p.iteration = iteration_;
  p.phase = s.phase;
  p.resolution = s.resolution;
  p.alpha = s.alpha;
  p.lr = s.lr * lr_scale_;
  auto& l = p.losses;
  l.encoder_total = value(r.enc.total);
  l.kl_real = value(r.enc.kl_real);
  l.kl_fake = value(r.enc.kl_fake);
  l.gap = value(r.enc.gap);
  l.reconstruction = value(r.enc.rec);
  l.decoder_total = value(r.dec.total);
  l.kl_generated = value(r.dec.kl_fake);
  l.cosine = value(r.dec.cos);
  l.layer = value(r.dec.layer);
  l.decoder_rec = value(r.dec.rec);
  p.images_per_second = rate;
  p.eta_seconds = rate > 0 ? double(std::max<int64_t>(0, p.target_images - images_seen_)) / rate : -1.0;
  return p;
}

TrainingResult Trainer::run() {
  TrainingResult result;
  const auto t0 = Clock::now();
  std::deque<std::pair<Clock::time_point, int64_t>> window;
  try {
    if (last_checkpoint_images_ < 0) checkpoint(false);  // a fresh run can always roll back
    const int64_t target = targetImages();
    while (images_seen_ < target && !(config_.distributed ? config_.distributed->anyTrue(stop_) : stop_.load())) {
      if (paused_) {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return !paused_ || stop_; });
        window.clear();
        continue;
      }
      const auto s = config_.preset.at(images_seen_);
      enterStage(s.stage);
      modules_->setLearningRate(s.lr * lr_scale_);
      auto x = blendRealForFadeIn(nextRealBatch(s.batch, s.resolution), s.alpha);
      const auto& preset = config_.preset;
      StepContext ctx{s.stage, s.alpha, s.m_gap, preset.flip_invariance};
      ctx.lambda_x = preset.lambdaX(s);
      ctx.freeze_previous_to_rgb = preset.freeze_previous_to_rgb;
      const bool pooled = preset.pool_from == TrainingPreset::PoolFrom::Stable ? !s.fading() : s.past_first_fade_in;
      if (pool_.capacity() != s.pool_size) pool_ = ImagePool(s.pool_size);
      const bool poison = fault_fn_ && fault_fn_(iteration_);
      auto r = trainIteration(*modules_, x, ctx, preset.lossesAt(s), pooled ? &pool_ : nullptr,
                              preset.ema_warmup ? emaDecayAt(preset.ema_decay, iteration_) : preset.ema_decay, poison);
      if (!r.finite) {
        std::string error;
        if (!rollBack(&error)) throw Error(error);
        window.clear();
        continue;
      }
      const int64_t before = images_seen_;
      images_seen_ += int64_t(s.batch) * (config_.distributed ? config_.distributed->worldSize() : 1);
      ++iteration_;
      window.emplace_back(Clock::now(), images_seen_);
      while (window.size() > 20) window.pop_front();
      double rate = 0.0;
      if (window.size() >= 2) {
        const double dt = std::chrono::duration<double>(window.back().first - window.front().first).count();
        if (dt > 0) rate = double(window.back().second - window.front().second) / dt;
      }
      auto progress = progressAfter(r, s, rate);
      const auto& every = config_.preset;
      if (images_seen_ / every.log_every != before / every.log_every || images_seen_ >= target) {
        nlohmann::json line{{"images", images_seen_}, {"iteration", iteration_}, {"phase", s.phase},
                            {"resolution", s.resolution}, {"alpha", s.alpha}, {"lr", progress.lr},
                            {"images_per_second", rate}, {"losses", progress.losses.toJson()}};
        log(line);
      }
      if (progress_fn_) progress_fn_(progress);
      if (images_seen_ / every.preview_every != before / every.preview_every) writePreview();
      if (images_seen_ / every.checkpoint_every != before / every.checkpoint_every) checkpoint(true);
    }
    if (last_checkpoint_images_ != images_seen_) checkpoint(false);
    result.status = stop_ && images_seen_ < target ? TrainingResult::Stopped : TrainingResult::Finished;
    if (result.status == TrainingResult::Finished) writePreview();
  } catch (const std::exception& e) {
    result.status = TrainingResult::Failed;
    result.error = errorMessage(e);
    log({{"event", "failed"}, {"images", images_seen_}, {"error", result.error}});
  }
  result.images_seen = images_seen_;
  result.rollbacks = rollbacks_;
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  result.latest = config_.run_dir / "latest.amod";
  return result;
}

bool Trainer::rollBack(std::string* error) {
  const fs::path latest = config_.run_dir / "latest.amod";
  ++rollbacks_;
  if (rollbacks_ > 10) {
    *error = "the loss keeps becoming NaN/Inf (10 rollbacks); the run stops at its last checkpoint " + latest.string();
    return false;
  }
  const double scale = lr_scale_ * 0.5;
  const int64_t at = images_seen_;
  restore(readArchive(latest), latest.string());
  lr_scale_ = scale;
  std::ostringstream msg;
  msg << "NaN/Inf loss at " << at << " images: rolled back to the checkpoint at " << images_seen_
      << " images, learning rate halved (x" << lr_scale_ << ")";
  log({{"event", "rollback"}, {"images", at}, {"restored_images", images_seen_}, {"lr_scale", lr_scale_}});
  message(msg.str());
  return true;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

TensorArchive trainingCheckpoint(Automodulator& model, TrainingModules& modules, const TrainingPreset& preset,
                                 const TrainingCounters& c, const ImagePool* pool) {
  const auto s = preset.at(c.images_seen);
  model.metadata["images_seen"] = c.images_seen;
  model.metadata["preset"] = preset.name;
  TensorArchive a = modelArchive(model);
  a.header["kind"] = "checkpoint";
  // A model opened from a checkpoint taken during a fade-in uses the last fully grown block.
  // (At a phase boundary the schedule may already name the next stage; the model grows next iteration.)
  const bool fading = s.stage == c.stage && s.fading();
  const int usable = fading && c.stage > 0 ? c.stage - 1 : c.stage;
  a.header["stage"] = usable;
  a.header["resolution"] = ModelConfig::blockResolution(usable);
  a.header["training"] = {{"images_seen", c.images_seen}, {"iteration", c.iteration}, {"epoch", c.epoch},
                          {"epoch_pos", c.epoch_pos},     {"lr_scale", c.lr_scale},   {"stage", c.stage},
                          {"seed", c.seed},               {"rollbacks", c.rollbacks}, {"preset", preset.toJson()}};
  for (auto& p : modules.robust->named_parameters(true)) a.add("robust." + p.key(), p.value().detach().cpu());
  a.add("optim.encoder", saveOptimizer(*modules.encoder_opt));
  a.add("optim.decoder", saveOptimizer(*modules.decoder_opt));
  a.add("rng.cpu", cpuRngState());
  if (pool && pool->count() > 0) a.add("pool.images", pool->state().cpu());
  return a;
}

TensorArchive Trainer::checkpointArchive() {
  TrainingCounters c{images_seen_, iteration_, epoch_, epoch_pos_, lr_scale_, stage_, config_.seed, rollbacks_};
  return trainingCheckpoint(*model_, *modules_, config_.preset, c, &pool_);
}

void Trainer::checkpoint(bool numbered) {
  if (!allFinite(*model_->decoder) || !allFinite(*model_->encoder) || !allFinite(*model_->ema))
    throw Error("refusing to write a checkpoint with NaN/Inf weights at " + std::to_string(images_seen_) + " images");
  const auto archive = checkpointArchive();
  const fs::path latest = config_.run_dir / "latest.amod";
  const bool writer = !config_.distributed || config_.distributed->isMain();
  if (writer) try {
    if (numbered) writeArchive(config_.run_dir / checkpointName(images_seen_), archive);
    writeArchive(latest, archive);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " — training stopped; the previous checkpoint " + latest.string() +
                " is intact");
  }
  last_checkpoint_images_ = images_seen_;
  log({{"event", "checkpoint"}, {"images", images_seen_}, {"numbered", numbered}});
  message("checkpoint at " + std::to_string(images_seen_) + " images");
}

void Trainer::restore(const TensorArchive& a, const std::string& source) {
  const auto& t = a.header.at("training");
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, tensor] : namedState(*model_)) tensor.copy_(a.get(name));
    for (auto& p : modules_->robust->named_parameters(true)) p.value().copy_(a.get("robust." + p.key()));
  }
  loadOptimizer(*modules_->encoder_opt, a.get("optim.encoder"), model_->device());
  loadOptimizer(*modules_->decoder_opt, a.get("optim.decoder"), model_->device());
  setCpuRngState(a.get("rng.cpu"));
  images_seen_ = t.at("images_seen").get<int64_t>();
  pool_ = ImagePool(config_.preset.at(images_seen_).pool_size);
  if (a.has("pool.images")) pool_.restore(a.get("pool.images").to(model_->device()));
  iteration_ = t.at("iteration").get<int64_t>();
  epoch_ = t.at("epoch").get<int64_t>();
  epoch_pos_ = t.at("epoch_pos").get<int64_t>();
  lr_scale_ = t.at("lr_scale").get<double>();
  rollbacks_ = std::max(rollbacks_, t.value("rollbacks", 0));
  stage_ = t.at("stage").get<int>();
  model_->setStage(stage_);
  model_->metadata = a.header.value("metadata", nlohmann::json::object());
  auto gen = at::detail::createCPUGenerator(config_.seed * 1000003ULL + static_cast<uint64_t>(epoch_));
  order_ = torch::randperm(data_->size(), gen, torch::kLong);
  last_checkpoint_images_ = images_seen_;
  (void)source;
}

// ---------------------------------------------------------------------------------------------
// Previews

void Trainer::writePreview() {
  if (!config_.write_previews && !preview_fn_) return;
  if (config_.distributed && !config_.distributed->isMain()) return;
  torch::NoGradGuard no_grad;
  // The stage the model is at (at a phase boundary the schedule may already name the next one).
  const auto next = config_.preset.at(images_seen_);
  struct {
    int resolution;
    double alpha;
  } s{ModelConfig::blockResolution(stage_), next.stage == stage_ ? next.alpha : 1.0};
  auto& m = *model_;
  m.encoder->eval();  // eval: the spectral-norm vectors stay as they are
  m.ema->setNoise(false);
  const int n = std::max(2, config_.preview_count);
  TrainingPreview pv;
  pv.images_seen = images_seen_;
  pv.resolution = s.resolution;
  auto z = m.randomLatents(n, 20200101);
  pv.samples = makeGrid(toImage(m.ema->forward(z, stage_, s.alpha)), n);
  const int64_t held = std::min<int64_t>(n, data_->heldOutSize());
  if (held >= 2) {
    std::vector<int64_t> idx(held);
    for (int64_t i = 0; i < held; ++i) idx[i] = i;
    auto x = data_->heldOut(idx, s.resolution).to(m.device(), torch::kFloat32).div(127.5).sub(1.0);
    auto zx = m.encoder->forward(x, stage_, s.alpha);
    auto rec = m.ema->forward(zx, stage_, s.alpha);
    pv.reconstructions = makeGrid(toImage(torch::cat({x, rec})), static_cast<int>(held));
    // Mixes: A, B, then A with B's coarse, intermediate and fine blocks (each scale the model has).
    const int64_t pairs = held / 2;
    auto za = zx.narrow(0, 0, pairs), zb = zx.narrow(0, pairs, pairs);
    std::vector<torch::Tensor> cols{x.narrow(0, 0, pairs), x.narrow(0, pairs, pairs)};
    const int nb = m.numBlocks();
    for (const auto& [name, range] : namedRanges(BlockLayout::of(m))) {
      std::vector<torch::Tensor> per_block;
      for (int b = 0; b < nb; ++b) per_block.push_back(range.contains(b) ? zb : za);
      cols.push_back(m.ema->forward(LatentPlan(per_block), stage_, s.alpha));
    }
    auto grid = torch::stack(cols, 1).flatten(0, 1);  // row per pair
    pv.mixes = makeGrid(toImage(grid), static_cast<int>(cols.size()));
  }
  m.encoder->train();
  if (config_.write_previews) {
    const fs::path dir = config_.run_dir / "previews";
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::ostringstream tag;
    tag << std::setw(9) << std::setfill('0') << images_seen_;
    try {
      writeImage(dir / ("samples-" + tag.str() + ".png"), pv.samples);
      if (pv.reconstructions.defined()) writeImage(dir / ("reconstructions-" + tag.str() + ".png"), pv.reconstructions);
      if (pv.mixes.defined()) writeImage(dir / ("mixes-" + tag.str() + ".png"), pv.mixes);
    } catch (const Error& e) {
      message(std::string("preview not written: ") + e.what());
    }
  }
  if (preview_fn_) preview_fn_(pv);
}

// ---------------------------------------------------------------------------------------------
// Thread controls

void Trainer::start() {
  TORCH_CHECK(!thread_.joinable(), "the trainer is already running");
  stop_ = false;
  thread_ = std::thread([this] { thread_result_ = run(); });
}

TrainingResult Trainer::wait() {
  if (thread_.joinable()) thread_.join();
  return thread_result_;
}

void Trainer::pause() { paused_ = true; }

void Trainer::resume() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    paused_ = false;
  }
  cv_.notify_all();
}

void Trainer::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
}

}  // namespace automod
