// automod import
#include <iostream>

#include "app/cli/common.h"
#include "core/io/model_file.h"
#include "core/io/reference_import.h"
#include "core/io/archive.h"
#include "core/util/error.h"
#include "training/reference_state.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addImportCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string checkpoint, out, alignment, preset;
    bool training_state = false;
    int64_t training_images = 200000;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "import", "Convert a checkpoint of the authors' code (AaltoVision/automodulator, <iteration>_state.pth) into a "
                "model file, exactly");
  cmd->add_option("CHECKPOINT", o->checkpoint, "the authors' .pth file (zip or legacy torch.save, CPU or GPU)")
      ->required();
  cmd->add_option("-o,--out", o->out, "output .amod; with --training-state a run folder (RUN/latest.amod)")->required();
  std::string alignment_help =
      "how photos are prepared for the model; needed unless the file is one of the authors' released models, "
      "which bring their own:";
  for (const auto& c : alignmentChoices()) alignment_help += " " + c.name + " = " + c.meaning + ";";
  alignment_help.pop_back();
  cmd->add_option("--alignment", o->alignment, alignment_help)->check(CLI::IsMember({"ffhq", "celebahq", "none"}));
  cmd->add_flag("--training-state", o->training_state,
                "also carry the optimiser and robust-loss states into a run folder, so that `automod train --resume "
                "--out RUN --data YOUR_PHOTOS` fine-tunes the model");
  cmd->add_option("--preset", o->preset,
                  "with --training-state: the preset whose settings the run follows (default: the paper preset of "
                  "the released model)");
  cmd->add_option("--training-images", o->training_images,
                  "with --training-state: how many images the fine-tuning run trains")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->callback([o, &global] {
    prepare(global);
    ReferenceImportOptions options;
    options.alignment = o->alignment;
    options.alignment_source = "chosen with --alignment";
    // Streamed: each tensor is read once, straight into the model (and the optimiser moments only
    // with --training-state).
    ReferenceCheckpoint ckpt;
    auto imported = importReferenceFile(o->checkpoint, options, &ckpt);
    fs::path written = o->out;
    std::vector<std::string> not_carried = imported.not_carried;
    if (o->training_state) {
      ReferenceTrainingOptions t;
      t.preset = o->preset;
      t.training_images = o->training_images;
      auto state = referenceTrainingState(imported, ckpt, t);
      const fs::path run = o->out;
      if (fs::exists(run / "latest.amod"))
        throw Error(run.string() + " already holds a run; choose another folder");
      fs::create_directories(run);
      written = run / "latest.amod";
      writeArchive(written, state.checkpoint);
      not_carried.pop_back();  // "the optimiser and robust-loss states (import with --training-state ...)"
      for (auto& line : state.not_carried) not_carried.push_back(line);
      if (!global.quiet)
        std::cerr << "run folder " << run.string() << ": " << state.preset_name << " settings from "
                  << state.images_seen << " images; continue with: automod train --resume --out " << run.string()
                  << " --data YOUR_PHOTOS\n";
    } else {
      ensureParentDir(o->out);
      saveModel(o->out, *imported.model);
    }
    if (global.quiet) return;
    const auto& p = imported.provenance;
    const auto& c = imported.model->config();
    std::cerr << "imported " << fs::path(o->checkpoint).filename().string() << " ("
              << p.value("released_model", std::string("not one of the released models")) << "): "
              << p.at("architecture").get<std::string>() << " architecture, " << imported.model->resolution()
              << " px, latent " << c.latent_dim << ", " << p.at("iteration").get<int64_t>() << " images trained\n";
    std::cerr << "alignment " << imported.alignment << ": " << imported.alignment_reason << "\n";
    for (auto& line : imported.warnings) std::cerr << "warning: " << line << "\n";
    std::cerr << "not carried over:\n";
    for (auto& line : not_carried) std::cerr << "  - " << line << "\n";
    std::cerr << "wrote " << written.string() << "\n";
  });
}

RegisterCommand reg(16, &addImportCommand);

}  // namespace
}  // namespace automod::cli
