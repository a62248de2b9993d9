#pragma once
// Data-parallel training over several processes, GPUs and machines on PyTorch's own distributed
// engine, c10d (docs/design.md §3 "Scaling out"). No Qt, no home-made parameter server.
//
// - DistributedEnv reads the torchrun environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
//   LOCAL_RANK; Slurm's SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID stand in for a missing RANK /
//   WORLD_SIZE / LOCAL_RANK), so torchrun, srun or a plain shell loop can start the ranks.
// - Distributed joins the ranks: rendezvous through a c10d TCPStore (rank 0 serves it) or a
//   FileStore on a shared file system, then ProcessGroupGloo on CPU or ProcessGroupNCCL when the
//   ranks use CUDA (each rank binds GPU LOCAL_RANK). Every collective is bounded by
//   DistributedOptions::timeout: a rank that dies or hangs makes the others throw automod::Error
//   (a dead process is usually noticed at once, because its sockets close; a hung one after the
//   timeout) instead of waiting forever.
// - Collectives the trainer needs: broadcast from rank 0 (parameters, buffers with the
//   spectral-norm vectors, EMA, robust-loss parameters), bucketed gradient averaging, and the
//   global-batch moments of the KL term.
// - DistributedSampler gives each rank a disjoint slice of every global batch of one seeded data
//   stream (a permutation per epoch), so that N ranks with batch b read exactly what one process
//   with batch N·b reads.
//
// Only code in distributed.cpp touches c10d; this header is the same for LibTorch 1.13 and 2.x.
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace automod {

/// Where this process stands in a torchrun-style launch.
struct DistributedEnv {
  std::string master_addr;  ///< host of rank 0's TCPStore (unused with a FileStore)
  int master_port = 0;      ///< its port
  int rank = 0;             ///< 0 .. world_size−1
  int world_size = 1;
  int local_rank = 0;  ///< rank on this machine: the GPU index with CUDA

  /// Reads the process environment. Throws automod::Error naming the variable for a missing or
  /// invalid value. With WORLD_SIZE unset (and no Slurm), returns a single-process environment.
  /// `need_master`: MASTER_ADDR and MASTER_PORT must be set when world_size > 1 (false for a
  /// FileStore rendezvous).
  static DistributedEnv fromEnvironment(bool need_master = true);
  /// The same from a map of variables (tests).
  static DistributedEnv fromVariables(const std::map<std::string, std::string>& vars, bool need_master = true);
  /// True when the environment asks for more than one rank (WORLD_SIZE or SLURM_NTASKS > 1).
  static bool requested();

  bool isMain() const { return rank == 0; }
  /// "rank 1 of 2 (local 1), rendezvous 127.0.0.1:29500"
  std::string describe() const;
};

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick), for loopback runs of
/// several ranks (benchmarks, tests).
int freeLoopbackPort();

struct DistributedOptions {
  enum class Rendezvous { Tcp, File };
  /// TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 is the server), or a FileStore at store_file.
  Rendezvous rendezvous = Rendezvous::Tcp;
  /// FileStore path on a file system every rank sees; must not hold a store of an older run.
  std::filesystem::path store_file;
  /// How long the ranks wait for each other at start-up (all ranks must have started by then).
  std::chrono::milliseconds rendezvous_timeout{std::chrono::seconds(120)};
  /// Upper bound of one collective: a peer that died or hangs makes the others fail within it.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  /// CPU: Gloo. CUDA: NCCL on GPU LOCAL_RANK (the index of this device is ignored).
  torch::DeviceType device_type = torch::kCPU;
  /// Gloo worker threads per rank.
  int gloo_threads = 2;
  /// Gradient/broadcast bucket size in bytes (one collective per bucket).
  int64_t bucket_bytes = 25ll << 20;
};

/// Batch mean and biased variance over a (global) batch, per dimension.
struct BatchMoments {
  torch::Tensor mean, var;
  int64_t count = 0;  ///< global batch size
};

/// KL(N(μ, σ²) ‖ N(0, I)) averaged over dimensions: mean_d [ (σ²_d + μ²_d)/2 − ½·log σ²_d − ½ ]
/// (the same formula as batchKL in losses.h).
torch::Tensor klFromMoments(const BatchMoments& m);

/// Statistics of the last collectives (for `automod bench` and logs).
struct DistributedStats {
  int64_t collectives = 0;  ///< number of c10d calls made
  int64_t bytes = 0;        ///< payload bytes sent through them
  double seconds = 0.0;     ///< wall time spent in them
};

class Distributed {
 public:
  /// Joins the other ranks (blocking up to options.rendezvous_timeout). world_size 1 is allowed
  /// and makes every collective a no-op. Throws automod::Error with what to check on failure.
  explicit Distributed(const DistributedEnv& env, DistributedOptions options = {});
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const { return env_.rank; }
  int worldSize() const { return env_.world_size; }
  int localRank() const { return env_.local_rank; }
  /// Rank 0 writes logs, previews and checkpoints.
  bool isMain() const { return env_.rank == 0; }
  const DistributedEnv& env() const { return env_; }
  const DistributedOptions& options() const { return options_; }
  /// The device this rank computes on: CPU, or cuda:LOCAL_RANK.
  torch::Device device() const;
  /// "gloo", "nccl" or "none" (one rank).
  std::string backendName() const;
  /// Whether this build has the backend for that device type (Gloo for CPU, NCCL for CUDA).
  static bool backendAvailable(torch::DeviceType device_type);

