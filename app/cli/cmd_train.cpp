// automod train — progressive training from a preset, with a progress bar, SIGINT/SIGTERM handling
// (checkpoint and clean exit) and a summary at the end.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "app/cli/common.h"
#include "core/io/archive.h"
#include "core/util/device.h"
#include "core/util/error.h"
#include "training/data.h"
#include "training/distributed.h"
#include "training/run_folder.h"
#include "training/trainer.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

std::atomic<int> g_signal{0};
extern "C" void onSignal(int sig) { g_signal = sig; }

struct TrainOpts {
  std::string data, out, preset, schedule;
  bool fashion_mnist = false, resume = false, overwrite = false, list = false, no_previews = false, distributed = false;
  bool flip_invariance = false;
  std::string dist_store;
  int64_t faces = 0, max_images = 0;
  uint64_t seed = 0;
  double held_out = 0.05;
};

std::string progressLine(const TrainingProgress& p) {
  const double frac = p.target_images > 0 ? std::min(1.0, double(p.images_seen) / double(p.target_images)) : 0.0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s %5.1f%% %lld/%lld img | phase %d %dpx a=%.2f | %.1f img/s | ETA %s | enc %.3f dec %.3f",
                progressBarText(frac).c_str(), 100.0 * frac, (long long)p.images_seen, (long long)p.target_images,
                p.phase, p.resolution, p.alpha, p.images_per_second, formatDuration(p.eta_seconds).c_str(),
                p.losses.encoder_total, p.losses.decoder_total);
  return buf;
}

void listPresetsTo(std::ostream& out) {
  for (auto& name : listPresets()) {
    try {
      auto p = loadPreset(name);
      out << name << "\t" << p.resolution << " px, " << p.total_images << " images — " << p.description << "\n";
    } catch (const std::exception& e) {
      out << name << "\t(invalid: " << errorMessage(e) << ")\n";
    }
  }
}

DataSpec dataSpec(const TrainOpts& o, const TrainingPreset& preset, bool verbose) {
  const int sources = (!o.data.empty()) + o.fashion_mnist + (o.faces > 0);
  if (sources != 1) throw Error("give exactly one data source: --data DIR, --fashion-mnist or --faces N");
  DataSpec s;
  if (!o.data.empty()) {
    s.kind = DataSpec::Folder;
    s.path = o.data;
  } else if (o.fashion_mnist) {
    s.kind = DataSpec::FashionMnist;
    s.channels = 1;
  } else {
    s.kind = DataSpec::Faces;
    s.count = o.faces;
  }
  s.held_out_fraction = o.held_out;
  s.seed = o.seed;
  s.max_resolution = preset.resolution;
  s.min_images = preset.batchFor(preset.phases.front().resolution);
  s.verbose = verbose;
  return s;
}

