// automod mix — scale mixing of photos, latent files or seeds.
#include <iostream>
#include <optional>

#include "app/cli/common.h"
#include "core/edit/plan.h"
#include "core/edit/session.h"
#include "core/io/image.h"
#include "core/util/error.h"

namespace automod::cli {
namespace {

// "a.png" or "a.png@0.3+b.png@0.7": sources blended with weights, each with its per-block codes
// (a photo's refined ones with --refine).
PlanAssignment parseBlend(SourceCache& cache, const std::string& text, BlockRange range) {
  PlanAssignment a{range, {}, {}};
  size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find('+', start);
    auto part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    double w = 1.0;
    auto at = part.rfind('@');
    if (at != std::string::npos) {
      try {
        size_t used = 0;
        w = std::stod(part.substr(at + 1), &used);
        if (used != part.size() - at - 1) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        throw Error("bad weight in '" + part + "': write SOURCE@WEIGHT, e.g. a.png@0.5");
      }
      part = part.substr(0, at);
    }
    a.sources.push_back(cache.codes(SourceSpec::parse(part)));
    a.weights.push_back(w);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return a;
}

void addMixCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, out, coarse, intermediate, fine, base;
    std::vector<std::string> blocks;
    bool noise = false;
    PhotoFlags photo;
    RefineOptions refine;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "mix", "Scale mixing: each scale range (or block) from its own photo, latent file (.json) or seed:N; "
             "blend several with A@0.3+B@0.7");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("--coarse", o->coarse, "source of the coarse blocks (4-8 px)");
  cmd->add_option("--intermediate", o->intermediate, "source of the intermediate blocks (16-32 px)");
  cmd->add_option("--fine", o->fine, "source of the fine blocks (64 px and up)");
  cmd->add_option("--block", o->blocks, "SCALE=SOURCE for any block K or range A-B (repeatable; applied last)");
  cmd->add_option("--base", o->base, "source of the blocks nothing else covers (default: the first one given)");
  cmd->add_option("-o,--out", o->out, "output image (.png/.jpg)")->required();
  addPhotoFlags(cmd, o->photo);
  cmd->add_flag("--noise", o->noise, "enable the decoder's per-pixel noise");
  addRefineFlags(cmd, o->refine);
  cmd->callback([o, &global] {
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    model->ema->setNoise(o->noise);
    EditSession session(*model, photoOptions(*model, o->photo));
    auto& cache = session.sources();
    cache.setRefineOptions(o->refine);
    std::optional<ProgressBar> bar;
    cache.setRefineProgress([&](int step, int steps) {
      if (!bar) bar.emplace("refining", global.quiet);
      bar->update(step, steps);
      if (step == steps) bar.reset();
      return true;
    });
    const int nb = model->numBlocks();
    const auto layout = BlockLayout::of(*model);
    std::vector<PlanAssignment> assignments;
    std::string first;
    auto add = [&](const std::string& text, BlockRange range) {
      assignments.push_back(parseBlend(cache, text, range));
      if (first.empty()) first = text;
    };
    if (!o->coarse.empty()) add(o->coarse, coarseRange(layout));
    if (!o->intermediate.empty()) add(o->intermediate, intermediateRange(layout));
    if (!o->fine.empty()) add(o->fine, fineRange(layout));
    for (auto& b : o->blocks) {
      auto eq = b.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == b.size())
        throw Error("bad --block '" + b + "': write SCALE=SOURCE, e.g. 4=face.png or 2-3=seed:7");
      add(b.substr(eq + 1), parseBlockRange(b.substr(0, eq), layout));
    }
    if (assignments.empty()) throw Error("nothing to mix: give --coarse, --intermediate, --fine or --block");
    const std::string base = o->base.empty() ? first : o->base;
    // The base blend covers every block first; the assignments then override their ranges.
    assignments.insert(assignments.begin(), parseBlend(cache, base, {0, nb - 1}));
    auto plan = buildPlan(nb, assignments.front().sources.front(), assignments);
    ensureParentDir(o->out);
    writeImage(o->out, toImage(session.decode(plan))[0]);
    if (!global.quiet) std::cout << o->out << "\n";
  });
}

RegisterCommand reg(50, &addMixCommand);

}  // namespace
}  // namespace automod::cli
