// automod report — the synthetic-face checks of a model (issue 7): attribute probes trained in C++
// on labelled renders, the fraction of attributes that follow the right source in coarse /
// intermediate / fine mixes, and attribute-vector edits built from a few exemplars.
#include <algorithm>
#include <fstream>
#include <iostream>

#include "app/cli/common.h"
#include "core/edit/ranges.h"
#include "core/util/error.h"
#include "training/data.h"
#include "training/face_probe.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

fs::path facesFolder(int64_t count, int size, uint64_t seed, bool quiet) {
  auto dir = defaultCacheDir() / ("faces-" + std::to_string(count) + "-" + std::to_string(size) + "-" +
                                  std::to_string(seed));
  std::error_code ec;
  if (!fs::exists(dir / "attributes.jsonl", ec)) {
    if (!quiet) std::cerr << "rendering " << count << " labelled faces into " << dir.string() << "\n";
    makeFaces(FaceOptions{.count = count, .size = size, .seed = seed, .out = dir});
  }
  return dir;
}

void addReportCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, out;
    int64_t probe_faces = 2000, eval_faces = 300;
    int pairs = 128, exemplars = 4, epochs = 12;
    std::vector<double> strengths{1.0, 2.0, 3.0};
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "report", "Synthetic-face checks: attribute transfer in scale mixes and few-exemplar attribute edits (JSON)");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("-o,--out", o->out, "also write the JSON here");
  cmd->add_option("--probe-faces", o->probe_faces, "labelled renders to train the attribute probes on")
      ->capture_default_str();
  cmd->add_option("--eval-faces", o->eval_faces, "held-out labelled renders to evaluate on")->capture_default_str();
  cmd->add_option("--pairs", o->pairs, "random (A, B) pairs per mix")->capture_default_str();
  cmd->add_option("--exemplars", o->exemplars, "positives and negatives for each attribute vector")->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "probe training epochs")->capture_default_str();
  cmd->add_option("--strength", o->strengths, "attribute-vector strengths to try (each is reported)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->callback([o, &global] {
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    const int res = model->resolution(), ch = model->config().image_channels;
    if (ch != 3) throw Error("the face report needs an RGB model");
    // Seeds far from the training faces' (0..): these renders were never trained on.
    auto probe_dir = facesFolder(o->probe_faces, res, 1000 + o->seed, global.quiet);
    auto eval_dir = facesFolder(o->eval_faces, res, 2000 + o->seed, global.quiet);
    auto names = defaultProbeAttributes();
    auto train_table = readFaceAttributes(probe_dir, names);
    auto eval_table = readFaceAttributes(eval_dir, names, 8, &train_table);
    // Glasses and facial hair as present / absent: each single style is too rare to learn or edit.
    for (const char* attr : {"glasses", "facial_hair"}) {
      collapseToPresence(train_table, attr);
      collapseToPresence(eval_table, attr);
    }
    auto train_images = loadFaceImages(train_table, res, ch);
    auto eval_images = loadFaceImages(eval_table, res, ch);
    if (!global.quiet) std::cerr << "training attribute probes on " << train_images.size(0) << " renders\n";
    auto probe = trainAttributeProbe(train_images, train_table, ProbeTrainOptions{.epochs = o->epochs, .seed = o->seed, .balanced = {"glasses", "facial_hair"}});

    nlohmann::json report;
    report["model"] = o->model;
    report["resolution"] = res;
    report["probe_faces"] = o->probe_faces;
    report["eval_faces"] = o->eval_faces;
    auto clean = probeAccuracy(probe, eval_images, eval_table);
    auto balanced = probeBalancedAccuracy(probe, eval_images, eval_table);
    for (size_t a = 0; a < names.size(); ++a) {
      report["probe_accuracy_on_renders"][names[a]] = clean[a];
      report["probe_balanced_accuracy_on_renders"][names[a]] = balanced[a];
      int64_t majority = 0;
      auto counts = torch::bincount(eval_table.labelTensor(static_cast<int>(a)));
      majority = counts.max().item<int64_t>();
      report["majority_class_rate"][names[a]] = double(majority) / eval_table.size();
    }
    report["mixes"] = mixTransferReport(*model, probe, eval_images, eval_table,
                                        MixReportOptions{.pairs = o->pairs, .seed = o->seed});
    // Few-exemplar attribute vectors: glasses and facial hair (any style vs none), each restricted to
    // each scale.
    for (const std::string attr : {"glasses", "facial_hair"}) {
      const int a = eval_table.index(attr);
      // Present = any style (every class but "none"): single styles are too rare among a few
      // hundred renders to draw exemplars and targets from.
      const auto positive = presentClasses(eval_table, a);
      auto scales = namedRanges(BlockLayout::of(*model));
      scales.emplace_back("all", BlockRange{0, model->numBlocks() - 1});
      for (const auto& [scale, range] : scales) {
        std::vector<int> blocks;
        for (int b = range.first; b <= range.last; ++b) blocks.push_back(b);
        for (double strength : o->strengths) {
          try {
            auto r = attributeEditReport(*model, probe, eval_images, eval_table, attr, positive, o->exemplars,
                                         blocks, strength, o->seed);
            r["scale"] = scale;
            report["attribute_edits"].push_back(r);
          } catch (const Error& e) {
            report["attribute_edits"].push_back(
                {{"attribute", attr}, {"scale", scale}, {"strength", strength}, {"error", e.what()}});
          }
        }
      }
    }
    // Attributes the probe reads (balanced accuracy on renders ≥ 0.5; nose or mouth shape at 32 px
    // is near chance): the change rate over these alone is not inflated by a probe's guessing.
    std::vector<std::string> readable;
    for (size_t a = 0; a < names.size(); ++a)
      if (balanced[a] >= 0.5) readable.push_back(names[a]);
    report["readable_attributes"] = readable;
    for (auto& e : report["attribute_edits"]) {
      if (!e.contains("other_attribute_change_rate")) continue;
      double sum = 0;
      int n = 0;
      for (auto& [name, rate] : e["other_attribute_change_rate"].items())
        if (std::find(readable.begin(), readable.end(), name) != readable.end()) sum += rate.get<double>(), ++n;
      e["readable_other_attribute_change_rate"] = n > 0 ? sum / n : 0.0;
    }
    std::cout << report.dump(2) << std::endl;
    if (!o->out.empty()) {
      ensureParentDir(o->out);
      std::ofstream out(o->out);
      out << report.dump(2) << "\n";
      if (!out) throw Error("cannot write " + o->out);
    }
  });
}

RegisterCommand reg(75, &addReportCommand);

}  // namespace
}  // namespace automod::cli
