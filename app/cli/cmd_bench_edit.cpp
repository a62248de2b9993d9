// automod bench edit — editing latency: full decode, incremental fine-range change, first preview,
// encode. Prints JSON lines.
#include <algorithm>
#include <chrono>
#include <iostream>

#include "app/cli/common.h"
#include "core/edit/plan.h"
#include "core/edit/session.h"
#include "core/util/bench.h"
#include "core/util/device.h"

namespace automod::cli {
namespace {

struct EditBenchOptions {
  std::vector<int> resolutions{64, 128, 256};
  std::vector<std::string> tables{"cpu-128", "paper"};
  int reps = 5;
  int preview_block = 2;
};

void runEditBench(const EditBenchOptions& o, const GlobalOptions& global) {
  auto device = prepare(global);
  torch::NoGradGuard no_grad;
  std::cout << nlohmann::json{{"bench", "edit"}, {"device", describeDevice(device)}}.dump() << std::endl;
  // The machine's dense-matmul figure, measured in this run (the stages' latencies read against it).
  const double matmul = measureMatmulGflops(device);
  for (auto& table : o.tables) {
    for (int res : o.resolutions) {
      torch::manual_seed(0);
      Automodulator model(ModelConfig::fromTable(table, res), device);
      const int nb = model.numBlocks();
      const int preview_block = std::clamp(o.preview_block, 0, nb - 1);
      // Heavy configurations get fewer repetitions so that the whole bench stays in minutes.
      const int reps = model.ema->macsPerImage(model.stage()) > 2e10 ? 1 : o.reps;
      EditSession session(model);
      auto a = model.randomLatents(1, 1), b = model.randomLatents(1, 2), c = model.randomLatents(1, 3);
      auto base = LatentPlan::uniform(a, nb);
      const double full = timeIt([&] { session.decodeFull(base); }, reps, 1, device);
      // A fine-range edit (e.g. a slider on the fine blocks): alternate between two fine sources.
      session.decode(base);
      const BlockRange fine = fineRange(BlockLayout::of(model));
      auto fine_b = buildPlan(nb, a, {{fine, {b}, {}}}), fine_c = buildPlan(nb, a, {{fine, {c}, {}}});
      bool flip = false;
      const double incremental = timeIt([&] { session.decode((flip = !flip) ? fine_b : fine_c); }, reps, 1, device);
      // The first preview after a change at block 0 (a new photo everywhere).
      auto p1 = LatentPlan::uniform(b, nb), p2 = LatentPlan::uniform(c, nb);
      const double preview = timeIt([&] { session.setPlan((flip = !flip) ? p1 : p2); session.preview(preview_block); },
                                    reps, 1, device);
      // Progressive refinement as the editor does it after a change at block 0: when each stage's
      // image (16 px, then 32 px and up, upsampled to full size) is ready, against its share of a full
      // decode's arithmetic (the decoder's multiply-accumulates up to that block).
      const auto layout = BlockLayout::of(model);
      std::vector<std::vector<double>> stage_samples(static_cast<size_t>(nb));
      for (int r = 0; r < reps + 1; ++r) {  // the first is a warm-up
        session.setPlan((flip = !flip) ? p1 : p2);
        const auto t0 = std::chrono::steady_clock::now();
        auto since = [&] {
          if (device.is_cuda()) torch::cuda::synchronize();
          return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        };
        session.decode([&](int blk) {
          const int block_res = layout.resolutions[static_cast<size_t>(blk)];
          if (blk < nb - 1 && (block_res == 16 || block_res >= 32)) {
            auto shown = session.blockImage(blk).cpu();
            if (r > 0) stage_samples[static_cast<size_t>(blk)].push_back(since());
          }
          return true;
        });
        if (r > 0) stage_samples[static_cast<size_t>(nb - 1)].push_back(since());
      }
      const double total_macs = double(model.ema->macsPerImage(model.stage()));
      nlohmann::json stages = nlohmann::json::array();
      for (int blk = 0; blk < nb; ++blk) {
        auto& v = stage_samples[static_cast<size_t>(blk)];
        if (v.empty()) continue;
        std::sort(v.begin(), v.end());
        const double ms = 1e3 * v[v.size() / 2];
        const double share = double(model.ema->macsPerImage(blk)) / total_macs;
        const double time_share = ms / (1e3 * stage_samples.back()[stage_samples.back().size() / 2]);
        stages.push_back({{"resolution", layout.resolutions[static_cast<size_t>(blk)]},
                          {"ms", ms},
                          {"share_of_time", time_share},
                          {"share_of_arithmetic", share},
                          {"time_over_arithmetic", share > 0 ? time_share / share : 0.0}});
      }
      auto x = torch::rand({1, model.config().image_channels, res, res}, torch::TensorOptions().device(device)) * 2 - 1;
      const double encode = timeIt([&] { model.encode(x); }, reps, 1, device);
      std::cout << nlohmann::json{{"bench", "edit"},
                                  {"widths", table},
                                  {"resolution", res},
                                  {"full_decode_ms", 1e3 * full},
                                  {"fine_change_ms", 1e3 * incremental},
                                  {"fine_blocks", fine.toString()},
                                  {"fine_speedup", full / incremental},
                                  {"first_preview_ms", 1e3 * preview},
                                  {"preview_resolution", ModelConfig::blockResolution(preview_block)},
                                  {"encode_ms", 1e3 * encode},
                                  {"stages", stages},
                                  {"matmul_gflops", matmul},
                                  {"peak_rss_mib", peakRssMiB()}}
                       .dump()
                << std::endl;
    }
  }
}

void addEditBench(CLI::App& bench_app, GlobalOptions& global) {
  auto o = std::make_shared<EditBenchOptions>();
  auto* cmd = bench_app.add_subcommand("edit", "ms for a full decode, an incremental fine-range change, the first "
                                               "preview and an encode");
  cmd->add_option("--resolutions", o->resolutions, "resolutions to measure")->capture_default_str();
  cmd->add_option("--widths", o->tables, "width tables to measure")->capture_default_str();
  cmd->add_option("--reps", o->reps, "timed repetitions (median is reported)")->capture_default_str();
  cmd->add_option("--preview-block", o->preview_block, "block whose image is the first preview (2 = 16 px)")
      ->capture_default_str();
  cmd->callback([o, &global] { runEditBench(*o, global); });
}

RegisterBench reg(30, &addEditBench);

}  // namespace
}  // namespace automod::cli
