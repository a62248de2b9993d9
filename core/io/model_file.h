#pragma once
// `.amod` model files (docs/design.md §8): weights, EMA decoder, spectral-norm vectors, config and metadata in
// one archive. Training checkpoints are the same file with more in it, so the editor opens both.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "core/io/archive.h"
#include "core/model/automodulator.h"

namespace automod {

/// The model's part of an archive (kind "model"); trainers add their state to it.
TensorArchive modelArchive(Automodulator& model);
/// Writes a model file atomically.
void saveModel(const std::filesystem::path& path, Automodulator& model);

/// How a model file is loaded; the CLI fills it from its global options (--allow-nonfinite), the
/// editor from its own settings.
struct LoadOptions {
  /// Where the model goes once read.
  torch::Device device = torch::kCPU;
  /// Load weights that are NaN or infinite, with a warning, instead of refusing the file. Such a model
  /// draws black or garbage images; this lets a user inspect a diverged training run anyway.
  bool allow_nonfinite = false;
  /// Receives each warning (one sentence naming the file); unset, warnings are dropped.
  std::function<void(const std::string&)> warn;
  /// Where the weights live: in a private map of the file (the default: no copy, ~0.3 s for a 330 MB
  /// model, but the file must not be overwritten in place while the model is alive: archive.h), or in
  /// memory of the model's own.
  TensorStorage storage = TensorStorage::Mapped;
};

/// Builds a model from an archive read from `source` (for messages). Every tensor must match the
/// config's shapes and hold finite numbers (unless options.allow_nonfinite); otherwise automod::Error
/// names the first bad tensor and no model is returned. A config that describes a model larger than
/// the file's tensor data is refused before anything is allocated for it. The model's tensors are
/// copies of the archive's; from an archive passed by rvalue they are the archive's own (no copy).
std::unique_ptr<Automodulator> modelFromArchive(const TensorArchive& archive, const std::string& source,
                                                const LoadOptions& options);
std::unique_ptr<Automodulator> modelFromArchive(const TensorArchive& archive, const std::string& source,
                                                torch::Device device = torch::kCPU);
std::unique_ptr<Automodulator> modelFromArchive(TensorArchive&& archive, const std::string& source,
                                                const LoadOptions& options);
std::unique_ptr<Automodulator> modelFromArchive(TensorArchive&& archive, const std::string& source,
                                                torch::Device device = torch::kCPU);
/// Reads a model file or a training checkpoint.
std::unique_ptr<Automodulator> loadModel(const std::filesystem::path& path, const LoadOptions& options);
std::unique_ptr<Automodulator> loadModel(const std::filesystem::path& path, torch::Device device = torch::kCPU);

/// Config, stage and metadata of a model file as JSON (what `automod info` prints), from its header:
/// the tensors it lists are checked against its config, but its checksum and weights are not read
/// ("integrity": "not verified"). With `verify` the whole model is loaded as loadModel does (checksum,
/// finite weights: "integrity": "verified").
nlohmann::json describeModelFile(const std::filesystem::path& path, const LoadOptions& options = {},
                                 bool verify = false);

}  // namespace automod
