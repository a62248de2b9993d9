#pragma once
// The single-file container behind `.amod` model files and training checkpoints: a JSON header and
// named raw tensors, checksummed, written atomically. Reading never leaves anything half-loaded:
// readArchive either returns everything or throws automod::Error saying what is wrong with the file.
//
// Layout: "AMODFILE" | u32 format version | u64 header bytes | header JSON | tensor data |
//         "AMODEND!" | u64 total bytes | u32 CRC-32 of everything before the trailer.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace automod {

constexpr uint32_t kArchiveFormatVersion = 1;

struct TensorArchive {
  /// Free JSON: kind ("model", "checkpoint"), config, metadata, training state...
  nlohmann::json header = nlohmann::json::object();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;

  void add(const std::string& name, const torch::Tensor& t) { tensors.emplace_back(name, t); }
  /// The tensor named `name`; throws automod::Error naming the file's problem when it is missing.
  const torch::Tensor& get(const std::string& name) const;
  bool has(const std::string& name) const;
};

/// Writes to `path` atomically: a temporary file beside it, fsync, rename. On any failure (a full
/// disk, no permission) the previous file at `path` is untouched and automod::Error says why.
void writeArchive(const std::filesystem::path& path, const TensorArchive& archive);

/// Reads and verifies a whole archive; throws automod::Error for a missing, truncated, corrupt,
/// foreign or newer-version file, and for one whose checksum is right but whose header is not what
/// this program writes (JSON nested more than 64 levels, two tensors of one name, a tensor larger than
/// the file): nothing is allocated for a tensor before its size is checked against the file.
TensorArchive readArchive(const std::filesystem::path& path);
/// The same from bytes in memory; `name` is used in messages (the fuzzer's entry point).
TensorArchive readArchiveBytes(const char* data, size_t size, const std::string& name);

/// CRC-32 (IEEE) of a byte range, continuing from `crc`.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

}  // namespace automod
