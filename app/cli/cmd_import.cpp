// automod import
#include <iostream>

#include "app/cli/common.h"
#include "core/io/model_file.h"
#include "core/io/reference_import.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addImportCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string checkpoint, out, alignment;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "import", "Convert a checkpoint of the authors' code (AaltoVision/automodulator, <iteration>_state.pth) into a "
                "model file, exactly");
  cmd->add_option("CHECKPOINT", o->checkpoint, "the authors' .pth file (zip or legacy torch.save, CPU or GPU)")
      ->required();
  cmd->add_option("-o,--out", o->out, "output .amod")->required();
  cmd->add_option("--alignment", o->alignment,
                  "the face alignment the model expects: ffhq, celebahq or none (default: from the released model "
                  "the file is, else ffhq)")
      ->check(CLI::IsMember({"ffhq", "celebahq", "none"}));
  cmd->callback([o, &global] {
    prepare(global);
    ReferenceImportOptions options;
    options.alignment = o->alignment;
    auto imported = importReferenceFile(o->checkpoint, options);
    ensureParentDir(o->out);
    saveModel(o->out, *imported.model);
    if (global.quiet) return;
    const auto& p = imported.provenance;
    const auto& c = imported.model->config();
    std::cerr << "imported " << fs::path(o->checkpoint).filename().string() << " ("
              << p.value("released_model", std::string("not one of the released models")) << "): "
              << p.at("architecture").get<std::string>() << " architecture, " << imported.model->resolution()
              << " px, latent " << c.latent_dim << ", " << p.at("iteration").get<int64_t>() << " images trained, "
              << imported.model->metadata.at("alignment").get<std::string>() << " alignment\n";
    std::cerr << "not carried over:\n";
    for (auto& line : imported.not_carried) std::cerr << "  - " << line << "\n";
    std::cerr << "wrote " << o->out << "\n";
  });
}

RegisterCommand reg(16, &addImportCommand);

}  // namespace
}  // namespace automod::cli