  /// Overwrites every tensor in place with rank 0's values (bucketed by dtype, ≤ bucket_bytes per
  /// call). All ranks must pass the same list (same order, shapes and dtypes).
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  /// Replaces each parameter's gradient by its mean over the ranks: gradients are flattened into
  /// buckets of ≤ bucket_bytes, one all-reduce per bucket, then copied back. Parameters without a
  /// gradient are skipped; every rank must have gradients for the same parameters.
  void allReduceMeanGradients(const std::vector<torch::Tensor>& params);
  /// The same for every parameter of an optimiser.
  void allReduceMeanGradients(torch::optim::Optimizer& optimizer);
  /// True when `loss` is finite on every rank (one tiny all-reduce), so that all ranks take the
  /// same branch (step, or roll back) after a NaN/Inf on any of them.
  bool allFinite(const torch::Tensor& loss);
  /// True when `flag` is true on any rank (a stop request on one rank stops all at the same step).
  bool anyTrue(bool flag);
  /// In-place sum over the ranks (bucketed like the gradients). No autograd.
  void allReduceSum(std::vector<torch::Tensor>& tensors);
  /// Every rank's `local` (same shape and dtype on all ranks) concatenated along dim 0 in rank
  /// order: with equal per-rank batches, the global batch. One all-gather; no autograd.
  torch::Tensor allGather(const torch::Tensor& local);
  /// Mean and biased variance of z [b, D] over the global batch (all ranks' rows), with the
  /// gradient flowing only through this rank's rows: the other ranks' sums enter detached, so the
  /// gradient w.r.t. a local row equals the single-process gradient of the same statistic over the
  /// whole global batch. `grad_scale` multiplies that gradient without changing the values: use
  /// worldSize() when gradients are then *averaged* by allReduceMeanGradients (the statistic's
  /// gradient must be summed over ranks, not averaged). All ranks must call it with the same D.
  BatchMoments globalBatchMoments(const torch::Tensor& z, double grad_scale = 1.0);
  /// KL of the global batch, gradient scaled by worldSize() for gradient averaging (see above).
  torch::Tensor globalBatchKL(const torch::Tensor& z);
  /// Waits for every rank (bounded by the timeout).
  void barrier();
  /// The same with another bound, e.g. while rank 0 prepares a data cache that the others then read.
  void barrier(std::chrono::milliseconds timeout);

  DistributedStats stats() const { return stats_; }
  void resetStats() { stats_ = {}; }

 private:
  struct Impl;
  DistributedEnv env_;
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
  DistributedStats stats_;
};

/// While a GlobalBatchScope with a multi-rank Distributed is alive in this thread, batchKL
/// (losses.h) computes its moments over the global batch with Distributed::globalBatchKL.
class GlobalBatchScope {
 public:
  explicit GlobalBatchScope(Distributed* dist);
  ~GlobalBatchScope();
  GlobalBatchScope(const GlobalBatchScope&) = delete;
  GlobalBatchScope& operator=(const GlobalBatchScope&) = delete;
  /// The Distributed of the innermost scope of this thread, or null (also for one rank).
  static Distributed* current();

 private:
  Distributed* previous_;
};

/// Every parameter and buffer of a module (buffers include the spectral-norm u/v vectors), in a
/// fixed order, for Distributed::broadcast.
std::vector<torch::Tensor> stateTensors(const torch::nn::Module& module);

/// One seeded stream of data indices, shared by all ranks: epoch e is the permutation
/// randperm(size, seed·1000003 + e) (the Trainer's order), epochs concatenated. A step reads the
/// next global batch of world_size·b positions; rank r takes positions [r·b, (r+1)·b) of it. So
/// within an epoch the ranks read disjoint shards that together cover the data set, the order is
/// reshuffled every epoch, and the concatenation of the ranks' batches is the batch that one
/// process with world_size = 1 and batch world_size·b reads.
class DistributedSampler {
 public:
  DistributedSampler(int64_t size, uint64_t seed, int rank = 0, int world_size = 1);
  int64_t size() const { return size_; }
  /// The permutation of an epoch (identical on every rank).
  torch::Tensor permutation(int64_t epoch) const;
  /// This rank's `local_batch` indices of the global batch that starts at stream position
  /// `global_start` (= images the whole job has seen so far; steps advance it by world·local_batch).
  std::vector<int64_t> localBatch(int64_t global_start, int64_t local_batch) const;
  /// The indices of `epoch` that this rank reads when every step uses `local_batch` and the stream
  /// started at position 0 (the shard; disjoint across ranks, their union is the data set).
  std::vector<int64_t> shard(int64_t epoch, int64_t local_batch) const;

 private:
  int64_t size_;
  uint64_t seed_;
  int rank_, world_;
  mutable int64_t cached_epoch_ = -1;
  mutable torch::Tensor cached_perm_;
  int64_t indexAt(int64_t position) const;
};

}  // namespace automod