void runTrain(const TrainOpts& o, const GlobalOptions& global_options) {
  GlobalOptions global = global_options;  // ranks other than 0 become quiet
  if (o.list) {
    listPresetsTo(std::cout);
    return;
  }
  if (o.out.empty()) throw Error("--out RUN (the run folder) is required");
  auto device = prepare(global);
  TrainerConfig config;
  config.run_dir = o.out;
  config.seed = o.seed;
  config.max_images = o.max_images;
  config.resume = o.resume;
  config.overwrite = o.overwrite;
  config.device = device;
  config.write_previews = !o.no_previews;
  if (o.resume) {
    const fs::path latest = config.run_dir / "latest.amod";
    if (!fs::exists(latest)) throw Error("nothing to resume: " + latest.string() + " does not exist");
    auto header = readArchive(latest).header;
    if (!header.contains("training")) throw Error(latest.string() + " is not a training checkpoint");
    config.preset = TrainingPreset::fromJson(header["training"]["preset"]);
    config.seed = header["training"].value("seed", config.seed);
    if (!o.schedule.empty()) config.continue_with = loadPreset(o.schedule);
    if (o.flip_invariance && !config.preset.flip_invariance)
      throw Error("--flip-invariance changes the model (an extra 8×8 block): start a new run with it; " +
                  latest.string() + " was trained without it");
  } else {
    if (o.preset.empty()) throw Error("--preset NAME is required (automod train --list-presets shows them)");
    if (const auto held = inspectRunFolder(config.run_dir); held.holds_run && !o.overwrite)
      throw Error(config.run_dir.string() + " already holds a run" +
                  (held.images_seen >= 0 ? " (" + std::to_string(held.images_seen) + " images of " +
                                               (held.preset.empty() ? std::string("its preset") : held.preset) + ")"
                                         : std::string()) +
                  ": continue it with --resume, replace it with --overwrite, or choose another --out");
    config.preset = loadPreset(o.preset);
    if (o.flip_invariance) {
      config.preset.flip_invariance = true;
      config.preset.validate();
    }
  }
  // Data-parallel training (docs/distributed.md): join the other ranks; only rank 0 prints and writes.
  std::unique_ptr<Distributed> dist;
  if (o.distributed || DistributedEnv::requested()) {
    DistributedOptions dopts;
    dopts.device_type = device.type();
    if (!o.dist_store.empty()) {
      dopts.rendezvous = DistributedOptions::Rendezvous::File;
      dopts.store_file = o.dist_store;
    }
    dist = std::make_unique<Distributed>(DistributedEnv::fromEnvironment(o.dist_store.empty()), dopts);
    config.distributed = dist.get();
    config.device = dist->device();
    if (!dist->isMain()) global.quiet = true;
    if (!global.quiet)
      std::cerr << "automod: distributed: " << dist->worldSize() << " ranks (" << dist->backendName()
                << "), batch per rank " << config.preset.batchFor(config.preset.phases.front().resolution) << "\n";
  }
  // Rank 0 prepares the data (caches, generated faces) before the others read it.
  if (dist && !dist->isMain()) dist->barrier(std::chrono::hours(4));
  std::shared_ptr<ImageDataset> data = openDataset(dataSpec(o, config.preset, !global.quiet));
  if (dist && dist->isMain()) dist->barrier(std::chrono::hours(4));
  if (!global.quiet) std::cerr << "automod: data: " << data->describe() << "\n";

  Trainer trainer(config, data);
  const bool tty = ::isatty(STDERR_FILENO);
  auto last_print = std::chrono::steady_clock::now() - std::chrono::hours(1);
  bool bar_shown = false;
  trainer.onMessage([&](const std::string& m) {
    if (global.quiet) return;
    std::cerr << (bar_shown && tty ? "\r\033[K" : "") << "automod: " << m << "\n";
    bar_shown = false;
  });
  trainer.onProgress([&](const TrainingProgress& p) {
    if (global.quiet) return;
    const auto now = std::chrono::steady_clock::now();
    const auto gap = tty ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
    if (now - last_print < gap && p.images_seen < p.target_images) return;
    last_print = now;
    std::cerr << (tty ? "\r\033[K" : "") << progressLine(p) << (tty ? "" : "\n") << std::flush;
    bar_shown = true;
  });
  if (!global.quiet)
    std::cerr << "automod: training preset '" << trainer.config().preset.name << "' on " << describeDevice(device)
              << " into " << config.run_dir.string()
              << (o.resume ? " (resumed at " + std::to_string(trainer.imagesSeen()) + " images" +
                                 (o.schedule.empty() ? std::string() : ", from here on under " + o.schedule) + ")"
                           : std::string())
              << "\n";

  g_signal = 0;
  auto old_int = std::signal(SIGINT, onSignal);
  auto old_term = std::signal(SIGTERM, onSignal);
  std::atomic<bool> done{false};
  TrainingResult result;
  std::thread worker([&] {
    result = trainer.run();
    done = true;
  });
  bool announced = false;
  while (!done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_signal && !announced) {
      announced = true;
      if (!global.quiet) std::cerr << (tty ? "\r\033[K" : "") << "automod: stopping: writing a checkpoint...\n";
      trainer.stop();
    }
  }
  worker.join();
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  if (bar_shown && tty && !global.quiet) std::cerr << "\n";

  const char* status = result.status == TrainingResult::Finished  ? "finished"
                       : result.status == TrainingResult::Stopped ? "stopped"
                                                                  : "failed";
  nlohmann::json summary{{"status", status},
                         {"images_seen", result.images_seen},
                         {"seconds", result.seconds},
                         {"rollbacks", result.rollbacks},
                         {"latest", result.latest.string()},
                         {"run", config.run_dir.string()}};
  if (result.status == TrainingResult::Failed) throw Error(result.error);
  std::cout << summary.dump() << std::endl;
  if (!global.quiet && result.status == TrainingResult::Stopped)
    std::cerr << "automod: stopped at " << result.images_seen << " images; continue with: automod train --resume --out "
              << config.run_dir.string() << " <same data option>\n";
}

