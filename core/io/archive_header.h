#pragma once
// The header of the single-file container behind `.amod` model files and training checkpoints
// (core/io/archive.h): what a reader learns from a file's first and last bytes without reading its
// tensors. No LibTorch here: `automod info` answers from this alone (app/automod_launcher.cpp).
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace automod {

constexpr uint32_t kArchiveFormatVersion = 2;
/// Alignment of tensor data in format-2 files, in bytes from the start of the file.
constexpr uint64_t kArchiveTensorAlignment = 64;

/// One tensor as an archive's header describes it.
struct ArchiveEntry {
  std::string name;
  /// The stored element type: "f32", "f64", "f16", "i64", "i32", "u8" or "bool".
  std::string dtype = "f32";
  std::vector<int64_t> shape;
  /// Bytes from the start of the tensor data, and the tensor's size in bytes (= elements × element size).
  uint64_t offset = 0, nbytes = 0;
  /// The number of elements (the product of the shape).
  int64_t numel() const;
};

/// An archive's header without its tensor data: what a reader learns from the first and last bytes.
struct ArchiveHeader {
  /// The header JSON without its list of tensors (as TensorArchive::header).
  nlohmann::json header = nlohmann::json::object();
  std::vector<ArchiveEntry> tensors;
  uint32_t format_version = 0;
  uint64_t file_bytes = 0;
};

/// Bytes per element of a stored type; 0 for a name that is not one.
size_t archiveElementSize(const std::string& dtype);

/// Reads a file's header and trailer only: the same checks as readArchive except the checksum, which
/// needs every byte (a damaged file whose header still parses is not noticed). When the header is
/// unreadable the checksum is verified after all, so that a damaged file is reported as damaged.
ArchiveHeader readArchiveHeader(const std::filesystem::path& path);

}  // namespace automod
