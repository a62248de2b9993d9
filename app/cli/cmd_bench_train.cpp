// automod bench train — images/s of one full training iteration (encoder step + decoder step with
// style mixing and L_j + EMA), as JSON lines, with achieved vs dense-matmul GFLOP/s and peak RSS.
#include <iostream>

#include "app/cli/bench_train_ranks.h"
#include "app/cli/common.h"
#include "core/util/bench.h"
#include "core/util/device.h"
#include "training/trainer.h"

namespace automod::cli {
namespace {

struct TrainBenchOptions {
  std::vector<int> resolutions{32, 64};
  std::vector<std::string> tables{"paper", "cpu-64"};
  int batch = 16;
  int reps = 1;
  int warmup = 1;
  bool no_matmul = false;
  int ranks = 1;
};

void runTrainBench(const TrainBenchOptions& o, const GlobalOptions& global) {
  if (o.ranks > 1)
    return runRankedTrainBench({o.ranks, o.resolutions, o.tables, o.batch, o.reps, o.warmup}, global);
  auto device = prepare(global);
  const double mm = o.no_matmul ? 0.0 : measureMatmulGflops(device);
  std::cout << nlohmann::json{{"bench", "matmul"}, {"device", describeDevice(device)}, {"threads", torch::get_num_threads()},
                              {"gflops", mm}}
                   .dump()
            << std::endl;
  for (const auto& table : o.tables) {
    for (int res : o.resolutions) {
      torch::manual_seed(0);
      Automodulator model(ModelConfig::fromTable(table, res), device);
      TrainingModules modules(model, 1e-3);
      const int stage = model.stage();
      auto x = torch::rand({o.batch, 3, res, res}, torch::TensorOptions().device(device)) * 2 - 1;
      StepContext ctx{stage, 1.0, 0.02};
      LossWeights w;
      const double s = timeIt([&] { trainIteration(modules, x, ctx, w, nullptr, 0.999); }, o.reps, o.warmup, device);
      // Estimated work: forward MACs × (encoder step: decode fakes 1, encode real+fake 2×3, decode
      // recon with input grads 2; decoder step: decode 3, encode with input grads 2).
      const double d = double(model.decoder->macsPerImage(stage)), e = double(model.encoder->macsPerImage(stage));
      const double gflop = 2.0 * o.batch * (6.0 * d + 8.0 * e) / 1e9;
      std::cout << nlohmann::json{{"bench", "train"},
                                  {"widths", table},
                                  {"resolution", res},
                                  {"batch", o.batch},
                                  {"alpha", 1.0},
                                  {"seconds_per_iteration", s},
                                  {"images_per_second", o.batch / s},
                                  {"gflop_per_iteration", gflop},
                                  {"gflops", gflop / s},
                                  {"fraction_of_matmul", mm > 0 ? gflop / s / mm : 0.0},
                                  {"peak_rss_mib", peakRssMiB()}}
                       .dump()
                << std::endl;
    }
  }
}

void addTrainBench(CLI::App& bench, GlobalOptions& global) {
  auto o = std::make_shared<TrainBenchOptions>();
  auto* cmd = bench.add_subcommand("train", "images/s of one full training iteration (both steps, mixing, L_j, EMA)");
  cmd->add_option("--resolutions", o->resolutions, "resolutions to measure")->capture_default_str();
  cmd->add_option("--widths", o->tables, "width tables to measure")->capture_default_str();
  cmd->add_option("--batch", o->batch, "batch size")->capture_default_str()->check(CLI::Range(2, 4096));
  cmd->add_option("--reps", o->reps, "timed iterations (median is reported)")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--warmup", o->warmup, "untimed iterations first")->capture_default_str()->check(CLI::Range(0, 1000));
  cmd->add_flag("--no-matmul", o->no_matmul, "skip the dense-matmul reference measurement");
  cmd->add_option("--ranks", o->ranks,
                  "data-parallel CPU ranks on 127.0.0.1 (Gloo): prints the scaling efficiency against one rank; "
                  "--batch is per rank, --threads per rank (default 1)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->callback([o, &global] { runTrainBench(*o, global); });
}

RegisterBench reg(30, &addTrainBench);

}  // namespace
}  // namespace automod::cli
