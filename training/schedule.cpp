#include "training/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>

#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;

int TrainingPreset::batchFor(int resolution) const {
  auto it = batch_by_resolution.find(resolution);
  if (it == batch_by_resolution.end())
    throw Error("preset '" + name + "' has no batch size for " + std::to_string(resolution) + " px");
  return it->second;
}

double TrainingPreset::fadeAlpha(int64_t images_seen) const {
  const auto p = at(images_seen);
  return p.alpha;
}

double TrainingPreset::lambdaX(const SchedulePoint& s) const {
  const bool early = lambda_x_schedule == LambdaXSchedule::StageStart ? s.stage_start : s.fading();
  return early ? losses.lambda_x_fade : losses.lambda_x_stable;
}

SchedulePoint TrainingPreset::at(int64_t images_seen) const {
  TORCH_CHECK(!phases.empty(), "the schedule has no phases");
  SchedulePoint s;
  int idx = 0;
  for (size_t i = 0; i < phases.size(); ++i)
    if (phases[i].images_at_start <= images_seen) idx = static_cast<int>(i);
  const Phase& ph = phases[idx];
  s.phase = idx;
  s.resolution = ph.resolution;
  s.stage = ModelConfig::blockForResolution(ph.resolution);
  s.lr = ph.lr;
  s.m_gap = ph.m_gap;
  s.cos = ph.cos;
  s.batch = batchFor(ph.resolution);
  // The first phase at this resolution starts its fade-in (none for the first resolution).
  int64_t res_start = ph.images_at_start;
  for (int i = idx; i >= 0 && phases[i].resolution == ph.resolution; --i) res_start = phases[i].images_at_start;
  const bool first_resolution = ph.resolution == phases.front().resolution;
  if (!first_resolution && fade_in_images > 0)
    s.alpha = std::clamp(double(images_seen - res_start) / double(fade_in_images), 0.0, 1.0);
  s.stage_start = images_seen - res_start < fade_in_images;
  auto pool = pool_size_by_resolution.find(ph.resolution);
  s.pool_size = pool == pool_size_by_resolution.end() ? pool_size : pool->second;
  // The first fade-in is that of the second resolution.
  for (const auto& p : phases) {
    if (p.resolution != phases.front().resolution) {
      s.past_first_fade_in = images_seen >= p.images_at_start + fade_in_images;
      break;
    }
  }
  return s;
}

ModelConfig TrainingPreset::modelConfig(int image_channels) const {
  ModelConfig c;
  if (widths.empty()) {
    c = ModelConfig::fromTable(width_table, resolution, image_channels, latent_dim);
  } else {
    c.resolution = resolution;
    c.image_channels = image_channels;
    c.latent_dim = latent_dim;
    c.widths = widths;
    c.width_table = "custom";
  }
  c.extra_8x8_block = flip_invariance;
  c.plain_modulation = c.plain_modulation || plain_modulation;  // the reference tables set it themselves
  c.validate();
  return c;
}

