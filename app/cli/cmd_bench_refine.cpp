// automod bench refine — the cost of refining a photo's codes (core/edit/refine.h): ms per step, seconds
// per photo, dB gained per second, and a step against an encode + a decode at the loss resolution, for
// the bundled model and for a paper-size model, with the matmul figure of the same run. JSON lines.
#include <chrono>
#include <iostream>

#include "app/cli/common.h"
#include "core/edit/refine.h"
#include "core/metrics/image_quality.h"
#include "core/util/bench.h"
#include "core/util/device.h"
#include "core/util/error.h"
#include "training/data.h"

namespace automod::cli {
namespace {

struct RefineBenchOptions {
  std::string model = "default", data, paper_model;
  std::string paper_widths = "paper";
  int paper_resolution = 256;
  int paper_loss_resolution = 64;
  int paper_steps = 10;
  int photos = 4;
  int reps = 3;
  RefineOptions refine;
  RefineBenchOptions() { refine.steps = 100; }
};

double secondsSince(std::chrono::steady_clock::time_point t0, const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ms of an encode + a decode (forward passes, no autograd) of `x` at the loss resolution: the
// encoder at that resolution level, the decoder up to the last block of that resolution and its toRGB.
double encodeDecodeSeconds(Automodulator& model, const torch::Tensor& x, int loss_resolution, int reps) {
  torch::NoGradGuard no_grad;
  const int stage = ModelConfig::blockForResolution(loss_resolution);
  int blocks = 0;
  for (int b = 0; b < model.numBlocks(); ++b)
    if (model.blockResolution(b) <= loss_resolution) blocks = b + 1;
  auto small = loss_resolution < x.size(2)
                   ? torch::nn::functional::avg_pool2d(x, torch::nn::functional::AvgPool2dFuncOptions(x.size(2) / loss_resolution))
                   : x;
  return timeIt(
      [&] {
        auto z = model.encoder->forward(small, stage, 1.0);
        model.ema->toRGB(blocks - 1, model.ema->runBlocks({}, LatentPlan::uniform(z, model.numBlocks()), 0, blocks));
      },
      reps, 1, model.device());
}

// Refines each photo alone (batch 1, as the editor does) and then all at once; one JSON line.
nlohmann::json measure(Automodulator& model, const std::string& name, bool trained, const torch::Tensor& photos,
                       const RefineOptions& options, int reps, double matmul, bool quiet) {
  const auto device = model.device();
  const int64_t n = photos.size(0);
  auto z = model.encode(photos);
  std::vector<double> seconds, before, after;
  // Steps alone: from the end of each photo's first step to the end of its last (the photo's call
  // also measures PSNR before and after with two full decodes).
  double step_seconds = 0;
  int64_t timed_steps = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!quiet) std::cerr << "bench refine: " << name << ": photo " << i + 1 << " of " << n << std::endl;
    const auto t0 = std::chrono::steady_clock::now();
    double first = -1, last = -1;
    int last_step = 0;
    auto r = refineCodes(model, photos.narrow(0, i, 1), z.narrow(0, i, 1), options, [&](int step, int) {
      const double t = secondsSince(t0, device);
      if (first < 0) first = t;
      last = t;
      last_step = step;
      return true;
    });
    seconds.push_back(secondsSince(t0, device));
    before.push_back(r.psnr_before[0]);
    after.push_back(r.psnr_after[0]);
    if (last_step > 1) {
      step_seconds += last - first;
      timed_steps += last_step - 1;
    }
  }
  if (!quiet) std::cerr << "bench refine: " << name << ": all " << n << " photos in one batch" << std::endl;
  const auto t0 = std::chrono::steady_clock::now();
  refineCodes(model, photos, z, options);
  const double batched = secondsSince(t0, device);
  double total = 0, db = 0, psnr_before = 0, psnr_after = 0;
  for (int64_t i = 0; i < n; ++i) {
    total += seconds[i];
    db += after[i] - before[i];
    psnr_before += before[i];
    psnr_after += after[i];
  }
  const int loss_res = options.loss_resolution ? options.loss_resolution : model.resolution();
  if (timed_steps == 0) throw Error("bench refine needs at least 2 steps per photo to time one");
  const double step_s = step_seconds / double(timed_steps);
  const double encdec = encodeDecodeSeconds(model, photos.narrow(0, 0, 1), loss_res, reps);
  return {{"bench", "refine"},
          {"model", name},
          {"trained", trained},
          {"resolution", model.resolution()},
          {"loss_resolution", loss_res},
          {"photos", n},
          {"steps", options.steps},
          {"options", options.toJson()},
          {"ms_per_step", 1e3 * step_s},
          {"seconds_per_photo", total / double(n)},
          {"seconds_per_photo_in_one_batch", batched / double(n)},
          {"psnr_before_db", psnr_before / double(n)},
          {"psnr_after_db", psnr_after / double(n)},
          {"db_gained", db / double(n)},
          {"db_per_second", total > 0 ? db / total : 0.0},
          {"encode_decode_ms", 1e3 * encdec},
          {"step_over_encode_decode", step_s / encdec},
          {"matmul_gflops", std::max(matmul, measureMatmulGflops(device, 1024))},
          {"peak_rss_mib", peakRssMiB()}};
}

torch::Tensor benchPhotos(const std::string& folder, int count, int resolution) {
  DataSpec spec;
  spec.kind = DataSpec::Folder;
  spec.path = folder;
  spec.held_out_fraction = 0.5;
  spec.max_resolution = resolution;
  auto data = openDataset(spec);
  const int64_t n = std::min<int64_t>(count, data->heldOutSize());
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < n; ++i) idx.push_back(i);
  return data->heldOut(idx, resolution).to(torch::kFloat32).div(127.5).sub(1.0);
}

