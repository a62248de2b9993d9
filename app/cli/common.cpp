#include "app/cli/common.h"

#include <iostream>

#include "core/io/default_model.h"
#include "core/io/model_file.h"
#include "core/util/device.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;

torch::Device prepare(const GlobalOptions& global) {
  configureThreads(global.threads);
  return resolveDevice(global.device);
}

std::unique_ptr<Automodulator> openModel(const std::string& model, torch::Device device, bool quiet) {
  if (model == "default") {
    auto d = openDefaultModel(device);
    if (!d.note.empty() && !quiet) std::cerr << "automod: note: " << d.note << "\n";
    return std::move(d.model);
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
