// automod sample
#include <iostream>

#include "app/cli/common.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addSampleCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, out;
    int n = 16, cols = 0;
    uint64_t seed = 0;
    bool noise = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("sample", "Decode random latents to a PNG grid (seeded)");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("-n,--count", o->n, "number of samples")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("-o,--out", o->out, "output image (.png/.jpg)")->required();
  cmd->add_option("--cols", o->cols, "grid columns (0 = square)");
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_flag("--noise", o->noise, "enable the decoder's per-pixel noise");
  cmd->callback([o, &global] {
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    model->ema->setNoise(o->noise);
    torch::manual_seed(o->seed);
    auto z = model->randomLatents(o->n, o->seed);
    std::vector<torch::Tensor> images;
    for (int64_t i = 0; i < o->n; i += 16) images.push_back(toImage(model->decode(z.narrow(0, i, std::min<int64_t>(16, o->n - i)))));
    const int cols = o->cols > 0 ? o->cols : static_cast<int>(std::ceil(std::sqrt(o->n)));
    ensureParentDir(o->out);
    writeImage(o->out, makeGrid(torch::cat(images), cols));
  });
}

RegisterCommand reg(20, &addSampleCommand);

}  // namespace
}  // namespace automod::cli
