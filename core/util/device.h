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
/// Also calls configureAllocator() (every program calls this first).
int configureThreads(int threads = 0);

/// Makes the C allocator keep the memory of freed tensors for the next ones instead of giving it back
/// to the OS. glibc serves every allocation over 32 MB (a 256 px feature map: 128 channels are 32 MB)
/// with a fresh mmap, whose pages the OS zeroes and maps one fault per 4 KB at the first write, and
/// unmaps it at free: the next call of the same network pays that again. Measured on the 2-core
/// development machine (a VM, where a page fault is expensive), that was half of a 256 px encode
/// (`automod bench encode --widths paper --resolutions 256 --batches 1`: 7.8–8.4 s → 4.0–4.3 s per image
/// under the same load). Large blocks now come from the heap (one arena for all threads, so that a
/// worker thread's blocks are reused too) and stay there: the process keeps its peak working set
/// until it exits. glibc only (elsewhere it does nothing); idempotent; call before starting threads.
void configureAllocator();

/// Seeds LibTorch's CPU and CUDA generators.
void seedEverything(uint64_t seed);

}  // namespace automod
