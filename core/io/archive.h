#pragma once
// The single-file container behind `.amod` model files and training checkpoints: a JSON header and
// named raw tensors, checksummed, written atomically. Reading never leaves anything half-loaded:
// readArchive either returns everything or throws automod::Error saying what is wrong with the file.
//
// Layout: "AMODFILE" | u32 format version | u64 header bytes | header JSON | tensor data |
//         "AMODEND!" | u64 total bytes | u32 checksum of everything before the trailer.
// Format 1: the checksum is CRC-32 (IEEE) and the tensor data follows the header packed, at any byte
//           offset. Format 2 (written since): the checksum is CRC-32C (hardware on x86), and the data
//           and every tensor in it start at a multiple of 64 bytes from the file's start (zero padding),
//           so that tensors can be used in place from a memory map of the file. Both are read.
//
// Reading maps the file (mmap, private: writing to a tensor copies the page it is on, never the file)
// and verifies the checksum in one pass over the mapping; a format-2 file's tensors are then views of
// the mapping (no copy: the pages are the page cache's, and the mapping lives as long as any tensor
// of it), a format-1 file's are copied into memory of their own. A mapped file must not be truncated
// or overwritten in place while its tensors are alive: the program would be killed by SIGBUS on the
// next access to a page the file lost (POSIX gives no way to survive that other than copying). This
// program never does it (writeArchive replaces a file by renaming a new one over it, and the old file
// stays readable by whoever has it mapped); `cp new.amod open.amod` onto a model an editor has open
// would. TensorStorage::Owned reads instead, for a caller that must survive that.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/io/archive_header.h"
#include "core/util/crc.h"

namespace automod {

struct TensorArchive {
  /// Free JSON: kind ("model", "checkpoint"), config, metadata, training state...
  nlohmann::json header = nlohmann::json::object();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;

  void add(const std::string& name, const torch::Tensor& t) { tensors.emplace_back(name, t); }
  /// The tensor named `name`; throws automod::Error naming the file's problem when it is missing.
  const torch::Tensor& get(const std::string& name) const;
  bool has(const std::string& name) const;
};

/// Where the tensors read from a file keep their data.
enum class TensorStorage {
  /// Views of a private memory map of the file where its format allows (format 2), copies otherwise.
  Mapped,
  /// Memory of their own: nothing refers to the file once readArchive returns.
  Owned,
};

/// Writes to `path` atomically (format kArchiveFormatVersion): a temporary file beside it, fsync,
/// rename. On any failure (a full disk, no permission) the previous file at `path` is untouched and
/// automod::Error says why.
void writeArchive(const std::filesystem::path& path, const TensorArchive& archive);

/// Reads and verifies a whole archive; throws automod::Error for a missing, truncated, corrupt,
/// foreign or newer-version file, and for one whose checksum is right but whose header is not what
/// this program writes (JSON nested more than 64 levels, two tensors of one name, a tensor larger than
/// the file): nothing is allocated for a tensor before its size is checked against the file.
TensorArchive readArchive(const std::filesystem::path& path, TensorStorage storage = TensorStorage::Mapped);
/// The same from bytes in memory (tensors are copies); `name` is used in messages (the fuzzer's entry point).
TensorArchive readArchiveBytes(const char* data, size_t size, const std::string& name);

/// The LibTorch type of a stored element type ("f32", ...; ArchiveEntry::dtype), and back. Throws
/// automod::Error for a type an archive cannot hold.
torch::ScalarType archiveScalarType(const std::string& dtype);
std::string archiveDtypeName(torch::ScalarType type);

}  // namespace automod
