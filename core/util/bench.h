#pragma once
// Small helpers for `automod bench`: wall-clock timing and the machine's dense-matmul throughput,
// measured in the same run so that figures can be read as a fraction of what the CPU/GPU can do.
#include <torch/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace automod {

/// Median seconds of `reps` calls of fn after `warmup` calls (synchronising CUDA if used).
double timeIt(const std::function<void()>& fn, int reps, int warmup = 1, const torch::Device& device = torch::kCPU);

/// Achieved GFLOP/s of a square fp32 matmul of size n on the device (2·n³ FLOPs per call).
double measureMatmulGflops(const torch::Device& device = torch::kCPU, int64_t n = 2048);

/// Peak resident set size of this process in MiB (VmHWM), or -1 where unknown.
double peakRssMiB();
/// User + system CPU seconds this process has used so far (all threads).
double processCpuSeconds();
/// Resident set size of this process now in MiB (VmRSS: its own memory and the file pages it maps), or
/// -1 where unknown.
double currentRssMiB();

/// What a child process did (runProcess).
struct ProcessRun {
  int exit_code = -1;  ///< -1 when it did not exit normally (a signal)
  std::string out;     ///< its standard output
  double seconds = 0;  ///< wall time from start to exit
  double cpu_seconds = 0;  ///< user + system CPU time of all its threads (less affected by a busy machine)
  double peak_rss_mib = -1;  ///< its peak resident set size (getrusage's ru_maxrss)
};

/// Runs `program` with `args` (argv[1..]), its standard error passed through, and waits for it; throws
/// automod::Error when it cannot be started.
ProcessRun runProcess(const std::string& program, const std::vector<std::string>& args);

}  // namespace automod
