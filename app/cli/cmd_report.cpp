// automod report — the synthetic-face checks of a model: attribute probes trained in C++
// on labelled renders, attribute transfer in coarse / intermediate / fine mixes, and attribute-vector
// edits built from a few exemplars. The report is core/eval/report.h's faceReport(); this file parses
// options and prints.
#include <fstream>
#include <iostream>

#include "app/cli/common.h"
#include "core/eval/report.h"
#include "core/util/error.h"
#include "training/data.h"

namespace automod::cli {
namespace {

void addReportCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, out;
    int64_t probe_faces = 2000, eval_faces = 300;
    FaceReportOptions report;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "report", "Synthetic-face checks: attribute transfer in scale mixes and few-exemplar attribute edits (JSON)");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("-o,--out", o->out, "also write the JSON here");
  cmd->add_option("--probe-faces", o->probe_faces, "labelled renders to train the attribute probes on")
      ->capture_default_str();
  cmd->add_option("--eval-faces", o->eval_faces, "held-out labelled renders to evaluate on")->capture_default_str();
  cmd->add_option("--pairs", o->report.pairs,
                  "random (A, B) pairs for attribute transfer (half choose each attribute's home scale, half score it)")
      ->capture_default_str()
      ->check(CLI::Range(2, 1000000));
  cmd->add_option("--exemplars", o->report.exemplars, "positives and negatives for each attribute vector")
      ->capture_default_str();
  cmd->add_option("--epochs", o->report.epochs, "probe training epochs")->capture_default_str();
  cmd->add_option("--strength", o->report.strengths, "attribute-vector strengths to try (each is reported)")
      ->capture_default_str();
  cmd->add_option("--seed", o->report.seed, "random seed")->capture_default_str();
  addRefineFlags(cmd, o->report.refine);
  cmd->callback([o, &global] {
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    if (model->config().image_channels != 3) throw Error("the face report needs an RGB model");
    if (!o->out.empty()) ensureParentDir(o->out);
    FaceReportOptions options = o->report;
    if (!global.quiet) options.log = [](const std::string& s) { std::cerr << "report: " << s << std::endl; };
    // The renders: seeds 1000 + seed and 2000 + seed, never a training set's 0.., rendered once and
    // reused.
    const int resolution = model->resolution();
    auto data = loadFaceReportData(cachedFaces(o->probe_faces, resolution, 1000 + options.seed, {}, options.log),
                                   cachedFaces(o->eval_faces, resolution, 2000 + options.seed, {}, options.log),
                                   resolution);
    ProgressBar bar("refining", global.quiet);
    options.refine_progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
    auto report = faceReport(*model, data, options);
    bar.finish();
    report["model"] = o->model;
    std::cout << report.dump(2) << std::endl;
    if (!o->out.empty()) {
      std::ofstream out(o->out);
      out << report.dump(2) << "\n";
      if (!out) throw Error("cannot write " + o->out);
    }
  });
}

RegisterCommand reg(75, &addReportCommand);

}  // namespace
}  // namespace automod::cli
