// automod encode — photos (or latent files, seeds) → a latent file.
#include <iostream>

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
    bool no_align = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("encode", "Align (unless --no-align) and encode photos into a latent file (JSON)");
  cmd->add_option("MODEL", o->model, "model file (.amod) or 'default'")->required();
  cmd->add_option("PHOTO", o->photos, "image files")->required();
  cmd->add_option("-o,--out", o->out, "output latent file (.json)")->required();
  cmd->add_flag("--no-align", o->no_align, "center-crop instead of aligning faces");
  cmd->callback([o, &global] {
    auto device = prepare(global);
    auto model = openModel(o->model, device, global.quiet);
    SourceCache cache(*model, photoOptionsForModel(model->metadata, o->no_align));
    std::vector<LatentRecord> records;
    std::vector<std::string> skipped;
    for (auto& p : o->photos) {
      // One bad photo, whatever the library that fails on it, is reported and the others still encoded.
      try {
        auto z = cache.latent(SourceSpec::parse(p));
        records.push_back({p, z[0].to(torch::kCPU)});
        if (!global.quiet && !cache.lastNote().empty()) std::cerr << "automod: " << p << ": " << cache.lastNote() << "\n";
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
