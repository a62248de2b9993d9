// automod encode — photos (or latent files, seeds) → a latent file.
#include <iomanip>
#include <iostream>
#include <optional>

#include "app/cli/common.h"
#include "core/edit/sources.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

void addEncodeCommand(CLI::App& app, GlobalOptions& global) {
  struct Opts {
    std::string model, out;
    std::vector<std::string> photos;
    PhotoFlags photo;
    RefineOptions refine;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("encode", "Align (unless --no-align) and encode photos into a latent file (JSON)");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("PHOTO", o->photos, "image files")->required();
  cmd->add_option("-o,--out", o->out, "output latent file (.json)")->required();
  addPhotoFlags(cmd, o->photo);
  addRefineFlags(cmd, o->refine);
  cmd->callback([o, &global] {
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    SourceCache cache(*model, photoOptions(*model, o->photo), o->refine);
    std::vector<LatentRecord> records;
    std::vector<std::string> skipped;
    for (auto& p : o->photos) {
      // One bad photo, whatever the library that fails on it, is reported and the others still encoded.
      try {
        const auto spec = SourceSpec::parse(p);
        auto z = cache.latent(spec);
        if (!global.quiet && !cache.lastNote().empty()) std::cerr << "automod: " << p << ": " << cache.lastNote() << "\n";
        LatentRecord record{p, z[0].to(torch::kCPU), {}};
        // Per-block codes (a refined photo's, or a latent file's that has them) go into the file too.
        const bool refines = o->refine.enabled() && spec.kind == SourceSpec::Kind::Photo;
        std::optional<ProgressBar> bar;
        if (refines) bar.emplace("refining " + p, global.quiet);
        cache.setRefineProgress([&](int step, int steps) {
          if (bar) bar->update(step, steps);
          return true;
        });
        auto codes = cache.codes(spec);
        if (bar) bar->finish();
        if (codes.firstDifferentBlock(LatentPlan::uniform(z, model->numBlocks())) < codes.size()) {
          std::vector<torch::Tensor> rows;
          for (auto& c : codes.latents) rows.push_back(c[0].to(torch::kCPU));
          record.z_blocks = torch::stack(rows);
          record.z_offsets = offsetValues(codes);
        }
        if (refines && !global.quiet && cache.lastRefine())
          std::cerr << std::fixed << std::setprecision(2) << "automod: " << p << ": refined in "
                    << cache.lastRefine()->steps_run << " steps, PSNR "
                    << cache.lastRefine()->psnr_before << " -> " << cache.lastRefine()->psnr_after << " dB\n";
        records.push_back(std::move(record));
      } catch (const std::exception& e) {
        printSkipped(p, e, global);
        skipped.push_back(p);
      }
    }
    if (records.empty())
      throw Error(skipped.size() == 1 ? "the photo could not be encoded"
                                      : "none of the " + std::to_string(skipped.size()) + " photos could be encoded");
    ensureParentDir(o->out);
    writeLatentFile(o->out, records, model->resolution());
    if (!global.quiet)
      std::cout << o->out << ": " << records.size() << " latents"
                << (skipped.empty() ? std::string() : " (" + std::to_string(skipped.size()) + " skipped)") << "\n";
  });
}

RegisterCommand reg(30, &addEncodeCommand);

}  // namespace
}  // namespace automod::cli
