// The only file that touches c10d. LibTorch 1.13: ProcessGroupGloo/NCCL derive from c10d::ProcessGroup;
// 2.x: from c10d::Backend. Gloo's headers come with Debian's libgloo-dev (PyTorch's own LibTorch
// ships them); NCCL is used only when CMake found it for a CUDA build (USE_C10D_NCCL).
#include "training/distributed.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

// Debian's TorchConfig defines USE_C10D_GLOO, but the Gloo headers come with a separate package:
// without them this file still builds, and Distributed reports what to install.
#if __has_include(<gloo/algorithm.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#else
#undef USE_C10D_GLOO
#endif

#if defined(USE_C10D_NCCL) && !__has_include(<nccl.h>)
#undef USE_C10D_NCCL
#endif

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "core/util/error.h"

namespace automod {

namespace {

#if TORCH_VERSION_MAJOR >= 2
using BackendBase = c10d::Backend;
#else
using BackendBase = c10d::ProcessGroup;
#endif

using Clock = std::chrono::steady_clock;

std::string seconds(std::chrono::milliseconds ms) {
  std::ostringstream os;
  os << static_cast<double>(ms.count()) / 1000.0 << " s";
  return os.str();
}

int parseInt(const std::map<std::string, std::string>& vars, const std::string& name, const std::string& fallback_name,
             int fallback, int min_value, int max_value, bool required) {
  auto it = vars.find(name);
  std::string used = name;
  if (it == vars.end() && !fallback_name.empty()) {
    it = vars.find(fallback_name);
    used = fallback_name;
  }
  if (it == vars.end()) {
    if (required)
      throw Error(name + " is not set: start the ranks with torchrun or srun, or set MASTER_ADDR, MASTER_PORT, RANK, "
                         "WORLD_SIZE and LOCAL_RANK yourself (see docs/distributed.md)");
    return fallback;
  }
  const std::string& text = it->second;
  size_t pos = 0;
  long value = 0;
  try {
    value = std::stol(text, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (text.empty() || pos != text.size())
    throw Error(used + "='" + text + "' is not an integer");
  if (value < min_value || value > max_value)
    throw Error(used + "=" + text + " is out of range [" + std::to_string(min_value) + ", " +
                std::to_string(max_value) + "]");
  return static_cast<int>(value);
}

bool isLoopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

/// Groups tensors of one dtype and device into buckets of at most `bytes` (a larger tensor gets its own).
std::vector<std::vector<size_t>> makeBuckets(const std::vector<torch::Tensor>& tensors, int64_t bytes) {
  std::vector<std::vector<size_t>> buckets;
  std::map<std::pair<int, std::string>, size_t> open;  // (dtype, device) -> bucket being filled
  std::vector<int64_t> fill;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    auto key = std::make_pair(static_cast<int>(t.scalar_type()), t.device().str());
    const int64_t size = t.numel() * static_cast<int64_t>(t.element_size());
    auto it = open.find(key);
    if (it == open.end() || fill[it->second] + size > bytes) {
      buckets.emplace_back();
      fill.push_back(0);
      open[key] = buckets.size() - 1;
      it = open.find(key);
    }
    buckets[it->second].push_back(i);
    fill[it->second] += size;
  }
  return buckets;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Environment

DistributedEnv DistributedEnv::fromVariables(const std::map<std::string, std::string>& vars, bool need_master) {
  DistributedEnv env;
  const bool any = vars.count("WORLD_SIZE") || vars.count("SLURM_NTASKS") || vars.count("RANK");
  if (!any) return env;
  env.world_size = parseInt(vars, "WORLD_SIZE", "SLURM_NTASKS", 1, 1, 1 << 20, true);
  env.rank = parseInt(vars, "RANK", "SLURM_PROCID", 0, 0, env.world_size - 1, env.world_size > 1);
  env.local_rank = parseInt(vars, "LOCAL_RANK", "SLURM_LOCALID", 0, 0, 1 << 16, false);
  if (env.world_size > 1 && need_master) {
    auto addr = vars.find("MASTER_ADDR");
    if (addr == vars.end() || addr->second.empty())
      throw Error("MASTER_ADDR is not set: it must name the host of rank 0 (with Slurm: the first host of "
                  "$SLURM_JOB_NODELIST; see docs/distributed.md)");
    env.master_addr = addr->second;
    env.master_port = parseInt(vars, "MASTER_PORT", "", 0, 1, 65535, true);
  } else {
    if (auto a = vars.find("MASTER_ADDR"); a != vars.end()) env.master_addr = a->second;
    env.master_port = parseInt(vars, "MASTER_PORT", "", 0, 1, 65535, false);
  }
  return env;
}

int freeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("cannot open a socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw Error("cannot find a free port on 127.0.0.1");
  return ntohs(addr.sin_port);
}

DistributedEnv DistributedEnv::fromEnvironment(bool need_master) {
  std::map<std::string, std::string> vars;
  for (const char* name : {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID",
                           "SLURM_NTASKS", "SLURM_LOCALID"}) {
    if (const char* v = std::getenv(name)) vars[name] = v;
  }
  return fromVariables(vars, need_master);
}

bool DistributedEnv::requested() {
  for (const char* name : {"WORLD_SIZE", "SLURM_NTASKS"}) {
    const char* v = std::getenv(name);
    if (v && std::atoi(v) > 1) return true;
  }
  return false;
}

std::string DistributedEnv::describe() const {
  std::ostringstream os;
  os << "rank " << rank << " of " << world_size << " (local " << local_rank << ")";
  if (!master_addr.empty()) os << ", rendezvous " << master_addr << ":" << master_port;
  return os.str();
}

torch::Tensor klFromMoments(const BatchMoments& m) {
  return ((m.var + m.mean.square()) * 0.5 - 0.5 * m.var.log() - 0.5).mean();
}

std::vector<torch::Tensor> stateTensors(const torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (const auto& p : module.named_parameters(true)) out.push_back(p.value());
  for (const auto& b : module.named_buffers(true)) out.push_back(b.value());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Process group

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<BackendBase> pg;
  std::string backend = "none";
  torch::Device device = torch::kCPU;
};

Distributed::Distributed(const DistributedEnv& env, DistributedOptions options)
    : env_(env), options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  TORCH_CHECK(env_.world_size >= 1 && env_.rank >= 0 && env_.rank < env_.world_size, "invalid rank ", env_.rank,
              " of ", env_.world_size);
  if (options_.device_type == torch::kCUDA) {
#ifdef USE_C10D_NCCL
    // GPU LOCAL_RANK; a launcher that gives every task its own CUDA_VISIBLE_DEVICES leaves one GPU: 0.
    const int visible = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
    const int index = visible == 1 ? 0 : env_.local_rank;
    if (index >= visible)
      throw Error("rank " + std::to_string(env_.rank) + ": LOCAL_RANK " + std::to_string(env_.local_rank) +
                  " has no GPU (" + std::to_string(visible) + " visible)");
    impl_->device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
#else
    throw Error("this build has no NCCL: distributed training on CUDA needs LibTorch with CUDA and NCCL "
                "(rebuild against PyTorch's CUDA LibTorch), or use --device cpu for Gloo");
#endif
  }
  if (env_.world_size == 1) return;

  const std::string who = "rank " + std::to_string(env_.rank) + " of " + std::to_string(env_.world_size);
  // Rendezvous.
  try {
    if (options_.rendezvous == DistributedOptions::Rendezvous::File) {
      if (options_.store_file.empty()) throw Error("the FileStore rendezvous needs a store file path");
      auto file = c10::make_intrusive<c10d::FileStore>(options_.store_file.string(), env_.world_size);
      file->setTimeout(options_.rendezvous_timeout);
      impl_->store = file;
    } else {
      if (env_.master_addr.empty() || env_.master_port <= 0)
        throw Error("MASTER_ADDR and MASTER_PORT must be set for the TCP rendezvous");
      // Under torchrun (torch >= 2) the launcher's agent already serves a TCPStore on MASTER_PORT and
      // says so with TORCHELASTIC_USE_AGENT_STORE: every rank is then a client, under the same key
      // prefix as PyTorch's own workers.
      const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
      const bool agent_store = agent && (std::string(agent) == "True" || std::string(agent) == "1");
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(env_.master_port);
      so.isServer = env_.rank == 0 && !agent_store;
      so.numWorkers = static_cast<std::size_t>(env_.world_size);
      so.waitWorkers = !agent_store;
      so.timeout = options_.rendezvous_timeout;
      c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, so);
      if (agent_store) {
        const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
        tcp = c10::make_intrusive<c10d::PrefixStore>(std::string("/worker/attempt_") + (attempt ? attempt : "0"), tcp);
      }
      impl_->store = tcp;
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string where = options_.rendezvous == DistributedOptions::Rendezvous::File
                                  ? "file store " + options_.store_file.string()
                                  : env_.master_addr + ":" + std::to_string(env_.master_port);
    throw Error(who + ": rendezvous at " + where + " failed within " + seconds(options_.rendezvous_timeout) +
                " (are all " + std::to_string(env_.world_size) + " ranks started, is the port free and reachable?): " +
                errorMessage(e));
  }

  // Process group.
  try {
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("automod/", impl_->store);
    if (options_.device_type == torch::kCUDA) {
#ifdef USE_C10D_NCCL
      // Without async error handling a dead peer leaves NCCL kernels spinning forever.
      setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = options_.timeout;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, env_.rank, env_.world_size, opts);
      impl_->backend = "nccl";
#endif
    } else {
#ifdef USE_C10D_GLOO
      auto opts = c10d::ProcessGroupGloo::Options::create(options_.timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (isLoopback(env_.master_addr) || options_.rendezvous == DistributedOptions::Rendezvous::File) {
        // All ranks on this machine (or a file store, where any reachable address will do).
        opts->devices.push_back(isLoopback(env_.master_addr) || env_.master_addr.empty()
                                    ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                    : c10d::ProcessGroupGloo::createDefaultDevice());
      } else {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      opts->threads = std::max(1, options_.gloo_threads);
      // The group's rendezvous waits on the store with the store's timeout.
      impl_->store->setTimeout(options_.rendezvous_timeout);
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env_.rank, env_.world_size, opts);
      impl_->backend = "gloo";
#else
      throw Error("this LibTorch build has no Gloo headers: install libgloo-dev (Debian) and rebuild");
#endif
    }
    impl_->store->setTimeout(options_.timeout);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(who + ": could not form the process group within " + seconds(options_.rendezvous_timeout) + ": " +
                errorMessage(e));
  }
}

Distributed::~Distributed() = default;

torch::Device Distributed::device() const { return impl_->device; }

std::string Distributed::backendName() const { return impl_->backend; }

bool Distributed::backendAvailable(torch::DeviceType device_type) {
  if (device_type == torch::kCUDA) {
#ifdef USE_C10D_NCCL
    return torch::cuda::is_available();
#else
    return false;
#endif
  }
#ifdef USE_C10D_GLOO
  return true;
#else
  return false;
#endif
}

namespace {

/// Waits for one c10d call with the collective timeout and turns failures into a clear Error.
template <typename WorkPtr>
void finish(const WorkPtr& work, const DistributedEnv& env, const DistributedOptions& options, const char* what) {
  try {
    if (!work->wait(options.timeout))
      throw Error("timed out");
  } catch (const std::exception& e) {
    throw Error("distributed training stopped: " + std::string(what) + " failed on rank " + std::to_string(env.rank) +
                " of " + std::to_string(env.world_size) + " (another rank died or did not answer within " +
                seconds(options.timeout) + "; resume from the last checkpoint with --resume): " + errorMessage(e));
  }
}

// Flattens each bucket of tensors into one tensor, runs `collective` on it in place, and copies
// the result back into the tensors: one call per bucket instead of one per tensor.
template <typename Collective>
void forEachFlatBucket(std::vector<torch::Tensor>& tensors, int64_t bucket_bytes, bool to_cpu,
                       Collective&& collective) {
  for (const auto& bucket : makeBuckets(tensors, bucket_bytes)) {
    std::vector<torch::Tensor> parts;
    for (size_t i : bucket) parts.push_back(tensors[i].detach().reshape({-1}));
    auto flat = bucket.size() == 1 ? parts[0].clone() : torch::cat(parts);
    if (to_cpu) flat = flat.to(torch::kCPU);
    collective(flat);
    int64_t offset = 0;
    for (size_t i : bucket) {
      auto& t = tensors[i];
      t.detach().copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace

void Distributed::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  if (env_.world_size == 1 || tensors.empty()) return;
  torch::NoGradGuard no_grad;
  const auto start = Clock::now();
  forEachFlatBucket(tensors, options_.bucket_bytes, impl_->backend != "nccl", [&](torch::Tensor& flat) {
    std::vector<torch::Tensor> io{flat};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = options_.timeout;
    finish(impl_->pg->broadcast(io, opts), env_, options_, "broadcast");
    ++stats_.collectives;
    stats_.bytes += flat.numel() * static_cast<int64_t>(flat.element_size());
  });
  stats_.seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

void Distributed::allReduceSum(std::vector<torch::Tensor>& tensors) {
  if (env_.world_size == 1 || tensors.empty()) return;
  torch::NoGradGuard no_grad;
  const auto start = Clock::now();
  forEachFlatBucket(tensors, options_.bucket_bytes, impl_->backend != "nccl", [&](torch::Tensor& flat) {
    std::vector<torch::Tensor> io{flat};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = options_.timeout;
    finish(impl_->pg->allreduce(io, opts), env_, options_, "all-reduce");
    ++stats_.collectives;
    stats_.bytes += flat.numel() * static_cast<int64_t>(flat.element_size());
  });
  stats_.seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

torch::Tensor Distributed::allGather(const torch::Tensor& local) {
  if (env_.world_size == 1) return local;
  TORCH_CHECK(local.dim() >= 1, "allGather needs a batch dimension");
  torch::NoGradGuard no_grad;
  const auto start = Clock::now();
  const bool to_cpu = impl_->backend != "nccl";
  auto in = to_cpu ? local.detach().to(torch::kCPU).contiguous() : local.detach().contiguous();
  std::vector<torch::Tensor> inputs{in};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < env_.world_size; ++r) outputs[0].push_back(torch::empty_like(in));
  c10d::AllgatherOptions opts;
  opts.timeout = options_.timeout;
  finish(impl_->pg->allgather(outputs, inputs, opts), env_, options_, "all-gather");
  ++stats_.collectives;
  stats_.bytes += in.numel() * static_cast<int64_t>(in.element_size()) * env_.world_size;
  stats_.seconds += std::chrono::duration<double>(Clock::now() - start).count();
  return torch::cat(outputs[0]).to(local.device());
}

void Distributed::allReduceMeanGradients(const std::vector<torch::Tensor>& params) {
  if (env_.world_size == 1) return;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  allReduceSum(grads);
  torch::NoGradGuard no_grad;
  const double inv = 1.0 / env_.world_size;
  for (auto& g : grads) g.mul_(inv);
}

void Distributed::allReduceMeanGradients(torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> params;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) params.push_back(p);
  allReduceMeanGradients(params);
}

bool Distributed::allFinite(const torch::Tensor& loss) {
  const bool here = std::isfinite(loss.detach().to(torch::kCPU).item<double>());
  if (env_.world_size == 1) return here;
  std::vector<torch::Tensor> io{torch::full({1}, here ? 0.0f : 1.0f, torch::TensorOptions().device(impl_->device))};
  allReduceSum(io);
  return io[0].item<float>() == 0.0f;
}

bool Distributed::anyTrue(bool flag) {
  if (env_.world_size == 1) return flag;
  std::vector<torch::Tensor> io{torch::full({1}, flag ? 1.0f : 0.0f, torch::TensorOptions().device(impl_->device))};
  allReduceSum(io);
  return io[0].item<float>() > 0.0f;
}

BatchMoments Distributed::globalBatchMoments(const torch::Tensor& z, double grad_scale) {
  TORCH_CHECK(z.dim() == 2 && z.size(0) >= 1, "globalBatchMoments needs a [b, D] batch, got ", z.sizes());
  // Same values, gradient multiplied by grad_scale.
  const auto zs = grad_scale == 1.0 ? z : z.detach() + (z - z.detach()) * grad_scale;
  const int64_t dim = z.size(1);
  // Pass 1: global count and sum -> mean.
  auto local_sum = zs.sum(0);
  auto packed = torch::cat({local_sum.detach(), torch::full({1}, static_cast<double>(z.size(0)), local_sum.options())});
  std::vector<torch::Tensor> io{packed};
  allReduceSum(io);
  const auto global_sum = packed.narrow(0, 0, dim);
  const int64_t count = static_cast<int64_t>(std::llround(packed[dim].item<double>()));
  auto mean = (local_sum + (global_sum - local_sum.detach())) / static_cast<double>(count);
  // Pass 2: centred second moment. Centring on the detached mean is exact for the gradient too,
  // because Σ_j (z_j − μ) = 0 over the global batch makes the μ-path of d/dz of Σ (z_j − μ)² vanish.
  auto local_sq = (zs - mean.detach()).square().sum(0);
  std::vector<torch::Tensor> io2{local_sq.detach().clone()};
  allReduceSum(io2);
  auto var = (local_sq + (io2[0] - local_sq.detach())) / static_cast<double>(count);
  return {mean, var, count};
}

torch::Tensor Distributed::globalBatchKL(const torch::Tensor& z) {
  return klFromMoments(globalBatchMoments(z, static_cast<double>(env_.world_size)));
}

namespace {
thread_local Distributed* t_global_batch = nullptr;
}

GlobalBatchScope::GlobalBatchScope(Distributed* dist) : previous_(t_global_batch) {
  t_global_batch = dist && dist->worldSize() > 1 ? dist : nullptr;
}

GlobalBatchScope::~GlobalBatchScope() { t_global_batch = previous_; }

Distributed* GlobalBatchScope::current() { return t_global_batch; }

void Distributed::barrier() { barrier(options_.timeout); }

void Distributed::barrier(std::chrono::milliseconds timeout) {
  if (env_.world_size == 1) return;
  c10d::BarrierOptions opts;
  opts.timeout = timeout;
  DistributedOptions bounded = options_;
  bounded.timeout = timeout;
  finish(impl_->pg->barrier(opts), env_, bounded, "barrier");
}

// ---------------------------------------------------------------------------------------------
// Sampler

DistributedSampler::DistributedSampler(int64_t size, uint64_t seed, int rank, int world_size)
    : size_(size), seed_(seed), rank_(rank), world_(world_size) {
  TORCH_CHECK(size > 0, "DistributedSampler needs a non-empty data set");
  TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "invalid rank ", rank, " of ", world_size);
}

torch::Tensor DistributedSampler::permutation(int64_t epoch) const {
  auto gen = at::detail::createCPUGenerator(seed_ * 1000003ULL + static_cast<uint64_t>(epoch));
  return torch::randperm(size_, gen, torch::kLong);
}

int64_t DistributedSampler::indexAt(int64_t position) const {
  const int64_t epoch = position / size_;
  if (epoch != cached_epoch_) {
    cached_perm_ = permutation(epoch);
    cached_epoch_ = epoch;
  }
  return cached_perm_.data_ptr<int64_t>()[position % size_];
}

std::vector<int64_t> DistributedSampler::localBatch(int64_t global_start, int64_t local_batch) const {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(local_batch));
  const int64_t first = global_start + rank_ * local_batch;
  for (int64_t i = 0; i < local_batch; ++i) out.push_back(indexAt(first + i));
  return out;
}

std::vector<int64_t> DistributedSampler::shard(int64_t epoch, int64_t local_batch) const {
  TORCH_CHECK(local_batch > 0, "local_batch must be positive");
  const auto perm = permutation(epoch);
  const int64_t global = local_batch * world_;
  std::vector<int64_t> out;
  for (int64_t pos = epoch * size_; pos < (epoch + 1) * size_; ++pos) {
    if ((pos % global) / local_batch == rank_) out.push_back(perm[pos - epoch * size_].item<int64_t>());
  }
  return out;
}

}  // namespace automod
