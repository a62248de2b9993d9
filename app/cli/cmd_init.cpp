// automod init
#include <iostream>

#include "app/cli/common.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addInitCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string table = "cpu-128", out;
    int resolution = 64, channels = 3, latent = 512;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("init", "Write a freshly initialised (untrained) model file");
  cmd->add_option("-o,--out", o->out, "output .amod")->required();
  cmd->add_option("--widths", o->table, "width table: paper, paper-small, cpu-128, cpu-64, cpu-32")
      ->capture_default_str();
  cmd->add_option("--resolution", o->resolution, "final resolution (4..1024, power of two)")->capture_default_str();
  cmd->add_option("--channels", o->channels, "image channels (1 or 3)")->capture_default_str();
  cmd->add_option("--latent", o->latent, "latent size")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->callback([o, &global] {
    prepare(global);
    torch::manual_seed(o->seed);
    Automodulator m(ModelConfig::fromTable(o->table, o->resolution, o->channels, o->latent));
    m.metadata["untrained"] = true;
    m.metadata["seed"] = o->seed;
    ensureParentDir(o->out);
    saveModel(o->out, m);
    if (!global.quiet) std::cerr << "wrote " << o->out << "\n";
  });
}

RegisterCommand reg(15, &addInitCommand);

}  // namespace
}  // namespace automod::cli
