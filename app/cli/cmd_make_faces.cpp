// automod make-faces — synthetic cartoon faces (npm facesjs, rendered by resvg) + attributes.jsonl.
#include <chrono>
#include <iostream>

#include "app/cli/common.h"
#include "core/util/error.h"
#include "training/data.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

struct Progress {
  bool quiet;
  std::chrono::steady_clock::time_point start;
};

void addMakeFacesCommand(CLI::App& app, GlobalOptions& global) {
  auto o = std::make_shared<FaceOptions>();
  auto out = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("make-faces", "Generate synthetic cartoon faces (PNG) with ground-truth attributes");
  cmd->add_option("-n,--count", o->count, "number of faces")->required()->check(CLI::Range(int64_t{1}, int64_t{10000000}));
  cmd->add_option("-s,--size", o->size, "image size in px (square)")->capture_default_str()->check(CLI::Range(4, 2048));
  cmd->add_option("-o,--out", *out, "output folder (NNNNNN.png + attributes.jsonl)")->required();
  cmd->add_option("--seed", o->seed, "random seed (the same seed gives the same faces)")->capture_default_str();
  cmd->callback([o, out, &global] {
    o->out = *out;
    Progress p{global.quiet, std::chrono::steady_clock::now()};
    auto report = [](int64_t done, int64_t total, void* user) {
      auto* pr = static_cast<Progress*>(user);
      if (pr->quiet) return;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - pr->start).count();
      std::cerr << "\rfaces " << done << "/" << total << "  " << static_cast<int>(done / std::max(s, 1e-3))
                << " faces/s" << (done == total ? "\n" : "") << std::flush;
    };
    makeFaces(*o, report, &p);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - p.start).count();
    if (!global.quiet)
      std::cerr << "wrote " << o->count << " faces to " << fs::path(*out).string() << " in " << s << " s ("
                << o->count / std::max(s, 1e-3) << " faces/s)\n";
  });
}

RegisterCommand reg(80, &addMakeFacesCommand);

}  // namespace
}  // namespace automod::cli
