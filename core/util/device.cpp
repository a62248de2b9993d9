#include "core/util/device.h"

#include <torch/cuda.h>
#include <torch/utils.h>

#include <thread>

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

int configureThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  return torch::get_num_threads();
}

void seedEverything(uint64_t seed) { torch::manual_seed(seed); }

}  // namespace automod
