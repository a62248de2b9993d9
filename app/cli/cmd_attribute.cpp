// automod attribute build | apply — attribute vectors from exemplars, applied on chosen scales.
#include <iostream>

#include "app/cli/common.h"
#include "core/edit/attribute.h"
#include "core/edit/session.h"
#include "core/io/image.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

std::vector<SourceSpec> exemplars(const std::vector<std::string>& args) {
  std::vector<SourceSpec> out;
  for (auto& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      for (auto& p : imageFilesIn(a)) out.push_back(SourceSpec::photo(p));
    } else {
      out.push_back(SourceSpec::parse(a));
    }
  }
  return out;
}

void addAttributeCommands(CLI::App& app, GlobalOptions& global) {
  auto* group = app.add_subcommand("attribute", "Attribute vectors: build from exemplars, apply to a photo");
  group->require_subcommand(1);

  struct BuildOpts {
    std::string model, out, scales, name;
    std::vector<std::string> positives, negatives;
    PhotoFlags photo_flags;
  };
  auto b = std::make_shared<BuildOpts>();
  auto* build = group->add_subcommand("build", "mean φ(positives) − mean φ(negatives), restricted to scales");
  build->add_option("MODEL", b->model, "model file (.amod) or 'default'")->required();
  build->add_option("--positive", b->positives, "folder(s) or files with the attribute (at least 2 in all)")->required();
  build->add_option("--negative", b->negatives, "folder(s) or files without it (at least 2 in all)")->required();
  build->add_option("--scales", b->scales, "scales it acts on: coarse, intermediate, fine, K, A-B or a comma list")
      ->required();
  build->add_option("--name", b->name, "a name stored in the file");
  build->add_option("-o,--out", b->out, "output attribute file (.json)")->required();
  addPhotoFlags(build, b->photo_flags);
  build->callback([b, &global] {
    auto device = prepare(global);
    auto model = openModel(b->model, device, global.quiet);
    SourceCache cache(*model, photoOptions(*model, b->photo_flags));
    auto ranges = parseBlockRanges(b->scales, BlockLayout::of(*model));
    auto attr = buildAttribute(cache, *model, exemplars(b->positives), exemplars(b->negatives), ranges,
                               b->name.empty() ? fs::path(b->out).stem().string() : b->name);
    ensureParentDir(b->out);
    attr.save(b->out);
    if (!global.quiet)
      std::cout << b->out << ": " << attr.positives.size() << " + " << attr.negatives.size() << " exemplars, scales "
                << rangesToString(attr.ranges) << "\n";
  });

  struct ApplyOpts {
    std::string model, photo, attr, out, scales;
    double strength = 1.0;
    bool noise = false;
    PhotoFlags photo_flags;
  };
  auto a = std::make_shared<ApplyOpts>();
  auto* apply = group->add_subcommand("apply", "z' = normalise(z + strength·v) on the attribute's scales");
  apply->add_option("MODEL", a->model, "model file (.amod) or 'default'")->required();
  apply->add_option("PHOTO", a->photo, "photo, latent file (.json) or seed:N")->required();
  apply->add_option("--attr", a->attr, "attribute file from 'attribute build'")->required();
  apply->add_option("--strength", a->strength, "how far to move (negative removes the attribute)")->capture_default_str();
  apply->add_option("--scales", a->scales, "override the attribute's scales");
  apply->add_option("-o,--out", a->out, "output image (.png/.jpg)")->required();
  addPhotoFlags(apply, a->photo_flags);
  apply->add_flag("--noise", a->noise, "enable the decoder's per-pixel noise");
  apply->callback([a, &global] {
    auto attr = AttributeVector::load(a->attr);
    auto device = prepare(global);
    auto model = openModel(a->model, device, global.quiet);
    model->ema->setNoise(a->noise);
    if (!a->scales.empty()) attr.ranges = parseBlockRanges(a->scales, BlockLayout::of(*model));
    EditSession session(*model, photoOptions(*model, a->photo_flags));
    auto z = session.sources().latent(SourceSpec::parse(a->photo));
    auto plan = applyAttribute(LatentPlan::uniform(z, model->numBlocks()), attr, a->strength);
    ensureParentDir(a->out);
    writeImage(a->out, toImage(session.decode(plan))[0]);
    if (!global.quiet) std::cout << a->out << "\n";
  });
}

RegisterCommand reg(60, &addAttributeCommands);

}  // namespace
}  // namespace automod::cli
