#include "core/eval/eval.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "core/data/dataset.h"
#include "core/metrics/image_quality.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"

namespace automod {

AutomodulatorEvalModel::AutomodulatorEvalModel(Automodulator& model) : model_(model) {
  model_.ema->eval();
  model_.ema->setNoise(false);
}

BlockLayout AutomodulatorEvalModel::layout() const { return BlockLayout::of(model_); }

int AutomodulatorEvalModel::resolution() const { return model_.resolution(); }

torch::Tensor AutomodulatorEvalModel::encode(const torch::Tensor& images) {
  return model_.encode(images.to(model_.device())).cpu();
}

torch::Tensor AutomodulatorEvalModel::decode(const LatentPlan& plan) { return model_.decode(plan).cpu(); }

torch::Tensor AutomodulatorEvalModel::canvas(const LatentPlan& plan, int blocks) {
  torch::NoGradGuard no_grad;
  model_.ema->eval();
  return model_.ema->runBlocks(torch::Tensor(), plan.to(model_.device()), 0, blocks).cpu();
}

torch::Tensor AutomodulatorEvalModel::randomLatents(int64_t n, uint64_t seed) {
  return model_.randomLatents(n, seed).cpu();
}

LatentPlan EvalModel::refine(const torch::Tensor& images, const torch::Tensor& z, const RefineOptions& options,
                             const std::function<bool(int, int)>& progress) {
  if (options.enabled()) throw Error("this model cannot refine its codes");
  return LatentPlan::uniform(z, numBlocks());
}

LatentPlan AutomodulatorEvalModel::refine(const torch::Tensor& images, const torch::Tensor& z,
                                          const RefineOptions& options, const std::function<bool(int, int)>& progress) {
  return refineCodes(model_, images, z, options, progress).codes.to(torch::kCPU);
}

torch::Tensor encodeInChunks(EvalModel& model, const torch::Tensor& images, int64_t chunk) {
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < images.size(0); i += chunk)
    parts.push_back(model.encode(images.narrow(0, i, std::min(chunk, images.size(0) - i))));
  return torch::cat(parts);
}

torch::Tensor decodeInChunks(EvalModel& model, const LatentPlan& plan, int64_t chunk) {
  std::vector<torch::Tensor> parts;
  const int64_t n = plan.batch();
  for (int64_t i = 0; i < n; i += chunk) parts.push_back(model.decode(plan.narrow(i, std::min(chunk, n - i))).clamp(-1, 1));
  return torch::cat(parts);
}

LatentPlan rangeMix(const torch::Tensor& a, const torch::Tensor& b, const BlockRange& range, int blocks) {
  return rangeMix(LatentPlan::uniform(a, blocks), LatentPlan::uniform(b, blocks), range);
}

LatentPlan rangeMix(const LatentPlan& a, const LatentPlan& b, const BlockRange& range) {
  TORCH_CHECK(a.size() == b.size(), "mixing plans of ", a.size(), " and ", b.size(), " blocks");
  // A block takes its code and its style offsets (a refined photo's) from the same plan.
  LatentPlan out;
  for (int k = 0; k < a.size(); ++k) {
    const auto& from = range.contains(k) ? b : a;
    out.latents.push_back(from[k]);
    if (from.offset(k).defined()) out.setOffset(k, from.offset(k));
  }
  return out;
}

LatentPlan selectRows(const LatentPlan& plan, const torch::Tensor& index) { return plan.indexSelect(index); }

LatentPlan refineInChunks(EvalModel& model, const torch::Tensor& images, const torch::Tensor& z,
                          const RefineOptions& options, const std::function<void(int64_t, int64_t)>& progress,
                          int64_t chunk) {
  const int64_t n = images.size(0);
  if (!options.enabled()) return LatentPlan::uniform(z, model.numBlocks());
  const int64_t chunks = (n + chunk - 1) / chunk;
  std::vector<LatentPlan> parts;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t start = c * chunk, m = std::min(chunk, n - start);
    parts.push_back(model.refine(images.narrow(0, start, m), z.narrow(0, start, m), options, [&](int step, int steps) {
      if (progress) progress(c * steps + step, chunks * steps);
      return true;
    }));
  }
  return LatentPlan::cat(parts);
}