void TrainingPreset::validate() const {
  auto fail = [&](const std::string& what) { throw Error("preset '" + name + "': " + what); };
  if (phases.empty()) fail("no phases");
  int prev_res = 0;
  int64_t prev_start = -1;
  for (size_t i = 0; i < phases.size(); ++i) {
    const auto& p = phases[i];
    try {
      ModelConfig::blockForResolution(p.resolution);
    } catch (const Error&) {
      fail("phase " + std::to_string(i) + " resolution " + std::to_string(p.resolution) + " is not 4·2^k");
    }
    if (i == 0 && p.images_at_start != 0) fail("the first phase must start at 0 images");
    if (p.images_at_start <= prev_start) fail("phase " + std::to_string(i) + " does not start after the previous one");
    if (prev_res && p.resolution != prev_res && p.resolution != 2 * prev_res)
      fail("phase " + std::to_string(i) + " jumps from " + std::to_string(prev_res) + " to " +
           std::to_string(p.resolution) + " px (resolutions grow by ×2)");
    if (!(p.lr > 0)) fail("phase " + std::to_string(i) + " needs a positive lr");
    if (p.m_gap < 0) fail("phase " + std::to_string(i) + " has a negative m_gap");
    if (p.cos && !(*p.cos >= 0)) fail("phase " + std::to_string(i) + " needs a cos weight >= 0");
    if (p.resolution > resolution) fail("phase " + std::to_string(i) + " exceeds the model resolution");
    if (!batch_by_resolution.count(p.resolution)) fail("no batch size for " + std::to_string(p.resolution) + " px");
    prev_res = p.resolution;
    prev_start = p.images_at_start;
  }
  for (auto& [r, b] : batch_by_resolution)
    if (b < 2) fail("batch size at " + std::to_string(r) + " px must be at least 2 (batch statistics)");
  if (total_images <= 0) fail("total_images must be positive");
  if (fade_in_images < 0) fail("fade_in_images must be >= 0");
  if (checkpoint_every <= 0 || preview_every <= 0 || log_every <= 0) fail("intervals must be positive");
  if (!(ema_decay > 0 && ema_decay < 1)) fail("ema_decay must be in (0, 1)");
  if (pool_size < 0) fail("pool_size must be >= 0");
  for (auto& [r, n] : pool_size_by_resolution)
    if (n < 0) fail("pool_size_by_resolution at " + std::to_string(r) + " px must be >= 0");
  if (!(encoder_lr_factor > 0 && encoder_lr_factor <= 10)) fail("encoder_lr_factor must be in (0, 10]");
  if (!(losses.decoder_rec >= 0)) fail("losses.decoder_rec must be >= 0");
  if (losses.rec_max_resolution < 0 || (losses.rec_max_resolution & (losses.rec_max_resolution - 1)) != 0)
    fail("losses.rec_max_resolution must be 0 or a power of two");
  if (flip_invariance) {
    if (resolution < 8) fail("flip_invariance needs a model resolution of at least 8 px (it adds a block at 8×8)");
    for (auto& [r, b] : batch_by_resolution)
      if (b % 2 != 0)
        fail("flip_invariance needs even batch sizes (image + flip pairs), but " + std::to_string(r) + " px has " +
             std::to_string(b));
  }
  modelConfig(3);
}

LossWeights TrainingPreset::lossesAt(const SchedulePoint& s) const {
  LossWeights w = losses;
  if (s.cos) w.cos = *s.cos;
  return w;
}

void TrainingPreset::checkCanContinue(const TrainingPreset& from, int64_t images_seen) const {
  const std::string seen = std::to_string(images_seen);
  auto fail = [&](const std::string& what) {
    throw Error("preset '" + name + "' cannot continue the run ('" + from.name + "' at " + seen + " images): " + what);
  };
  validate();
  const ModelConfig mine = modelConfig(3), theirs = from.modelConfig(3);
  if (mine.resolution != theirs.resolution)
    fail("it trains a " + std::to_string(mine.resolution) + " px model, the run a " + std::to_string(theirs.resolution) +
         " px one");
  if (mine.widths != theirs.widths) fail("its block widths differ from the run's");
  if (mine.latent_dim != theirs.latent_dim)
    fail("its latent size is " + std::to_string(mine.latent_dim) + ", the run's " + std::to_string(theirs.latent_dim));
  if (mine != theirs) fail("its model settings (modulation, learned input) differ from the run's");
  if (flip_invariance != from.flip_invariance) fail("flip invariance is not the same");
  const SchedulePoint now = at(images_seen), then = from.at(images_seen);
  if (now.resolution != then.resolution)
    fail("at " + seen + " images it trains at " + std::to_string(now.resolution) + " px, the run at " +
         std::to_string(then.resolution) + " px");
  if (std::abs(now.alpha - then.alpha) > 1e-9)
    fail("at " + seen + " images its fade-in stands at " + std::to_string(now.alpha) + ", the run's at " +
         std::to_string(then.alpha));
  if (total_images <= images_seen) fail("it ends at " + std::to_string(total_images) + " images");
}

