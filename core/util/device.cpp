#include "core/util/device.h"

#include <torch/cuda.h>
#include <torch/utils.h>

#include <limits>
#include <thread>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/util/error.h"

namespace automod {

torch::Device resolveDevice(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      throw Error("--device " + name + " was asked for, but this build of LibTorch has no usable CUDA device; "
                  "use --device cpu or auto, or build against a CUDA LibTorch");
    return torch::Device(name);
  }
  if (name == "auto" || name.empty()) return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::kCPU;
  throw Error("unknown device '" + name + "': use cpu, cuda or auto");
}

std::string describeDevice(const torch::Device& device) {
  if (device.is_cuda()) return "CUDA:" + std::to_string(device.has_index() ? device.index() : 0);
  const int n = torch::get_num_threads();
  return "CPU (" + std::to_string(n) + (n == 1 ? " thread)" : " threads)");
}

void configureAllocator() {
#ifdef __GLIBC__
  static const bool once = [] {
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
    return true;
  }();
  (void)once;
#endif
}

int configureThreads(int threads) {
  configureAllocator();
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  return torch::get_num_threads();
}

void seedEverything(uint64_t seed) { torch::manual_seed(seed); }

}  // namespace automod
