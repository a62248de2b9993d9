// automod bench train --ranks N (see bench_train_ranks.h).
#include "app/cli/bench_train_ranks.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/cli/common.h"
#include "core/util/bench.h"
#include "core/util/device.h"
#include "core/util/error.h"
#include "training/distributed.h"
#include "training/trainer.h"

extern char** environ;

namespace automod::cli {
namespace {

constexpr const char* kWorkerVar = "AUTOMOD_BENCH_TRAIN_RANK";


std::vector<std::string> commandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string a;
  while (std::getline(in, a, '\0')) args.push_back(a);
  return args;
}

/// One rank: times trainIteration (with all-reduce and global KL) and prints JSON lines from rank 0.
void rankWorker(const RankedTrainBenchOptions& o, const GlobalOptions& global) {
  GlobalOptions g = global;
  if (g.threads == 0) g.threads = 1;
  auto device = prepare(g);
  DistributedOptions dopts;
  dopts.device_type = device.type();
  Distributed dist(DistributedEnv::fromEnvironment(), dopts);
  if (device.is_cuda()) device = dist.device();
  for (const auto& table : o.tables) {
    for (int res : o.resolutions) {
      torch::manual_seed(0);
      Automodulator model(ModelConfig::fromTable(table, res), device);
      TrainingModules modules(model, 1e-3);
      modules.dist = &dist;
      torch::manual_seed(100 + dist.rank());
      auto x = torch::rand({o.batch, 3, res, res}, torch::TensorOptions().device(device)) * 2 - 1;
      StepContext ctx{model.stage(), 1.0, 0.02};
      LossWeights w;
      for (int i = 0; i < o.warmup; ++i) trainIteration(modules, x, ctx, w, nullptr, 0.999);
      dist.barrier();
      dist.resetStats();
      std::vector<double> times;
      for (int i = 0; i < o.reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        trainIteration(modules, x, ctx, w, nullptr, 0.999);
        dist.barrier();
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(times.begin(), times.end());
      const double s = times[times.size() / 2];
      const auto st = dist.stats();
      if (dist.isMain())
        std::cout << nlohmann::json{{"bench", "train_ranks"},
                                    {"ranks", dist.worldSize()},
                                    {"backend", dist.backendName()},
                                    {"widths", table},
                                    {"resolution", res},
                                    {"batch_per_rank", o.batch},
                                    {"threads_per_rank", torch::get_num_threads()},
                                    {"seconds_per_iteration", s},
                                    {"images_per_second", dist.worldSize() * o.batch / s},
                                    {"allreduce_calls_per_iteration", double(st.collectives) / o.reps},
                                    {"allreduce_mib_per_iteration", double(st.bytes) / o.reps / (1 << 20)},
                                    {"allreduce_seconds_per_iteration", st.seconds / o.reps}}
                         .dump()
                  << std::endl;
    }
  }
}

/// Runs `world` copies of this command as ranks; returns rank 0's stdout lines.
std::vector<std::string> launch(int world) {
  const auto args = commandLine();
  TORCH_CHECK(!args.empty(), "cannot read this program's command line");
  const std::string port = std::to_string(freeLoopbackPort());
  char tmpl[] = "/tmp/automod-bench-ranks-XXXXXX";
  const int out_fd = ::mkstemp(tmpl);
  if (out_fd < 0) throw Error("cannot create a temporary file in /tmp");
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
    for (const std::string& kv : std::vector<std::string>{std::string(kWorkerVar) + "=1", "MASTER_ADDR=127.0.0.1",
                                                          "MASTER_PORT=" + port, "RANK=" + std::to_string(r),
                                                          "LOCAL_RANK=" + std::to_string(r),
                                                          "WORLD_SIZE=" + std::to_string(world), "OMP_NUM_THREADS=1"})
      env_s.push_back(kv);
    std::vector<char*> envp, argv;
    for (auto& s : env_s) envp.push_back(s.data());
    envp.push_back(nullptr);
    auto args_copy = args;
    for (auto& a : args_copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (r == 0) posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw Error("cannot start rank " + std::to_string(r));
    pids.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  ::close(out_fd);
  std::ifstream in(tmpl);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  std::remove(tmpl);
  if (failed) throw Error(std::to_string(failed) + " of " + std::to_string(world) + " ranks failed");
  return lines;
}

}  // namespace

void runRankedTrainBench(const RankedTrainBenchOptions& o, const GlobalOptions& global) {
  if (std::getenv(kWorkerVar)) return rankWorker(o, global);
  TORCH_CHECK(o.ranks >= 2, "--ranks needs at least 2");
  const auto one = launch(1);
  const auto many = launch(o.ranks);
  for (size_t i = 0; i < many.size(); ++i) {
    auto a = nlohmann::json::parse(one.at(i)), b = nlohmann::json::parse(many[i]);
    std::cout << a.dump() << "\n" << b.dump() << std::endl;
    const double eff = b["images_per_second"].get<double>() / (o.ranks * a["images_per_second"].get<double>());
    std::cout << nlohmann::json{{"bench", "train_scaling"},       {"ranks", o.ranks},
                                {"widths", b["widths"]},          {"resolution", b["resolution"]},
                                {"batch_per_rank", o.batch},      {"images_per_second_1", a["images_per_second"]},
                                {"images_per_second_n", b["images_per_second"]}, {"efficiency", eff}}
                     .dump()
              << std::endl;
  }
}

}  // namespace automod::cli
