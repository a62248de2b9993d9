// automod bench decode | encode — prints JSON lines (one per configuration).
#include <iostream>

#include "app/cli/common.h"
#include "core/util/bench.h"
#include "core/util/device.h"

namespace automod::cli {
namespace {

struct ModelBenchOptions {
  std::vector<int> resolutions{64, 128, 256};
  std::vector<std::string> tables{"paper", "cpu-128"};
  std::vector<int> batches{1, 16};
  int reps = 3;
};

void addModelBenchOptions(CLI::App* cmd, ModelBenchOptions& o) {
  cmd->add_option("--resolutions", o.resolutions, "resolutions to measure")->capture_default_str();
  cmd->add_option("--widths", o.tables, "width tables to measure")->capture_default_str();
  cmd->add_option("--batches", o.batches, "batch sizes")->capture_default_str();
  cmd->add_option("--reps", o.reps, "timed repetitions (median is reported)")->capture_default_str();
}

// One line per (table, resolution, batch): ms per image, FLOPs per image, achieved GFLOP/s.
void runModelBench(const std::string& what, const ModelBenchOptions& o, const GlobalOptions& global) {
  auto device = prepare(global);
  torch::NoGradGuard no_grad;
  const double mm = measureMatmulGflops(device);
  std::cout << nlohmann::json{{"bench", "matmul"}, {"device", describeDevice(device)}, {"gflops", mm}}.dump() << std::endl;
  for (auto& table : o.tables) {
    for (int res : o.resolutions) {
      torch::manual_seed(0);
      Automodulator model(ModelConfig::fromTable(table, res), device);
      const int stage = model.stage();
      const int64_t macs = what == "decode" ? model.ema->macsPerImage(stage) : model.encoder->macsPerImage(stage);
      for (int batch : o.batches) {
        auto z = model.randomLatents(batch, 1);
        auto x = torch::rand({batch, 3, res, res}, torch::TensorOptions().device(device)) * 2 - 1;
        // Large configurations get fewer repetitions so that the whole bench stays in minutes.
        const double work = double(macs) * batch;
        const int reps = work > 2e11 ? 1 : o.reps;
        double s = what == "decode" ? timeIt([&] { model.decode(z); }, reps, 1, device)
                                    : timeIt([&] { model.encode(x); }, reps, 1, device);
        const double gflop = 2.0 * double(macs) / 1e9;
        // The machine is shared: measure the matmul reference right next to each row.
        const double mm_row = std::max(mm, measureMatmulGflops(device, 1024));
        std::cout << nlohmann::json{{"bench", what},          {"widths", table},
                                    {"resolution", res},      {"batch", batch},
                                    {"ms_per_image", 1e3 * s / batch},
                                    {"gflop_per_image", gflop}, {"gflops", gflop * batch / s},
                                    {"matmul_gflops", mm_row}, {"fraction_of_matmul", gflop * batch / s / mm_row}}
                         .dump()
                  << std::endl;
      }
    }
  }
}

void addModelBenches(CLI::App& bench_app, GlobalOptions& global) {
  auto* bench = &bench_app;
  for (std::string what : {"decode", "encode"}) {
    auto o = std::make_shared<ModelBenchOptions>();
    auto* cmd = bench->add_subcommand(what, "ms per image of the " + what + "r at several sizes and batches");
    addModelBenchOptions(cmd, *o);
    cmd->callback([o, what, &global] { runModelBench(what, *o, global); });
  }
}

RegisterBench reg(10, &addModelBenches);

}  // namespace
}  // namespace automod::cli