namespace {

constexpr int64_t kChunk = 32;

nlohmann::json swdJson(const SwdResult& r) {
  return {{"levels", r.resolutions}, {"per_level", r.per_level}, {"average", r.average}};
}

torch::Tensor toUnitRange(const torch::Tensor& u8) { return u8.to(torch::kFloat32).div(127.5).sub(1.0); }

// L_j for every split j = 1 .. blocks − 1 over pairs (z_A, z_B).
std::vector<LayerEntanglement> layerEntanglement(EvalModel& model, const torch::Tensor& za, const torch::Tensor& zb) {
  const auto layout = model.layout();
  const int blocks = layout.size();
  const int64_t n = za.size(0);
  std::vector<LayerEntanglement> out;
  for (int j = 1; j < blocks; ++j) {
    double err = 0;
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t m = std::min(kChunk, n - i);
      auto a = za.narrow(0, i, m), b = zb.narrow(0, i, m);
      auto z_ab = model.encode(model.decode(LatentPlan::mixed(a, b, j, blocks)));
      auto c_hat = model.canvas(LatentPlan::uniform(z_ab, blocks), j);
      auto c_a = model.canvas(LatentPlan::uniform(a, blocks), j);
      err += (c_hat - c_a).pow(2).mean().item<double>() * static_cast<double>(m);
    }
    out.push_back({j, layout.resolutions[j - 1], err / static_cast<double>(n)});
  }
  return out;
}

}  // namespace

nlohmann::json EvalResult::toJson() const {
  nlohmann::json per_split = nlohmann::json::array();
  for (const auto& e : layer_entanglement)
    per_split.push_back({{"j", e.j}, {"canvas_resolution", e.canvas_resolution}, {"mse", e.mse}});
  nlohmann::json j = {
      {"resolution", resolution},
      {"held_out_images", held_out_images},
      {"data", data},
      {"seed", seed},
      {"reconstruction", {{"psnr_db", psnr_db}, {"ssim", ssim}}},
      {"cycle_consistency_cos", cycle_consistency_cos},
      {"layer_entanglement", {{"per_split", per_split}, {"mean", layer_entanglement_mean}}},
  };
  if (refine) {
    j["refine"] = {{"options", refine->toJson()},
                   {"encoder_reconstruction", {{"psnr_db", encoder_psnr_db}, {"ssim", encoder_ssim}}},
                   {"psnr_gain_db", psnr_db - encoder_psnr_db},
                   {"seconds", refine_seconds},
                   {"seconds_per_image", held_out_images > 0 ? refine_seconds / double(held_out_images) : 0.0}};
  }
  if (swd_computed) {
    nlohmann::json swd = {{"real_floor", swdJson(swd_real_floor)}, {"samples", swdJson(swd_samples)}};
    if (!swd_mixes.empty()) {
      nlohmann::json mixes = nlohmann::json::object();
      for (const auto& [name, r] : swd_mixes) mixes[name] = swdJson(r);
      mixes["average"] = swd_mixes_average;
      swd["mixes"] = mixes;
    }
    j["swd_x1e3"] = swd;
  } else {
    j["swd_x1e3"] = "not computed: the model's resolution is below the 7 px patch size";
  }
  return j;
}

