// Figures for the scale-out design note (docs/distributed.md): c10d/Gloo all-reduce throughput on
// this machine's loopback, bucketed vs one call per tensor for a real model's gradients, model and
// checkpoint sizes of the paper presets, and the time to write such a checkpoint (fsync).
//
//   bench_distributed [--ranks N] [--table paper] [--resolution 256] [--dir /tmp]
//
// Starts N rank processes of itself on 127.0.0.1 (one torch thread each); rank 0 prints JSON lines.
#include <torch/torch.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "training/distributed.h"

extern char** environ;

using namespace automod;
using Clock = std::chrono::steady_clock;

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}


double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double timeMedian(Distributed& dist, F&& fn, int reps) {
  fn();
  dist.barrier();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    dist.barrier();
    const auto s = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(Clock::now() - s).count());
  }
  return median(t);
}

int64_t numel(const std::vector<torch::Tensor>& ts) {
  int64_t n = 0;
  for (const auto& t : ts) n += t.numel();
  return n;
}

int rankMain(const std::string& table, int resolution) {
  torch::set_num_threads(1);
  DistributedOptions opts;
  opts.timeout = std::chrono::seconds(120);
  Distributed dist(DistributedEnv::fromEnvironment(), opts);
  const int n = dist.worldSize();
  const double bus = 2.0 * (n - 1) / n;

  for (double mb : {1.0, 4.0, 25.0, 100.0}) {
    std::vector<torch::Tensor> t{torch::ones({static_cast<int64_t>(mb * (1 << 20) / 4)})};
    const double s = timeMedian(dist, [&] { dist.allReduceSum(t); }, 5);
    if (dist.isMain())
      std::cout << nlohmann::json{{"bench", "allreduce"}, {"ranks", n},        {"backend", dist.backendName()},
                                  {"mib", mb},          {"seconds", s},      {"algbw_gbps", mb / 1024 / s},
                                  {"busbw_gbps", mb / 1024 / s * bus}}
                       .dump()
                << std::endl;
  }

  Automodulator model(ModelConfig::fromTable(table, resolution));
  std::vector<torch::Tensor> params;
  for (auto& p : model.encoder->parameters()) params.push_back(p);
  for (auto& p : model.decoder->parameters()) params.push_back(p);
  for (auto& p : params) p.mutable_grad() = torch::randn_like(p);
  const double mib = numel(params) * 4.0 / (1 << 20);
  for (int64_t bucket : {int64_t(1), int64_t(25) << 20}) {
    dist.resetStats();
    const double s = timeMedian(dist, [&] {
      if (bucket == 1) {  // the naive way: one all-reduce per parameter tensor
        for (auto& p : params) dist.allReduceMeanGradients({p});
      } else {
        dist.allReduceMeanGradients(params);
      }
    }, 3);
    if (dist.isMain())
      std::cout << nlohmann::json{{"bench", "gradient_allreduce"},
                                  {"ranks", n},
                                  {"model", table + "@" + std::to_string(resolution)},
                                  {"tensors", params.size()},
                                  {"gradient_mib", mib},
                                  {"bucketing", bucket == 1 ? "one call per tensor" : "25 MiB buckets"},
                                  {"calls_per_step", dist.stats().collectives / 4},
                                  {"seconds", s}}
                       .dump()
                << std::endl;
  }
  dist.barrier();
  return 0;
}

void modelFigures(const std::string& table, int resolution, const std::filesystem::path& dir) {
  Automodulator model(ModelConfig::fromTable(table, resolution));
  auto count = [](const torch::nn::Module& m) {
    int64_t p = 0, b = 0;
    for (const auto& t : m.parameters()) p += t.numel();
    for (const auto& t : m.buffers()) b += t.numel();
    return std::make_pair(p, b);
  };
  auto [ep, eb] = count(*model.encoder);
  auto [dp, db] = count(*model.decoder);
  // Robust loss: α and c per image element at the final resolution.
  const int64_t robust = 2LL * 3 * resolution * resolution;
  // Checkpoint: encoder + decoder + EMA weights and buffers, Adam's two moments for every learned
  // parameter, robust-loss parameters (and their Adam moments).
  const int64_t floats = (ep + eb) + 2 * (dp + db) + 2 * (ep + dp + robust) + 3 * robust;
  const double ckpt_mib = floats * 4.0 / (1 << 20);
  // Write time of a file that size, fsync'd (what the trainer's atomic checkpoint does).
  auto path = dir / "bench_distributed_ckpt.bin";
  std::vector<char> buf(static_cast<size_t>(floats) * 4, 1);
  const auto s = Clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  size_t off = 0;
  while (fd >= 0 && off < buf.size()) {
    ssize_t w = ::write(fd, buf.data() + off, buf.size() - off);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - s).count();
  std::filesystem::remove(path);
  std::cout << nlohmann::json{{"bench", "model"},
                              {"model", table + "@" + std::to_string(resolution)},
                              {"encoder_params", ep},
                              {"decoder_params", dp},
                              {"buffers", eb + db},
                              {"gradient_mib_per_step", (ep + dp) * 4.0 / (1 << 20)},
                              {"checkpoint_mib", ckpt_mib},
                              {"checkpoint_write_seconds", secs},
                              {"write_mib_per_second", ckpt_mib / secs}}
                   .dump()
            << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string table = arg(argc, argv, "--table", "paper");
    const int resolution = std::stoi(arg(argc, argv, "--resolution", "256"));
    if (std::getenv("AUTOMOD_BENCH_RANK_CHILD")) return rankMain(table, resolution);

    const int ranks = std::stoi(arg(argc, argv, "--ranks", "2"));
    modelFigures(table, resolution, arg(argc, argv, "--dir", std::filesystem::temp_directory_path().string()));
    if (ranks < 2) return 0;
    const std::string port = std::to_string(freeLoopbackPort());
    std::vector<pid_t> pids;
    for (int r = 0; r < ranks; ++r) {
      std::vector<std::string> env_s;
      for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
      for (const std::string& kv : std::vector<std::string>{"AUTOMOD_BENCH_RANK_CHILD=1", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port,
                      "RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
                      "WORLD_SIZE=" + std::to_string(ranks), "OMP_NUM_THREADS=1"})
        env_s.push_back(kv);
      std::vector<char*> envp;
      for (auto& s : env_s) envp.push_back(s.data());
      envp.push_back(nullptr);
      pid_t pid = 0;
      if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) != 0)
        throw Error("cannot start rank " + std::to_string(r));
      pids.push_back(pid);
    }
    int failed = 0;
    for (pid_t pid : pids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
    }
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_distributed: " << errorMessage(e) << std::endl;
    return 1;
  }
}
