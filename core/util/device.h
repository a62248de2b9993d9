#pragma once
// Device and thread selection shared by the CLI, the GUI and the trainer.
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace automod {

/// "auto" picks CUDA when this LibTorch build has a usable GPU, else CPU; "cuda" without one throws.
torch::Device resolveDevice(const std::string& name);

/// A short human name, e.g. "CPU (2 threads)" or "CUDA: NVIDIA H200".
std::string describeDevice(const torch::Device& device);

/// Sets LibTorch's intra-op threads; 0 means one per hardware thread. Returns the number in use.
int configureThreads(int threads = 0);

/// Seeds LibTorch's CPU and CUDA generators.
void seedEverything(uint64_t seed);

}  // namespace automod
