#pragma once
// What a model file's header says about the model (docs/design.md §8), read and checked without
// LibTorch: the config, the stage reached and the fade-in weight, the metadata, and what `automod
// info` prints. loadModel checks a header through parseModelHeader before it builds anything, and the
// header-only `automod info` (app/automod_launcher.cpp) answers from describeModelHeader.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "core/io/archive_header.h"
#include "core/model/config.h"

namespace automod {

struct ModelHeader {
  ModelConfig config;
  /// The top block trained so far, and its fade-in weight (1 once faded in).
  int stage = 0;
  double alpha = 1.0;
  nlohmann::json metadata = nlohmann::json::object();
};

/// The header of a model archive (kind "model" or "checkpoint"), every field checked: the format
/// tag, the config's fields and values, stage and alpha, and that `tensors` hold at least as many
/// bytes as the config's model needs (a few bytes of JSON cannot ask for gigabytes). Throws
/// automod::Error naming `source` otherwise. Whether the tensors are exactly the model's is checked
/// by the loader, which builds the networks.
ModelHeader parseModelHeader(const nlohmann::json& header, const std::vector<ArchiveEntry>& tensors,
                             const std::string& source);

/// What `automod info` prints for the file at `path` with this header: file, kind, size, format,
/// integrity ("verified" when `verified`, else "not verified"), config, stage (and alpha), resolution,
/// decoder blocks, metadata, the encoder's and decoder's parameter counts (from the tensor table: the
/// spectral norms' u and v are buffers), and the training state's header when there is one. Throws
/// automod::Error as parseModelHeader.
nlohmann::json describeModelHeader(const std::filesystem::path& path, const ArchiveHeader& file, bool verified);

}  // namespace automod
