#pragma once
// Shared test helpers: temporary folders, the CLI binary, tensor comparison, tiny models.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <QString>
#include <QTemporaryDir>

#include <filesystem>
#include <string>
#include <vector>

#include "core/model/automodulator.h"

namespace automod::test {

/// A tiny RGB model (widths 8–16) at `resolution`, seeded.
std::unique_ptr<Automodulator> tinyModel(int resolution = 16, uint64_t seed = 1, int channels = 3);

/// Multiplies the AdaIN style weights of the decoders by `gain`, so that different latents give
/// clearly different 8-bit images, as in a trained model (a fresh model starts near identity).
void makeExpressive(Automodulator& model, double gain = 30.0);

/// Path of the built `automod` binary (from the AUTOMOD_BIN environment set by ctest).
std::string automodBin();

struct RunResult {
  int code = -1;
  std::string out, err;
};
/// Runs `automod` with arguments; captures stdout and stderr.
RunResult runAutomod(const std::vector<std::string>& args, int timeout_ms = 300000);
/// The same for any program (e.g. `automod-run`, the full tool beside `automod`).
RunResult runProgram(const std::string& program, const std::vector<std::string>& args, int timeout_ms = 300000);

/// max |a − b|.
double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b);

/// The folder of the authors' reference fixtures: AMOD_REFERENCE_DIR, or ../shared/reference beside
/// the source tree (AUTOMOD_SOURCE_DIR from the environment, else the one this was built from).
std::filesystem::path referenceDir();
/// A float32 tensor stored raw in a fixture folder: spec {"file": ..., "shape": [...]}. Throws
/// automod::Error for a missing or short file.
torch::Tensor readF32(const std::filesystem::path& dir, const nlohmann::json& spec);

/// A path inside a QTemporaryDir.
std::filesystem::path tmpPath(const QTemporaryDir& dir, const std::string& name);

/// Writes a random smooth RGB test image of the given size.
void writeTestImage(const std::filesystem::path& path, int width, int height, uint64_t seed = 0);

}  // namespace automod::test
