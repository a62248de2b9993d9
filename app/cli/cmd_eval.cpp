// automod eval — the measured quality of a model on held-out images (docs/design.md §6), as JSON. The
// measurements are core/eval/eval.h's evaluate(); this file parses options and prints.
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/cli/common.h"
#include "core/eval/eval.h"
#include "core/io/default_model.h"
#include "core/io/model_file.h"
#include "core/util/error.h"
#include "training/data.h"

namespace automod::cli {
namespace {

struct EvalCommandOptions {
  std::string model, data, out, cache_dir, decoder = "ema";
  bool store = false;
  int64_t faces = 0;
  bool fashion_mnist = false;
  double held_out_fraction = 0.05;
  EvalOptions eval;
};

void addEvalCommand(CLI::App& app, GlobalOptions& global) {
  auto o = std::make_shared<EvalCommandOptions>();
  auto* cmd = app.add_subcommand("eval", "Measure a model on held-out images: SWD, PSNR/SSIM, cycle consistency, L_j (JSON)");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  auto* data = cmd->add_option("--data", o->data, "image folder (the held-out split of it is used)");
  auto* faces = cmd->add_option("--faces", o->faces, "synthetic faces: generate (or reuse) N faces");
  auto* fm = cmd->add_flag("--fashion-mnist", o->fashion_mnist, "Fashion-MNIST (Debian dataset-fashion-mnist)");
  data->excludes(faces)->excludes(fm);
  faces->excludes(fm);
  cmd->add_option("--count", o->eval.count, "held-out images to use (at most)")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--held-out-fraction", o->held_out_fraction, "fraction of the data held out")->capture_default_str();
  cmd->add_option("--seed", o->eval.seed, "random seed (data split, samples, pairs, projections)")->capture_default_str();
  cmd->add_option("--cache-dir", o->cache_dir, "where image caches and generated faces go");
  cmd->add_option("-o,--out", o->out, "also write the report to this JSON file");
  cmd->add_option("--decoder", o->decoder,
                  "which decoder makes the images: 'ema' (the averaged one the editor uses) or 'training' (the "
                  "raw one the optimiser moves; separates a slow EMA from a slow optimisation)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ema", "training"}));
  cmd->add_flag("--store", o->store,
                "also record the held-out PSNR/SSIM and cycle consistency in the model file's metadata "
                "(\"evaluation\"), where the editor compares each photo's reconstruction with it");
  addRefineFlags(cmd, o->eval.refine);
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
    const std::string model_path = o->model == "default" ? defaultModelPath().string() : o->model;
    if (o->store) {
      if (model_path.empty()) throw Error("no trained default model is installed: nothing to record the evaluation in");
      if (o->decoder != "ema")
        throw Error("--store records the model as the editor uses it: leave out --decoder training");
      if (o->eval.refine.enabled())
        throw Error("--store records the encoder's reconstruction, which the editor compares photos with: leave out "
                    "--refine");
      if (describeModelFile(model_path).value("kind", std::string()) != "model")
        throw Error(model_path + " is a training checkpoint: --store would drop its training state; evaluate the "
                    "exported model (automod export) instead");
    }
    auto model = openModel(o->model, device, global.quiet);
    // Every .amod holds both decoders (automod export keeps the training one); the measurements use
    // the EMA decoder, so measuring the training decoder means copying it there.
    if (o->decoder == "training") model->resetEma();
    spec.max_resolution = model->resolution();
    spec.channels = model->config().image_channels;
    spec.seed = o->eval.seed;
    spec.held_out_fraction = o->held_out_fraction;
    spec.cache_dir = o->cache_dir;
    spec.verbose = !global.quiet;
    auto dataset = openDataset(spec);
    if (!o->out.empty()) ensureParentDir(o->out);
    EvalOptions options = o->eval;
    if (!global.quiet) options.log = [](const std::string& s) { std::cerr << "eval: " << s << std::endl; };
    ProgressBar bar("refining", global.quiet);
    options.refine_progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
    auto report = evaluate(*model, *dataset, options).toJson();
    bar.finish();
    report["model"] = o->model;
    report["decoder"] = o->decoder;
    report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (o->store) {
      model->metadata["evaluation"] = {{"psnr_db", report["reconstruction"]["psnr_db"]},
                                       {"ssim", report["reconstruction"]["ssim"]},
                                       {"cycle_consistency_cos", report["cycle_consistency_cos"]},
                                       {"data", report["data"]},
                                       {"held_out_images", report["held_out_images"]},
                                       {"seed", o->eval.seed}};
      saveModel(model_path, *model);
      if (!global.quiet) std::cerr << "eval: recorded in " << model_path << "'s metadata" << std::endl;
    }
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