void runRefineBench(const RefineBenchOptions& o, const GlobalOptions& global) {
  auto device = prepare(global);
  const std::string folder =
      o.data.empty() ? std::string(AUTOMOD_SOURCE_DIR) + "/resources/eval-faces" : o.data;
  std::cout << nlohmann::json{{"bench", "refine"}, {"device", describeDevice(device)}, {"photos", folder}}.dump()
            << std::endl;
  const double matmul = measureMatmulGflops(device);
  {
    auto model = openModel(o.model, device, global.quiet);
    const bool trained = !model->metadata.value("untrained", false);
    auto photos = benchPhotos(folder, o.photos, model->resolution()).to(device);
    std::cout << measure(*model, o.model, trained, photos, o.refine, o.reps, matmul, global.quiet).dump() << std::endl;
  }
  {
    torch::manual_seed(0);
    std::unique_ptr<Automodulator> model;
    if (o.paper_model.empty())
      model = std::make_unique<Automodulator>(ModelConfig::fromTable(o.paper_widths, o.paper_resolution), device);
    else
      model = openModel(o.paper_model, device, global.quiet);
    auto photos = benchPhotos(folder, o.photos, model->resolution()).to(device);
    RefineOptions paper = o.refine;
    paper.steps = o.paper_steps;
    paper.loss_resolution = o.paper_loss_resolution;
    const std::string name = o.paper_model.empty() ? o.paper_widths + "-" + std::to_string(o.paper_resolution) +
                                                         " (freshly initialised: dB figures mean nothing)"
                                                   : o.paper_model;
    std::cout << measure(*model, name, !o.paper_model.empty(), photos, paper, o.reps, matmul, global.quiet).dump()
              << std::endl;
  }
}

void addRefineBench(CLI::App& bench_app, GlobalOptions& global) {
  auto o = std::make_shared<RefineBenchOptions>();
  auto* cmd = bench_app.add_subcommand(
      "refine", "ms per refinement step, seconds per photo and dB gained per second, for the bundled model and a "
                "paper-size model (loss at 64 px), against an encode + a decode");
  cmd->add_option("--model", o->model, "the first model measured: a file (.amod) or 'default'")->capture_default_str();
  cmd->add_option("--data", o->data, "photos (the held-out half of the folder; default: resources/eval-faces)");
  cmd->add_option("--photos", o->photos, "photos to refine, each alone and then all in one batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--paper-model", o->paper_model,
                  "the second model: a file (an imported paper-size model); default: a freshly initialised one")
      ->capture_default_str();
  cmd->add_option("--paper-widths", o->paper_widths, "width table of the freshly initialised second model")
      ->capture_default_str();
  cmd->add_option("--paper-resolution", o->paper_resolution, "its resolution")->capture_default_str();
  cmd->add_option("--paper-loss-resolution", o->paper_loss_resolution, "the resolution its loss is taken at")
      ->capture_default_str();
  cmd->add_option("--paper-steps", o->paper_steps, "refinement steps on it")->capture_default_str();
  cmd->add_option("--reps", o->reps, "timed repetitions of the encode + decode (median)")->capture_default_str();
  addRefineFlags(cmd, o->refine);
  cmd->callback([o, &global] { runRefineBench(*o, global); });
}

RegisterBench reg(35, &addRefineBench);

}  // namespace
}  // namespace automod::cli
