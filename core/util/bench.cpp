#include "core/util/bench.h"

#include <torch/cuda.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

namespace automod {
namespace {
void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}
}  // namespace

double timeIt(const std::function<void()>& fn, int reps, int warmup, const torch::Device& device) {
  for (int i = 0; i < warmup; ++i) fn();
  sync(device);
  std::vector<double> t;
  for (int i = 0; i < std::max(1, reps); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    sync(device);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double measureMatmulGflops(const torch::Device& device, int64_t n) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device));
  auto b = torch::randn({n, n}, torch::TensorOptions().device(device));
  torch::Tensor c;
  double s = timeIt([&] { c = torch::mm(a, b); }, 5, 1, device);
  return 2.0 * double(n) * n * n / s / 1e9;
}

double peakRssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

}  // namespace automod
