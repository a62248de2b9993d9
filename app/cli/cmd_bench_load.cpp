// automod bench load MODEL — how long a model file takes to open, and what it costs in memory (JSON lines).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/cli/common.h"
#include "core/io/model_file.h"
#include "core/util/bench.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

struct LoadBenchOptions {
  std::string model;
  int runs = 3;
  bool sample = true;
  bool owned = false;
  bool in_process = false;
};

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One fresh process's figures: `automod info`'s work (the header) and loadModel, timed in process.
void measureInProcess(const LoadBenchOptions& o, const GlobalOptions& global) {
  prepare(global);
  auto options = loadOptions(global, torch::kCPU);
  options.storage = o.owned ? TensorStorage::Owned : TensorStorage::Mapped;
  const double rss_before = currentRssMiB();
  auto t0 = std::chrono::steady_clock::now();
  double cpu0 = processCpuSeconds();
  const auto info = describeModelFile(o.model, options);
  const double info_ms = msSince(t0), info_cpu_ms = 1e3 * (processCpuSeconds() - cpu0);
  t0 = std::chrono::steady_clock::now();
  cpu0 = processCpuSeconds();
  const auto model = loadModel(o.model, options);
  const double load_ms = msSince(t0), load_cpu_ms = 1e3 * (processCpuSeconds() - cpu0);
  std::cout << nlohmann::json{{"info_ms", info_ms},
                              {"info_cpu_ms", info_cpu_ms},
                              {"load_ms", load_ms},
                              {"load_cpu_ms", load_cpu_ms},
                              {"rss_before_mib", rss_before},
                              {"rss_after_load_mib", currentRssMiB()},
                              {"peak_rss_mib", peakRssMiB()}}
                   .dump()
            << std::endl;
}

std::vector<double> loadAverage() {
  std::ifstream in("/proc/loadavg");
  std::vector<double> l(3, -1.0);
  in >> l[0] >> l[1] >> l[2];
  return l;
}

double round1(double x) { return std::round(x * 10) / 10; }

void runLoadBench(const LoadBenchOptions& o, const GlobalOptions& global) {
  if (o.in_process) return measureInProcess(o, global);
  prepare(global);
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this program's own file (/proc/self/exe) to run it again");
  // What a user types: `automod`, the front door beside this program (app/automod_launcher.cpp), which
  // answers `info MODEL` itself and runs this program for the rest.
  const std::string exe = fs::exists(self.parent_path() / "automod") ? (self.parent_path() / "automod").string()
                                                                     : self.string();
  const auto header = readArchiveHeader(o.model);
  const double file_mib = double(header.file_bytes) / (1 << 20);
  std::vector<std::string> prefix;
  if (global.threads > 0) prefix = {"--threads", std::to_string(global.threads)};
  if (global.allow_nonfinite) prefix.push_back("--allow-nonfinite");
  auto args = [&](std::vector<std::string> a) {
    a.insert(a.begin(), prefix.begin(), prefix.end());
    return a;
  };
  auto checked = [](const ProcessRun& r, const std::string& what) {
    if (r.exit_code != 0) throw Error(what + " failed (exit code " + std::to_string(r.exit_code) + ")");
    return r;
  };
  std::cout << nlohmann::json{{"bench", "load"},
                              {"file", o.model},
                              {"file_mib", round1(file_mib)},
                              {"format_version", header.format_version},
                              {"storage", o.owned ? "owned" : "mapped"},
                              {"load_average", loadAverage()},
                              {"how", "each figure from a fresh process: startup_ms, info_ms and sample_ms are the "
                                      "wall time of `automod --version`, `automod info MODEL` (answered from the header by the "
                                      "front door, without LibTorch) and `automod sample "
                                      "MODEL -n 1`; info_in_process_ms, load_ms and rss_after_load_mib are measured "
                                      "inside a process that only reads the header, then loads the model; *_cpu_ms "
                                      "are the CPU time of the same (all threads)"}}
                   .dump()
            << std::endl;
  const fs::path png = fs::temp_directory_path() / ("automod-bench-load-" + std::to_string(::getpid()) + ".png");
  for (int run = 1; run <= o.runs; ++run) {
    nlohmann::json line{{"bench", "load"}, {"run", run}};
    const auto startup = checked(runProcess(exe, args({"--version"})), "automod --version");
    line["startup_ms"] = round1(1e3 * startup.seconds);
    line["startup_cpu_ms"] = round1(1e3 * startup.cpu_seconds);
    const auto info = checked(runProcess(exe, {"info", o.model}), "automod info");
    line["info_ms"] = round1(1e3 * info.seconds);
    line["info_cpu_ms"] = round1(1e3 * info.cpu_seconds);
    std::vector<std::string> child{"bench", "load", o.model, "--in-process"};
    if (o.owned) child.push_back("--owned");
    const auto load = checked(runProcess(exe, args(child)), "the loading process");
    const auto inner = nlohmann::json::parse(load.out);
    line["info_in_process_ms"] = round1(inner.at("info_ms").get<double>());
    line["info_in_process_cpu_ms"] = round1(inner.at("info_cpu_ms").get<double>());
    line["load_ms"] = round1(inner.at("load_ms").get<double>());
    line["load_cpu_ms"] = round1(inner.at("load_cpu_ms").get<double>());
    line["rss_before_load_mib"] = round1(inner.at("rss_before_mib").get<double>());
    line["rss_after_load_mib"] = round1(inner.at("rss_after_load_mib").get<double>());
    line["rss_added_by_load_per_file_size"] =
        round1(100 * (inner.at("rss_after_load_mib").get<double>() - inner.at("rss_before_mib").get<double>()) /
               file_mib) / 100;
    line["load_peak_rss_mib"] = round1(inner.at("peak_rss_mib").get<double>());
    if (o.sample) {
      const auto s = checked(runProcess(exe, args({"-q", "sample", o.model, "-n", "1", "-o", png.string()})),
                             "automod sample");
      line["sample_ms"] = round1(1e3 * s.seconds);
      line["sample_cpu_ms"] = round1(1e3 * s.cpu_seconds);
      line["sample_peak_rss_mib"] = round1(s.peak_rss_mib);
    }
    std::cout << line.dump() << std::endl;
  }
  fs::remove(png, ec);
}

void addLoadBench(CLI::App& bench, GlobalOptions& global) {
  auto o = std::make_shared<LoadBenchOptions>();
  auto* cmd = bench.add_subcommand("load", "ms to open a model file (info, load, sample -n 1) and the memory it takes, "
                                           "each from a fresh process");
  cmd->add_option("MODEL", o->model, "model file (.amod)")->required();
  cmd->add_option("--runs", o->runs, "repetitions")->capture_default_str()->check(CLI::Range(1, 100));
  cmd->add_flag("--owned", o->owned, "read the weights into memory of the model's own instead of mapping the file");
  cmd->add_flag("!--no-sample", o->sample, "leave out `automod sample -n 1`");
  cmd->add_flag("--in-process", o->in_process, "(internal) measure info and load in this process, print one line")
      ->group("");
  cmd->callback([o, &global] { runLoadBench(*o, global); });
}

RegisterBench reg(15, &addLoadBench);

}  // namespace
}  // namespace automod::cli
