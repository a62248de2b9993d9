#pragma once
// `.amod` model files (SPEC §8): weights, EMA decoder, spectral-norm vectors, config and metadata in
// one archive. Training checkpoints are the same file with more in it, so the editor opens both.
#include <filesystem>
#include <memory>

#include "core/io/archive.h"
#include "core/model/automodulator.h"

namespace automod {

/// The model's part of an archive (kind "model"); trainers add their state to it.
TensorArchive modelArchive(Automodulator& model);
/// Writes a model file atomically.
void saveModel(const std::filesystem::path& path, Automodulator& model);

/// Builds a model from an archive read from `source` (for messages). Every tensor must match the
/// config's shapes; otherwise automod::Error names the first mismatch and no model is returned.
std::unique_ptr<Automodulator> modelFromArchive(const TensorArchive& archive, const std::string& source,
                                                torch::Device device = torch::kCPU);
/// Reads a model file or a training checkpoint.
std::unique_ptr<Automodulator> loadModel(const std::filesystem::path& path, torch::Device device = torch::kCPU);

/// Config, stage and metadata of a model file as JSON (what `automod info` prints).
nlohmann::json describeModelFile(const std::filesystem::path& path);

}  // namespace automod