void addTrainCommand(CLI::App& app, GlobalOptions& global) {
  auto o = std::make_shared<TrainOpts>();
  auto* cmd = app.add_subcommand("train", "Train an automodulator progressively from a preset (resumable)");
  auto* data = cmd->add_option("--data", o->data, "image folder (recursive; jpg/png/webp/bmp)");
  auto* fm = cmd->add_flag("--fashion-mnist", o->fashion_mnist, "Fashion-MNIST (Debian's dataset-fashion-mnist)");
  auto* faces = cmd->add_option("--faces", o->faces, "N synthetic faces (automod make-faces)")->check(CLI::Range(int64_t(1), int64_t(100000000)));
  data->excludes(fm)->excludes(faces);
  fm->excludes(faces);
  auto* preset = cmd->add_option("--preset", o->preset, "preset name or JSON file; alone, lists the presets")->expected(0, 1);
  cmd->add_flag("--list-presets", o->list, "list the presets and exit");
  cmd->add_option("--out", o->out, "run folder (config, log, previews, checkpoints)");
  cmd->add_flag("--resume", o->resume, "continue the run in --out from latest.amod");
  cmd->add_flag("--overwrite", o->overwrite,
                "start afresh in an --out folder that holds another run, removing that run's checkpoints, log and "
                "previews (without it, such a folder is refused)")
      ->excludes("--resume");
  cmd->add_option("--schedule", o->schedule,
                  "with --resume: go on under this preset (name or JSON file) instead of the run's own, e.g. with a "
                  "learning-rate decay or a longer length; the model and the resolution reached must be the run's")
      ->needs("--resume");
  cmd->add_option("--max-images", o->max_images, "stop after this many images in total (0 = the preset's length)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 50));
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--held-out", o->held_out, "fraction of images held out for previews and eval")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_flag("--no-previews", o->no_previews, "do not write preview PNGs");
  cmd->add_flag("--flip-invariance", o->flip_invariance,
                "flip-invariance training (paper Sec. 3.3): image + mirror pairs, an extra 8x8 decoder block, "
                "swapped-code reconstruction (the preset's \"flip_invariance\": true does the same)");
  cmd->add_flag("--distributed", o->distributed,
                "data-parallel training over the ranks started by torchrun/srun (automatic when WORLD_SIZE > 1; "
                "the preset's batch is per rank; see docs/distributed.md)");
  cmd->add_option("--dist-store", o->dist_store,
                  "rendezvous through a c10d FileStore at this path on a shared file system instead of "
                  "MASTER_ADDR:MASTER_PORT (a fresh path per job)");
  cmd->callback([o, preset, &global] {
    TrainOpts opts = *o;
    const bool nothing_else = opts.data.empty() && !opts.fashion_mnist && opts.faces == 0 && opts.out.empty();
    if (preset->count() > 0 && opts.preset.empty() && nothing_else) opts.list = true;
    runTrain(opts, global);
  });
}

RegisterCommand reg(60, &addTrainCommand);

}  // namespace
}  // namespace automod::cli
