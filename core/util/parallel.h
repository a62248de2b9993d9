#pragma once
// Parallel loops in the project's own code. at::parallel_for is a template whose OpenMP backend (the
// one Debian's and the official LibTorch builds use) is a `#pragma omp parallel` compiled into the
// caller: in code built without -fopenmp, as this project's is, it silently runs on one thread.
// parallelFor runs on LibTorch's inter-op thread pool instead, which works whatever the caller's flags.
#include <cstdint>
#include <functional>

namespace automod {

/// Calls f(b, e) on consecutive chunks [b, e) of [begin, end), each of at most `grain` elements, on up
/// to `threads` threads (≤ 0: LibTorch's intra-op thread count, i.e. --threads) with the caller as one
/// of them. Chunks are handed out one by one, so uneven chunks balance. Returns when every chunk is
/// done; the first exception a chunk throws is rethrown here (the chunks not yet started are skipped).
/// A call from inside a chunk, or with the pool busy, runs on fewer threads, never deadlocks.
void parallelFor(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& f,
                 int threads = 0);

}  // namespace automod
