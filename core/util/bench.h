#pragma once
// Small helpers for `automod bench`: wall-clock timing and the machine's dense-matmul throughput,
// measured in the same run so that figures can be read as a fraction of what the CPU/GPU can do.
#include <torch/types.h>

#include <chrono>
#include <functional>

namespace automod {

/// Median seconds of `reps` calls of fn after `warmup` calls (synchronising CUDA if used).
double timeIt(const std::function<void()>& fn, int reps, int warmup = 1, const torch::Device& device = torch::kCPU);

/// Achieved GFLOP/s of a square fp32 matmul of size n on the device (2·n³ FLOPs per call).
double measureMatmulGflops(const torch::Device& device = torch::kCPU, int64_t n = 2048);

/// Peak resident set size of this process in MiB (VmHWM), or -1 where unknown.
double peakRssMiB();

}  // namespace automod
