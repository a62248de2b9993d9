// automod eval — the measured quality of a model on held-out images (SPEC §6), as JSON.
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/cli/common.h"
#include "core/edit/ranges.h"
#include "core/metrics/image_quality.h"
#include "core/metrics/swd.h"
#include "core/util/error.h"
#include "training/data.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

struct EvalOptions {
  std::string model, data, out, cache_dir;
  int64_t faces = 0;
  bool fashion_mnist = false;
  int64_t count = 64;
  uint64_t seed = 0;
  double held_out_fraction = 0.05;
};

constexpr int64_t kChunk = 32;

torch::Tensor encodeAll(Automodulator& m, const torch::Tensor& x) {
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += kChunk)
    parts.push_back(m.encode(x.narrow(0, i, std::min(kChunk, x.size(0) - i)).to(m.device())).cpu());
  return torch::cat(parts);
}

torch::Tensor decodeAll(Automodulator& m, const LatentPlan& plan) {
  std::vector<torch::Tensor> parts;
  const int64_t n = plan.batch();
  for (int64_t i = 0; i < n; i += kChunk) {
    std::vector<torch::Tensor> lat;
    for (auto& z : plan.latents) lat.push_back(z.narrow(0, i, std::min(kChunk, n - i)).to(m.device()));
    parts.push_back(m.decode(LatentPlan(lat)).cpu().clamp(-1, 1));
  }
  return torch::cat(parts);
}

nlohmann::json swdJson(const SwdResult& r) {
  return {{"levels", r.resolutions}, {"per_level", r.per_level}, {"average", r.average}};
}

// z_B on blocks [from, to), z_A elsewhere.
LatentPlan scaleMix(const torch::Tensor& a, const torch::Tensor& b, int from, int to, int blocks) {
  std::vector<torch::Tensor> lat;
  for (int k = 0; k < blocks; ++k) lat.push_back(k >= from && k < to ? b : a);
  return LatentPlan(lat);
}

nlohmann::json evaluate(Automodulator& model, ImageDataset& data, const EvalOptions& o, bool quiet) {
  torch::NoGradGuard no_grad;
  model.ema->eval();
  model.ema->setNoise(false);
  const int res = model.resolution(), blocks = model.numBlocks();
  const int64_t n = std::min(o.count, data.heldOutSize());
  auto log = [&](const std::string& s) {
    if (!quiet) std::cerr << "eval: " << s << std::endl;
  };
  std::vector<int64_t> held(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) held[i] = i;
  auto real = data.heldOut(held, res).to(torch::kFloat32).div(127.5).sub(1.0);
  const bool swd_ok = res >= SwdOptions{}.patch;
  SwdOptions so;
  so.seed = o.seed;
  nlohmann::json swd = nlohmann::json::object();

  // Real-vs-real floor: n training images against the held-out ones.
  if (swd_ok) {
    torch::manual_seed(static_cast<int64_t>(o.seed));
    auto pick = torch::randperm(data.size(), torch::kInt64).narrow(0, 0, std::min(n, data.size()));
    std::vector<int64_t> idx(pick.data_ptr<int64_t>(), pick.data_ptr<int64_t>() + pick.numel());
    auto train = data.batch(idx, res).to(torch::kFloat32).div(127.5).sub(1.0);
    swd["real_floor"] = swdJson(slicedWassersteinDistance(train, real, so));
  }

  log("encoding " + std::to_string(n) + " held-out images at " + std::to_string(res) + " px");
  auto z = encodeAll(model, real);
  auto recon = decodeAll(model, LatentPlan::uniform(z, blocks));
  nlohmann::json rec = {{"psnr_db", psnr(recon, real)}, {"ssim", ssim(recon, real)}};

  log("random samples");
  auto zr = model.randomLatents(n, o.seed).cpu();
  auto samples = decodeAll(model, LatentPlan::uniform(zr, blocks));
  if (swd_ok) swd["samples"] = swdJson(slicedWassersteinDistance(samples, real, so));
  auto zc = encodeAll(model, samples);
  const double cycle = torch::cosine_similarity(zr, zc, 1).mean().item<double>();

  // Mixes of random held-out pairs: B's code on the scale, A's elsewhere.
  torch::manual_seed(static_cast<int64_t>(o.seed) + 1);
  auto perm = torch::randperm(n, torch::kInt64);
  if (n > 1) perm = (perm + 1) % n;  // a derangement-ish shift so that (almost) no image is mixed with itself
  auto za = z, zb = z.index_select(0, perm);
  double mix_sum = 0;
  int mix_count = 0;
  nlohmann::json mixes = nlohmann::json::object();
  for (const auto& [name, range] : namedRanges(BlockLayout::of(model))) {
    log("mixing " + name);
    auto mixed = decodeAll(model, scaleMix(za, zb, range.first, range.last + 1, blocks));
    if (swd_ok) {
      auto r = slicedWassersteinDistance(mixed, real, so);
      mixes[name] = swdJson(r);
      mix_sum += r.average;
      ++mix_count;
    }
  }
  if (swd_ok && mix_count > 0) {
    mixes["average"] = mix_sum / mix_count;
    swd["mixes"] = mixes;
  }

  // Layer-entanglement error L_j: canvas after blocks 0..j−1 driven by the re-encoded mixture vs z_A.
  log("layer entanglement");
  nlohmann::json per_split = nlohmann::json::array();
  double lj_sum = 0;
  for (int j = 1; j < blocks; ++j) {
    double err = 0;
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t m = std::min(kChunk, n - i);
      auto a = za.narrow(0, i, m).to(model.device()), b = zb.narrow(0, i, m).to(model.device());
      auto x_ab = model.decode(LatentPlan::mixed(a, b, j, blocks));
      auto z_ab = model.encode(x_ab);
      auto c_hat = model.ema->runBlocks(torch::Tensor(), LatentPlan::uniform(z_ab, blocks), 0, j);
      auto c_a = model.ema->runBlocks(torch::Tensor(), LatentPlan::uniform(a, blocks), 0, j);
      err += (c_hat - c_a).pow(2).mean().item<double>() * static_cast<double>(m);
    }
    err /= static_cast<double>(n);
    per_split.push_back({{"j", j}, {"canvas_resolution", model.blockResolution(j - 1)}, {"mse", err}});
    lj_sum += err;
  }

  nlohmann::json report = {
      {"resolution", res},
      {"held_out_images", n},
      {"data", data.describe()},
      {"seed", o.seed},
      {"reconstruction", rec},
      {"cycle_consistency_cos", cycle},
      {"layer_entanglement", {{"per_split", per_split}, {"mean", blocks > 1 ? lj_sum / (blocks - 1) : 0.0}}},
  };
  if (swd_ok) report["swd_x1e3"] = swd;
  else report["swd_x1e3"] = "not computed: the model's resolution is below the 7 px patch size";
  return report;
}

