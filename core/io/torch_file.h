#pragma once
// Reads PyTorch `torch.save` files without Python and without executing anything: the zip format
// (PyTorch >= 1.6) and the legacy format before it, CPU- or GPU-saved (every storage is read onto the
// CPU). The result is the saved object as a tree of pickle::Values whose tensors are CPU tensors that
// own their memory. LibTorch 1.13's torch::pickle_load cannot read these files.
//
// Understood: storages torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage and
// their torch.cuda.* twins at any location; tensors made by torch._utils._rebuild_tensor_v2 (and
// _rebuild_tensor, _rebuild_parameter, _rebuild_parameter_with_state); collections.OrderedDict (as a
// dict). Any other global call stays an opaque pickle Object. Every failure is an automod::Error with
// one line naming the file and what is wrong with it.
//
// A file can also be read streamed (readTorchFile(path, TorchRead::Streamed)): only the pickle is
// parsed, every tensor in the tree is a placeholder (a meta tensor: shape and type, no data), and
// TorchFile::tensors reads a placeholder's elements straight from the file into a tensor of the
// caller's when asked: a checkpoint is then read once, into its destination, and parts nobody asks
// for (optimiser moments, unused layers) are never read at all.
//
// writeTorchFile writes a tree of pickle::Values back in either format, as torch.save would (for
// tests and benchmarks that need checkpoints of other shapes than the shared fixtures).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/io/pickle.h"

namespace automod {

/// Reads the elements of a streamed file's placeholders (thread-safe; keeps the file open).
class TorchTensorSource {
 public:
  struct Impl;
  explicit TorchTensorSource(std::unique_ptr<Impl> impl);
  ~TorchTensorSource();
  /// Whether `t` is a placeholder of this file.
  bool holds(const at::Tensor& t) const;
  /// Copies the elements of placeholder `t` into `dst`, a CPU tensor of as many elements (any
  /// layout; converted to its type). A contiguous destination of the storage's type that the tensor
  /// fills is read into directly, without a copy. A zip entry's CRC-32 is verified as it is read.
  /// Throws automod::Error naming the file for a short read, a CRC mismatch or a foreign tensor.
  void readInto(const at::Tensor& t, const at::Tensor& dst) const;
  /// The elements of placeholder `t` as a new contiguous CPU tensor that owns its memory.
  at::Tensor load(const at::Tensor& t) const;
  /// Placeholder `t` as a view of a private copy-on-write mapping of the file (writes to it stay in
  /// this process; the tensor keeps the mapping alive): nothing is copied, and pages of the file's
  /// cache are shared. Its storage's CRC-32 is verified on the first view of it. Undefined where the
  /// file cannot give one (a legacy file, whose storages may lie at any offset; no mmap): then use
  /// load() or readInto(). Throws automod::Error for a CRC mismatch or a file cut short since it was read.
  at::Tensor view(const at::Tensor& t) const;
  /// Bytes read from the file so far.
  int64_t bytesRead() const;

 private:
  std::unique_ptr<Impl> impl_;
};

enum class TorchRead {
  Whole,     ///< every storage read and checked; tensors own their memory
  Streamed,  ///< only the pickle; tensors are placeholders read through TorchFile::tensors
};

struct TorchFile {
  pickle::ValuePtr root;                   ///< the saved object (for a checkpoint: a dict)
  std::string format;                      ///< "zip" or "legacy"
  std::string archive_name;                ///< the zip's top folder ("ffhq-style"); empty for legacy
  std::vector<std::string> storage_types;  ///< distinct storage classes, in order of first use
  std::vector<std::string> locations;      ///< distinct storage locations ("cpu", "cuda:0"), in order
  int64_t storage_count = 0;               ///< storages read
  int64_t storage_bytes = 0;               ///< bytes of storage data read
  int64_t tensor_count = 0;                ///< tensors built
  /// Streamed reads only: reads the placeholders' elements.
  std::shared_ptr<const TorchTensorSource> tensors;
};

/// Reads `path` (memory-mapped read-only). Throws automod::Error for a missing, unreadable, truncated,
/// corrupt or foreign file. Streamed, the storages' data is not read (nor its CRC-32 checked) until
/// a placeholder is read; the file's structure (every storage's place and size) is checked here.
TorchFile readTorchFile(const std::filesystem::path& path, TorchRead mode = TorchRead::Whole);

/// Reads a torch.save file held in memory; `source` names it in error messages. Nothing in the result
/// points into `bytes`. Throws automod::Error and nothing else for any input (what a fuzzer calls).
TorchFile readTorchBytes(std::span<const uint8_t> bytes, const std::string& source);

/// Whether `qualified_name` ("torch.FloatStorage", "torch.cuda.HalfStorage") is a storage class this
/// reader supports; if so, sets *dtype (when not null) to its element type.
bool torchStorageType(const std::string& qualified_name, c10::ScalarType* dtype);

struct TorchWriteOptions {
  std::string format = "zip";  ///< "zip" (torch.save since 1.6) or "legacy"
  /// The zip's top folder (torch.save uses the file name without its extension); empty: "archive".
  std::string archive_name;
  /// Storage classes named torch.cuda.* and this location, as a file saved on a GPU ("cuda:0").
  std::string location = "cpu";
};

/// Writes `root` as torch.save would: dicts, lists, tuples, None, bools, ints, floats, strings and
/// tensors (any dtype this reader supports; tensors sharing a storage share it in the file, as
/// torch.save writes tied weights). Throws automod::Error for what cannot be written (a global, an
/// Object, a zip archive over 4 GiB) or a file that cannot be written.
void writeTorchFile(const std::filesystem::path& path, const pickle::ValuePtr& root,
                    const TorchWriteOptions& options = {});

}  // namespace automod
