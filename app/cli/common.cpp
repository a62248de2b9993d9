#include "app/cli/common.h"

#include <iostream>

#include "core/io/model_file.h"
#include "core/util/device.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;

torch::Device prepare(const GlobalOptions& global) {
  configureThreads(global.threads);
  return resolveDevice(global.device);
}

fs::path defaultModelPath() {
  for (fs::path p : {fs::path(AUTOMOD_SOURCE_DIR) / "models" / "default.amod",
                     fs::path("/usr/share/automod-studio/models/default.amod"), fs::path("models/default.amod")}) {
    std::error_code ec;
    if (fs::exists(p, ec)) return p;
  }
  return {};
}

std::unique_ptr<Automodulator> openModel(const std::string& model, torch::Device device, bool quiet) {
  if (model == "default") {
    auto path = defaultModelPath();
    if (!path.empty()) return loadModel(path, device);
    if (!quiet)
      std::cerr << "automod: note: no trained default model is installed; using a freshly initialised 64 px model "
                   "(seed 0) — results are noise until you train one (automod train)\n";
    torch::manual_seed(0);
    auto m = std::make_unique<Automodulator>(ModelConfig::fromTable("cpu-128", 64), device);
    m->metadata["untrained"] = true;
    return m;
  }
  return loadModel(model, device);
}

void ensureParentDir(const fs::path& path) {
  if (path.parent_path().empty()) return;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) throw Error("cannot create folder " + path.parent_path().string() + ": " + ec.message());
}

}  // namespace automod::cli
