#include "core/io/default_model.h"

#include <unistd.h>

#include "core/io/model_file.h"

namespace automod {
namespace fs = std::filesystem;

namespace {
fs::path programDir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}
}  // namespace

fs::path defaultModelPath() {
  std::vector<fs::path> candidates{fs::path(AUTOMOD_SOURCE_DIR) / "models" / "default.amod"};
  if (auto dir = programDir(); !dir.empty())
    candidates.push_back(dir / ".." / "share" / "automod-studio" / "models" / "default.amod");
  candidates.push_back("/usr/share/automod-studio/models/default.amod");
  candidates.push_back(fs::path("models") / "default.amod");
  for (const auto& p : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return fs::absolute(p, ec).lexically_normal();
  }
  return {};
}

std::unique_ptr<Automodulator> untrainedDefaultModel(torch::Device device) {
  torch::manual_seed(0);
  auto model = std::make_unique<Automodulator>(ModelConfig::fromTable("cpu-128", 64), device);
  model->metadata["untrained"] = true;
  return model;
}

DefaultModel openDefaultModel(torch::Device device) {
  LoadOptions options;
  options.device = device;
  return openDefaultModel(options);
}

DefaultModel openDefaultModel(const LoadOptions& options) {
  DefaultModel out;
  out.path = defaultModelPath();
  if (!out.path.empty()) {
    out.model = loadModel(out.path, options);
    return out;
  }
  out.model = untrainedDefaultModel(options.device);
  out.untrained = true;
  out.note = "no trained default model is installed; using a freshly initialised 64 px model (seed 0) — results are "
             "noise until you train one (automod train) or open another model";
  return out;
}

}  // namespace automod