nlohmann::json TrainingPreset::toJson() const {
  nlohmann::json j;
  j["name"] = name;
  j["description"] = description;
  j["model"] = {{"resolution", resolution}, {"width_table", width_table}, {"latent_dim", latent_dim}};
  if (!widths.empty()) j["model"]["widths"] = widths;
  if (plain_modulation) j["model"]["plain_modulation"] = true;
  j["phases"] = nlohmann::json::array();
  for (auto& p : phases) {
    j["phases"].push_back({{"resolution", p.resolution}, {"images", p.images_at_start}, {"lr", p.lr}, {"m_gap", p.m_gap}});
    if (p.cos) j["phases"].back()["cos"] = *p.cos;
  }
  j["batch"] = nlohmann::json::object();
  for (auto& [r, b] : batch_by_resolution) j["batch"][std::to_string(r)] = b;
  j["fade_in_images"] = fade_in_images;
  j["total_images"] = total_images;
  j["checkpoint_every"] = checkpoint_every;
  j["preview_every"] = preview_every;
  j["log_every"] = log_every;
  j["pool_size"] = pool_size;
  if (!pool_size_by_resolution.empty()) {
    j["pool_size_by_resolution"] = nlohmann::json::object();
    for (auto& [r, n] : pool_size_by_resolution) j["pool_size_by_resolution"][std::to_string(r)] = n;
  }
  // Written only when not the defaults, so that older run configs stay as they were.
  if (pool_from == PoolFrom::Stable) j["pool_from"] = "stable";
  if (lambda_x_schedule == LambdaXSchedule::StageStart) j["lambda_x_schedule"] = "stage-start";
  if (freeze_previous_to_rgb) j["freeze_previous_to_rgb"] = true;
  j["ema_decay"] = ema_decay;
  if (!ema_warmup) j["ema_warmup"] = false;
  if (encoder_lr_factor != 1.0) j["encoder_lr_factor"] = encoder_lr_factor;
  if (flip_invariance) j["flip_invariance"] = true;
  const auto& w = losses;
  j["losses"] = {{"kl", w.kl},
                 {"gap", w.gap},
                 {"rec", w.rec},
                 {"lambda_x_fade", w.lambda_x_fade},
                 {"lambda_x_stable", w.lambda_x_stable},
                 {"cos", w.cos},
                 {"layer", w.layer},
                 {"reconstruction", w.robust ? "robust" : "l1"},
                 {"encoder_mix_fraction", w.encoder_mix_fraction},
                 {"decoder_mix_fraction", w.decoder_mix_fraction}};
  if (w.decoder_rec != 0.0) j["losses"]["decoder_rec"] = w.decoder_rec;
  // Written only when they differ from the defaults, so older run configs stay as they were.
  if (w.gap_clamp == LossWeights::GapClamp::Reference) j["losses"]["gap_clamp"] = "reference";
  if (w.cycle == LossWeights::Cycle::Reference) j["losses"]["cycle"] = "reference";
  if (w.separate_encoder_passes) j["losses"]["encoder_passes"] = "separate";
  if (w.rec_max_resolution > 0) j["losses"]["rec_max_resolution"] = w.rec_max_resolution;
  if (w.robust_growth == RobustGrowth::Flat) j["losses"]["robust_growth"] = "flat";
  return j;
}

