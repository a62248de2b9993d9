// automod apply — a saved recipe (or an editor project): over a folder of photos, each taking the
// recipe's `input` role, or, for a recipe without one, its one image.
#include <iostream>
#include <optional>

#include "app/cli/common.h"
#include "core/edit/recipe.h"
#include "core/edit/session.h"
#include "core/io/image.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addApplyCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, recipe, in, out, image;
    bool noise = false;
    PhotoFlags photo;
    RefineOptions refine;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "apply", "Run a saved recipe or editor project: over a folder (each photo takes the recipe's 'input' role), or "
               "its one image");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default' (default: the model the recipe names)");
  cmd->add_option("--recipe", o->recipe, "recipe or editor project file (.json)")->required();
  cmd->add_option("--in", o->in, "folder of photos (or one photo) for a recipe with an 'input' role");
  cmd->add_option("--out", o->out, "output folder (with --in)");
  cmd->add_option("-o,--image", o->image, "output image, for a recipe without an 'input' role (an editor project)");
  addPhotoFlags(cmd, o->photo, "center-crop instead of aligning faces (overrides the recipe)");
  cmd->add_flag("--noise", o->noise, "enable the decoder's per-pixel noise");
  addRefineFlags(cmd, o->refine);
  cmd->callback([o, cmd, &global] {
    auto recipe = Recipe::load(o->recipe);
    // The recipe's own refinement replays as recorded; --refine N (with the other --refine-* options)
    // replaces it, and --refine 0 turns it off.
    if (cmd->count("--refine") > 0) recipe.refine = o->refine;
    auto device = prepare(global);
    std::string model_path = o->model;
    if (model_path.empty()) {
      if (recipe.model.empty()) throw Error("the recipe names no model: give one (automod apply MODEL --recipe ...)");
      model_path = recipe.model.string();
    }
    auto model = openModel(model_path, device, global.quiet);
    model->ema->setNoise(o->noise);
    EditSession session(*model, photoOptions(*model, o->photo, !recipe.align.value_or(true)));
    std::optional<ProgressBar> bar;
    session.sources().setRefineProgress([&](int step, int steps) {
      if (!bar) bar.emplace("refining", global.quiet);
      bar->update(step, steps);
      if (step == steps) bar.reset();
      return true;
    });
    if (!recipe.usesInput()) {
      // An editor project (or any recipe without an input): its one image.
      if (o->image.empty()) throw Error("this recipe has no 'input' role: give the output image with -o OUT.png");
      ensureParentDir(o->image);
      writeImage(o->image, toImage(session.decode(recipePlan(recipe, session.sources(), *model)))[0]);
      if (!global.quiet) std::cout << o->image << "\n";
      return;
    }
    if (o->in.empty() || o->out.empty())
      throw Error("this recipe applies to photos: give --in FOLDER_OR_PHOTO and --out FOLDER");
    auto photos = imageFilesIn(o->in);
    fs::create_directories(o->out);
    size_t failed = 0;
    for (auto& p : photos) {
      try {
        auto plan = recipePlan(recipe, session.sources(), *model, SourceSpec::photo(p));
        auto out = fs::path(o->out) / (p.stem().string() + ".png");
        writeImage(out, toImage(session.decode(plan))[0]);
        if (!global.quiet) std::cout << out.string() << "\n";
      } catch (const Error& e) {
        std::cerr << "automod: skipped " << p.string() << ": " << e.what() << "\n";
        ++failed;
      }
    }
    if (failed == photos.size())
      throw Error("the recipe could not be applied to any photo in " + o->in);
    if (failed && !global.quiet) std::cerr << "automod: " << failed << " of " << photos.size() << " photos failed\n";
  });
}

RegisterCommand reg(65, &addApplyCommand);

}  // namespace
}  // namespace automod::cli