EvalResult evaluate(EvalModel& model, ImageDataset& data, const EvalOptions& o) {
  torch::NoGradGuard no_grad;
  const int res = model.resolution();
  const auto layout = model.layout();
  const int blocks = layout.size();
  const int64_t n = std::min(o.count, data.heldOutSize());
  if (n < 1) throw Error("no held-out images to evaluate on: " + data.describe());
  auto log = [&](const std::string& s) {
    if (o.log) o.log(s);
  };
  EvalResult r;
  r.resolution = res;
  r.held_out_images = n;
  r.data = data.describe();
  r.seed = o.seed;

  std::vector<int64_t> held(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) held[i] = i;
  auto real = toUnitRange(data.heldOut(held, res));
  r.swd_computed = res >= SwdOptions{}.patch;
  SwdOptions so;
  so.seed = o.seed;

  // Real-vs-real floor: n training images against the held-out ones.
  if (r.swd_computed) {
    torch::manual_seed(static_cast<int64_t>(o.seed));
    auto pick = torch::randperm(data.size(), torch::kInt64).narrow(0, 0, std::min(n, data.size()));
    std::vector<int64_t> idx(pick.data_ptr<int64_t>(), pick.data_ptr<int64_t>() + pick.numel());
    r.swd_real_floor = slicedWassersteinDistance(toUnitRange(data.batch(idx, res)), real, so);
  }

  log("encoding " + std::to_string(n) + " held-out images at " + std::to_string(res) + " px");
  auto z = encodeInChunks(model, real, kChunk);
  auto codes = LatentPlan::uniform(z, blocks);
  if (o.refine.enabled()) {
    auto recon = decodeInChunks(model, codes, kChunk);
    r.refine = o.refine;
    r.encoder_psnr_db = psnr(recon, real);
    r.encoder_ssim = ssim(recon, real);
    log("refining their codes (" + std::to_string(o.refine.steps) + " steps)");
    const auto start = std::chrono::steady_clock::now();
    codes = refineInChunks(model, real, z, o.refine, o.refine_progress, kChunk);
    r.refine_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  auto recon = decodeInChunks(model, codes, kChunk);
  r.psnr_db = psnr(recon, real);
  r.ssim = ssim(recon, real);

  log("random samples");
  auto zr = model.randomLatents(n, o.seed);
  auto samples = decodeInChunks(model, LatentPlan::uniform(zr, blocks), kChunk);
  if (r.swd_computed) r.swd_samples = slicedWassersteinDistance(samples, real, so);
  r.cycle_consistency_cos = torch::cosine_similarity(zr, encodeInChunks(model, samples, kChunk), 1).mean().item<double>();

  // Mixes of random held-out pairs: B's code on the scale, A's elsewhere.
  torch::manual_seed(static_cast<int64_t>(o.seed) + 1);
  auto perm = torch::randperm(n, torch::kInt64);
  if (n > 1) perm = (perm + 1) % n;  // a derangement-ish shift so that (almost) no image is mixed with itself
  auto za = z, zb = z.index_select(0, perm);
  const auto codes_b = selectRows(codes, perm);
  if (r.swd_computed) {
    double sum = 0;
    for (const auto& [name, range] : namedRanges(layout)) {
      log("mixing " + name);
      auto mixed = decodeInChunks(model, rangeMix(codes, codes_b, range), kChunk);
      r.swd_mixes.emplace_back(name, slicedWassersteinDistance(mixed, real, so));
      sum += r.swd_mixes.back().second.average;
    }
    if (!r.swd_mixes.empty()) r.swd_mixes_average = sum / static_cast<double>(r.swd_mixes.size());
  }

  log("layer entanglement");
  r.layer_entanglement = layerEntanglement(model, za, zb);
  double lj_sum = 0;
  for (const auto& e : r.layer_entanglement) lj_sum += e.mse;
  r.layer_entanglement_mean = blocks > 1 ? lj_sum / (blocks - 1) : 0.0;
  return r;
}

EvalResult evaluate(Automodulator& model, ImageDataset& data, const EvalOptions& options) {
  AutomodulatorEvalModel m(model);
  return evaluate(m, data, options);
}

}  // namespace automod