TrainingPreset TrainingPreset::fromJson(const nlohmann::json& j) {
  TrainingPreset p;
  try {
    p.name = j.value("name", std::string("custom"));
    p.description = j.value("description", std::string());
    const auto& m = j.at("model");
    p.resolution = m.at("resolution").get<int>();
    p.width_table = m.value("width_table", std::string("custom"));
    p.widths = m.value("widths", std::vector<int>{});
    p.latent_dim = m.value("latent_dim", 512);
    p.plain_modulation = m.value("plain_modulation", false);
    for (const auto& ph : j.at("phases"))
      p.phases.push_back(Phase{ph.at("resolution").get<int>(), ph.at("images").get<int64_t>(), ph.at("lr").get<double>(),
                               ph.value("m_gap", 0.0),
                               ph.contains("cos") ? std::optional<double>(ph.at("cos").get<double>()) : std::nullopt});
    for (auto& [k, v] : j.at("batch").items()) p.batch_by_resolution[std::stoi(k)] = v.get<int>();
    p.fade_in_images = j.at("fade_in_images").get<int64_t>();
    p.total_images = j.at("total_images").get<int64_t>();
    p.checkpoint_every = j.value("checkpoint_every", p.checkpoint_every);
    p.preview_every = j.value("preview_every", p.preview_every);
    p.log_every = j.value("log_every", p.log_every);
    p.pool_size = j.value("pool_size", p.pool_size);
    if (j.contains("pool_size_by_resolution"))
      for (auto& [k, v] : j.at("pool_size_by_resolution").items()) p.pool_size_by_resolution[std::stoi(k)] = v.get<int>();
    // A two-valued text field: false for `a` (the default), true for `b`.
    auto choice = [&](const nlohmann::json& obj, const char* key, const char* a, const char* b, const char* where = "") {
      const auto v = obj.value(key, std::string(a));
      if (v != a && v != b)
        throw Error("preset '" + p.name + "': " + where + key + " must be \"" + a + "\" or \"" + b + "\", not \"" + v +
                    "\"");
      return v == b;
    };
    p.pool_from = choice(j, "pool_from", "first-fade-in", "stable") ? TrainingPreset::PoolFrom::Stable
                                                                    : TrainingPreset::PoolFrom::FirstFadeIn;
    p.lambda_x_schedule = choice(j, "lambda_x_schedule", "fade-in", "stage-start")
                              ? TrainingPreset::LambdaXSchedule::StageStart
                              : TrainingPreset::LambdaXSchedule::FadeIn;
    p.freeze_previous_to_rgb = j.value("freeze_previous_to_rgb", false);
    p.ema_warmup = j.value("ema_warmup", true);
    p.ema_decay = j.value("ema_decay", p.ema_decay);
    p.encoder_lr_factor = j.value("encoder_lr_factor", p.encoder_lr_factor);
    p.flip_invariance = j.value("flip_invariance", false);
    if (j.contains("losses")) {
      const auto& l = j["losses"];
      auto& w = p.losses;
      w.kl = l.value("kl", w.kl);
      w.gap = l.value("gap", w.gap);
      w.rec = l.value("rec", w.rec);
      w.lambda_x_fade = l.value("lambda_x_fade", w.lambda_x_fade);
      w.lambda_x_stable = l.value("lambda_x_stable", w.lambda_x_stable);
      w.cos = l.value("cos", w.cos);
      w.layer = l.value("layer", w.layer);
      const auto rec_kind = l.value("reconstruction", std::string("robust"));
      if (rec_kind != "robust" && rec_kind != "l1")
        throw Error("preset '" + p.name + "': losses.reconstruction must be \"robust\" or \"l1\", not \"" + rec_kind + "\"");
      w.robust = rec_kind == "robust";
      w.encoder_mix_fraction = l.value("encoder_mix_fraction", w.encoder_mix_fraction);
      w.decoder_mix_fraction = l.value("decoder_mix_fraction", w.decoder_mix_fraction);
      w.decoder_rec = l.value("decoder_rec", w.decoder_rec);
      w.gap_clamp = choice(l, "gap_clamp", "hinge", "reference", "losses.") ? LossWeights::GapClamp::Reference
                                                                         : LossWeights::GapClamp::Hinge;
      w.cycle = choice(l, "cycle", "cosine", "reference", "losses.") ? LossWeights::Cycle::Reference
                                                                 : LossWeights::Cycle::Cosine;
      w.separate_encoder_passes = choice(l, "encoder_passes", "joint", "separate", "losses.");
      w.rec_max_resolution = l.value("rec_max_resolution", 0);
      w.robust_growth = choice(l, "robust_growth", "spatial", "flat", "losses.") ? RobustGrowth::Flat
                                                                             : RobustGrowth::Spatial;
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error("preset '" + p.name + "' is malformed: " + e.what());
  } catch (const std::invalid_argument&) {
    throw Error("preset '" + p.name + "': batch keys must be resolutions");
  }
  p.validate();
  return p;
}

std::vector<fs::path> presetDirs() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("AUTOMOD_PRESET_DIR")) candidates.emplace_back(env);
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path().parent_path() / "share" / "automod" / "presets");
    candidates.push_back(exe.parent_path() / "presets");
  }
  candidates.emplace_back("/usr/share/automod/presets");
  candidates.emplace_back("/usr/local/share/automod/presets");
#ifdef AUTOMOD_SOURCE_DIR
  candidates.push_back(fs::path(AUTOMOD_SOURCE_DIR) / "resources" / "presets");
#endif
  std::vector<fs::path> dirs;
  for (auto& c : candidates)
    if (fs::is_directory(c, ec)) dirs.push_back(c);
  return dirs;
}

std::vector<std::string> listPresets() {
  std::set<std::string> names;
  for (auto& d : presetDirs()) {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(d, ec))
      if (e.path().extension() == ".json") names.insert(e.path().stem().string());
  }
  return {names.begin(), names.end()};
}

TrainingPreset loadPreset(const std::string& name_or_path) {
  fs::path file;
  std::error_code ec;
  if (name_or_path.size() > 5 && name_or_path.ends_with(".json")) {
    file = name_or_path;
    if (!fs::is_regular_file(file, ec)) throw Error("preset file " + file.string() + " does not exist");
  } else {
    for (auto& d : presetDirs())
      if (fs::is_regular_file(d / (name_or_path + ".json"), ec)) {
        file = d / (name_or_path + ".json");
        break;
      }
    if (file.empty()) {
      std::string names;
      for (auto& n : listPresets()) names += (names.empty() ? "" : ", ") + n;
      throw Error("unknown preset '" + name_or_path + "' (known: " + (names.empty() ? "none found" : names) + ")");
    }
  }
  std::ifstream in(file);
  if (!in) throw Error("cannot read preset " + file.string());
  nlohmann::json j = parseJsonLimited(in, "preset " + file.string());
  if (!j.contains("name")) j["name"] = file.stem().string();
  return TrainingPreset::fromJson(j);
}

}  // namespace automod
