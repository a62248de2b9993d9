#pragma once
// Whether a tensor holds only finite numbers: the check a loaded or imported model gets (NaN or
// infinite weights, from a diverged run or a damaged file, make every image black).
#include <torch/types.h>

namespace automod {

/// Whether every element of `t` is finite (always true for integer and bool tensors). A contiguous
/// float32 CPU tensor is scanned once at memory speed, without allocating; others go through ATen.
bool allFinite(const torch::Tensor& t);

/// How many elements of `t` are NaN or infinite.
int64_t countNonFinite(const torch::Tensor& t);

}  // namespace automod
