#include "app/cli/common.h"

#include <iostream>

#include "core/io/default_model.h"
#include "core/io/model_file.h"
#include "core/util/device.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;

namespace {
// --allow-nonfinite as given to prepare(), for openModel (whose callers predate the option).
bool g_allow_nonfinite = false;

void printWithDetail(const std::string& label, const std::exception& e, const GlobalOptions& global) {
  std::cerr << "automod: " << label << errorMessage(e) << "\n";
  if (!global.verbose) return;
  const auto detail = errorDetail(e);
  if (!detail.empty()) std::cerr << "automod: detail: " << detail << "\n";
}
}  // namespace

torch::Device prepare(const GlobalOptions& global) {
  g_allow_nonfinite = global.allow_nonfinite;
  configureThreads(global.threads);
  return resolveDevice(global.device);
}

LoadOptions loadOptions(const GlobalOptions& global, torch::Device device) {
  LoadOptions o;
  o.device = device;
  o.allow_nonfinite = global.allow_nonfinite;
  o.warn = [](const std::string& message) { std::cerr << "automod: warning: " << message << "\n"; };
  return o;
}

void printError(const std::exception& e, const GlobalOptions& global) { printWithDetail("error: ", e, global); }
void printSkipped(const std::string& input, const std::exception& e, const GlobalOptions& global) {
  const bool named = errorMessage(e).find(input) != std::string::npos;
  printWithDetail(named ? std::string("skipped: ") : "skipped: " + input + ": ", e, global);
}

std::unique_ptr<Automodulator> openModel(const std::string& model, torch::Device device, bool quiet) {
  GlobalOptions global;
  global.allow_nonfinite = g_allow_nonfinite;
  const auto options = loadOptions(global, device);
  if (model == "default") {
    const auto path = defaultModelPath();
    if (!path.empty()) return loadModel(path, options);
    if (!quiet)
      std::cerr << "automod: note: no trained default model is installed; using a freshly initialised 64 px model "
                   "(seed 0) — results are noise until you train one (automod train)\n";
    return untrainedDefaultModel(device);
  }
  return loadModel(model, options);
}

void ensureParentDir(const fs::path& path) {
  if (path.parent_path().empty()) return;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) throw Error("cannot create folder " + path.parent_path().string() + ": " + ec.message());
}

}  // namespace automod::cli