void addEvalCommand(CLI::App& app, GlobalOptions& global) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand("eval", "Measure a model on held-out images: SWD, PSNR/SSIM, cycle consistency, L_j (JSON)");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  auto* data = cmd->add_option("--data", o->data, "image folder (the held-out split of it is used)");
  auto* faces = cmd->add_option("--faces", o->faces, "synthetic faces: generate (or reuse) N faces");
  auto* fm = cmd->add_flag("--fashion-mnist", o->fashion_mnist, "Fashion-MNIST (Debian dataset-fashion-mnist)");
  data->excludes(faces)->excludes(fm);
  faces->excludes(fm);
  cmd->add_option("--count", o->count, "held-out images to use (at most)")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--held-out-fraction", o->held_out_fraction, "fraction of the data held out")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed (data split, samples, pairs, projections)")->capture_default_str();
  cmd->add_option("--cache-dir", o->cache_dir, "where image caches and generated faces go");
  cmd->add_option("-o,--out", o->out, "also write the report to this JSON file");
  cmd->callback([o, &global] {
    const auto start = std::chrono::steady_clock::now();
    DataSpec spec;
    if (!o->data.empty()) {
      spec.kind = DataSpec::Folder;
      spec.path = o->data;
    } else if (o->faces > 0) {
      spec.kind = DataSpec::Faces;
      spec.count = o->faces;
    } else if (o->fashion_mnist) {
      spec.kind = DataSpec::FashionMnist;
    } else {
      throw Error("say which images to evaluate on: --data DIR, --faces N or --fashion-mnist");
    }
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    spec.max_resolution = model->resolution();
    spec.channels = model->config().image_channels;
    spec.seed = o->seed;
    spec.held_out_fraction = o->held_out_fraction;
    spec.cache_dir = o->cache_dir;
    spec.verbose = !global.quiet;
    auto dataset = openDataset(spec);
    if (!o->out.empty()) ensureParentDir(o->out);
    auto report = evaluate(*model, *dataset, *o, global.quiet);
    report["model"] = o->model;
    report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << report.dump(2) << std::endl;
    if (!o->out.empty()) {
      std::ofstream out(o->out);
      out << report.dump(2) << "\n";
      if (!out) throw Error("cannot write " + o->out);
    }
  });
}

RegisterCommand reg(75, &addEvalCommand);

}  // namespace
}  // namespace automod::cli
