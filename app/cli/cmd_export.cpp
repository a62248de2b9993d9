// automod export — a training checkpoint's model part (encoder, decoder, EMA decoder, spectral-norm
// vectors, config, stage, metadata) as a plain model file, without the optimiser and schedule state.
// This is how models/default.amod is made from the default model's run.
#include <iostream>

#include "app/cli/common.h"
#include "core/io/model_file.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addExportCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string in, out;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("export", "Write a checkpoint's model without its training state (a smaller .amod)");
  cmd->add_option("CHECKPOINT", o->in, "model file or training checkpoint")->required()->check(CLI::ExistingFile);
  cmd->add_option("OUT", o->out, "model file to write (.amod)")->required();
  cmd->callback([o, &global] {
    prepare(global);
    if (fs::exists(o->out) && fs::equivalent(o->in, o->out)) throw Error("OUT must differ from the checkpoint");
    auto model = loadModel(o->in);
    model->metadata["exported_from"] = fs::path(o->in).filename().string();
    ensureParentDir(o->out);
    saveModel(o->out, *model);
    if (!global.quiet)
      std::cerr << "wrote " << o->out << " (" << model->resolution() << " px, stage " << model->stage() << ", "
                << fs::file_size(o->out) / 1024 << " KiB)\n";
  });
}

RegisterCommand reg(17, &addExportCommand);

}  // namespace
}  // namespace automod::cli
