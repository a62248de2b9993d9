#pragma once
// automod bench train --ranks N: data-parallel scaling of the training iteration on CPU ranks
// (Gloo on 127.0.0.1), compared with one process. See docs/distributed.md.
#include <string>
#include <vector>

#include "app/cli/commands.h"

namespace automod::cli {

struct RankedTrainBenchOptions {
  int ranks = 2;
  std::vector<int> resolutions;
  std::vector<std::string> tables;
  int batch = 16;  ///< per rank
  int reps = 3;
  int warmup = 1;
};

/// Starts 1 and then N rank processes of this program (same command line), each with --threads
/// torch threads (default 1), times the iteration with gradient all-reduce and global-batch KL, and
/// prints JSON lines: per configuration the per-rank time, images/s and the weak-scaling efficiency
/// images_per_second(N) / (N · images_per_second(1)).
void runRankedTrainBench(const RankedTrainBenchOptions& options, const GlobalOptions& global);

}  // namespace automod::cli
