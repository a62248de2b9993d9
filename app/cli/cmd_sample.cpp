// automod sample — random samples; with --lock, conditional samples (scales locked to photos).
#include <iostream>

#include "app/cli/common.h"
#include "core/edit/plan.h"
#include "core/edit/sampling.h"
#include "core/edit/sources.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addSampleCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, out;
    int n = 16, cols = 0, candidates = 1;
    uint64_t seed = 0;
    bool noise = false;
    PhotoFlags photo;
    std::vector<std::string> locks;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("sample", "Decode random latents to a PNG grid (seeded); --lock SCALE=PHOTO keeps "
                                           "scales from a photo and samples the rest");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("-n,--count", o->n, "number of samples")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("-o,--out", o->out, "output image (.png/.jpg)")->required();
  cmd->add_option("--cols", o->cols, "grid columns (0 = square)");
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--lock", o->locks,
                  "SCALE=SOURCE: lock a scale (coarse, intermediate, fine, K or A-B) to a photo, latent file or "
                  "seed:N (repeatable)");
  cmd->add_option("--candidates", o->candidates,
                  "rejection sampling: draw this many codes per sample and keep the most cycle-consistent")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  addPhotoFlags(cmd, o->photo, "center-crop locked photos instead of aligning faces");
  cmd->add_flag("--noise", o->noise, "enable the decoder's per-pixel noise");
  cmd->callback([o, &global] {
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    model->ema->setNoise(o->noise);
    torch::manual_seed(o->seed);
    const int nb = model->numBlocks();
    SourceCache cache(*model, photoOptions(*model, o->photo));
    std::vector<RangeAssignment> locks;
    for (auto& l : o->locks) {
      auto eq = l.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == l.size())
        throw Error("bad --lock '" + l + "': write SCALE=SOURCE, e.g. coarse=face.png");
      locks.push_back({parseBlockRange(l.substr(0, eq), BlockLayout::of(*model)), {cache.latent(SourceSpec::parse(l.substr(eq + 1)))}, {}});
    }
    auto plan = conditionalPlan(*model, locks, {.count = o->n, .seed = o->seed, .candidates = o->candidates});
    std::vector<torch::Tensor> images;
    for (int64_t i = 0; i < o->n; i += 16)
      images.push_back(toImage(model->decode(slicePlan(plan, i, std::min<int64_t>(16, o->n - i)))));
    const int cols = o->cols > 0 ? o->cols : static_cast<int>(std::ceil(std::sqrt(o->n)));
    ensureParentDir(o->out);
    writeImage(o->out, makeGrid(torch::cat(images), cols));
  });
}

RegisterCommand reg(20, &addSampleCommand);

}  // namespace
}  // namespace automod::cli
