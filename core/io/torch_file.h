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
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/io/pickle.h"

namespace automod {

struct TorchFile {
  pickle::ValuePtr root;                   ///< the saved object (for a checkpoint: a dict)
  std::string format;                      ///< "zip" or "legacy"
  std::string archive_name;                ///< the zip's top folder ("ffhq-style"); empty for legacy
  std::vector<std::string> storage_types;  ///< distinct storage classes, in order of first use
  std::vector<std::string> locations;      ///< distinct storage locations ("cpu", "cuda:0"), in order
  int64_t storage_count = 0;               ///< storages read
  int64_t storage_bytes = 0;               ///< bytes of storage data read
  int64_t tensor_count = 0;                ///< tensors built
};

/// Reads `path` (memory-mapped read-only). Throws automod::Error for a missing, unreadable, truncated,
/// corrupt or foreign file.
TorchFile readTorchFile(const std::filesystem::path& path);

/// Reads a torch.save file held in memory; `source` names it in error messages. Nothing in the result
/// points into `bytes`. Throws automod::Error and nothing else for any input (what a fuzzer calls).
TorchFile readTorchBytes(std::span<const uint8_t> bytes, const std::string& source);

/// Whether `qualified_name` ("torch.FloatStorage", "torch.cuda.HalfStorage") is a storage class this
/// reader supports; if so, sets *dtype (when not null) to its element type.
bool torchStorageType(const std::string& qualified_name, c10::ScalarType* dtype);

}  // namespace automod
