// automod bench import — how long `automod import` takes on a checkpoint in the authors' format at
// paper size, against the time to read the file, and its peak resident memory against the file's
// size (JSON lines). The checkpoint is written here with this program's own torch.save writer
// (referenceCheckpointTree + writeTorchFile): a model of the authors' widths at nz 512, 256 px (phase
// 6), default architecture, with their nine-block networks, SNU, the three optimisers' state dicts
// and the robust-loss parameters of all nine resolutions at one per image element. Each import runs
// in a child process, so that its peak RSS is its own, not this writer's: the child does what
// `automod import` does (importReferenceFile's steps, then saveModel) and reports its phases, the
// process's resident memory before the import and its peak (VmHWM, LibTorch's own ~160 MB included);
// the parent adds the child's whole wall time (process start, loading the libraries).
// Besides the read of the file from the page cache, each run measures two floors: the file read with
// none of it cached (cold) and an import of it so, and a copy of the file written durably (fsync), which
// is the least a program can take that reads the checkpoint and writes a model file of about its size.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <vector>

#include "app/cli/common.h"
#include "core/io/reference_import.h"
#include "core/io/torch_file.h"
#include "core/util/error.h"
#include "core/util/sha256.h"

extern char** environ;

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Seconds to read `path` start to end with read() into a 1 MiB buffer (the page cache warm).
double readSeconds(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path.string() + ": " + std::strerror(errno));
  std::vector<char> buffer(1 << 20);
  const auto start = std::chrono::steady_clock::now();
  ssize_t n = 0;
  while ((n = ::read(fd, buffer.data(), buffer.size())) > 0) {
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::close(fd);
  if (n < 0) throw Error("cannot read " + path.string() + ": " + std::strerror(errno));
  return s;
}

/// Drops `path`'s pages from the page cache (written back first), as if the file had never been read:
/// posix_fadvise needs no privileges, unlike /proc/sys/vm/drop_caches.
void dropFromPageCache(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path.string() + ": " + std::strerror(errno));
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

/// Seconds to copy `from` to `to` through a 1 MiB buffer and fsync the copy: the least any program
/// takes that reads the file and durably writes one of its size. Like the model writer, it starts the
/// writeback of each 32 MiB written at once (sync_file_range), so the floor gets the same help.
double copySeconds(const fs::path& from, const fs::path& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw Error("cannot open " + from.string() + ": " + std::strerror(errno));
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    throw Error("cannot create " + to.string() + ": " + std::strerror(errno));
  }
  std::vector<char> buffer(1 << 20);
  const auto start = std::chrono::steady_clock::now();
  bool ok = true;
  ssize_t n = 0;
  off_t written = 0, flushed = 0;
  while (ok && (n = ::read(in, buffer.data(), buffer.size())) > 0) {
    for (ssize_t done = 0; ok && done < n;) {
      const ssize_t w = ::write(out, buffer.data() + done, static_cast<size_t>(n - done));
      ok = w > 0;
      done += w;
      written += w;
    }
    if (written - flushed >= (off_t(32) << 20)) {
      (void)::sync_file_range(out, flushed, written - flushed, SYNC_FILE_RANGE_WRITE);
      flushed = written;
    }
  }
  ok = ok && n == 0 && ::fsync(out) == 0;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::close(in);
  ::close(out);
  fs::remove(to);
  if (!ok) throw Error("cannot copy " + from.string() + " to " + to.string() + ": " + std::strerror(errno));
  return s;
}

/// A field of /proc/self/status in bytes ("VmRSS", "VmHWM").
int64_t procStatusBytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;  // kB
  return -1;
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// The child: importReferenceFile's steps, timed, then the model file; the report as one JSON line.
void runImportChild(const fs::path& checkpoint, const fs::path& model_file, const fs::path& report) {
  const int64_t rss_before = procStatusBytes("VmRSS");
  const auto start = std::chrono::steady_clock::now();
  auto ckpt = readReferenceCheckpoint(checkpoint, TorchRead::Streamed);
  const double parse = since(start);
  const int64_t hwm_parse = procStatusBytes("VmHWM");
  auto sha = std::async(std::launch::async, [&] { return sha256File(checkpoint); });
  auto t = std::chrono::steady_clock::now();
  ReferenceImportOptions options;
  options.alignment = "ffhq";
  auto imported = importReference(ckpt, checkpoint.string(), "", options);
  const double build = since(t);
  const int64_t hwm_build = procStatusBytes("VmHWM");
  t = std::chrono::steady_clock::now();
  imported.provenance["sha256"] = sha.get();
  imported.model->metadata["provenance"] = imported.provenance;
  const double sha_wait = since(t);
  t = std::chrono::steady_clock::now();
  saveModel(model_file, *imported.model);
  const double save = since(t);
  std::ofstream(report) << nlohmann::json{{"rss_before_bytes", rss_before},
                                          {"vm_hwm_bytes", procStatusBytes("VmHWM")},
                                          {"vm_hwm_after_parse_bytes", hwm_parse},
                                          {"vm_hwm_after_build_bytes", hwm_build},
                                          {"import_ms", 1e3 * since(start)},
                                          {"parse_ms", 1e3 * parse},
                                          {"build_ms", 1e3 * build},
                                          {"sha256_wait_ms", 1e3 * sha_wait},
                                          {"save_ms", 1e3 * save},
                                          {"bytes_read", ckpt.source ? ckpt.source->bytesRead() : 0}}
                               .dump();
}

struct ChildRun {
  double seconds = 0;
  int status = 0;
};

/// Runs this program with `args` as a child: its wall time. (Its peak RSS comes from the child's own
/// VmHWM: getrusage's ru_maxrss of a posix_spawn'ed child starts from the parent's peak, since the
/// kernel carries the high-water mark of the memory the child shared with its parent (vfork) across
/// exec, and this parent held the checkpoint writer's memory.)
ChildRun runSelf(const std::vector<std::string>& args) {
  std::vector<std::string> all{"/proc/self/exe"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (const int e = ::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ); e != 0)
    throw Error("cannot start " + exe + ": " + std::strerror(e));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw Error(std::string("waiting for the import: ") + std::strerror(errno));
  ChildRun r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.status = status;
  return r;
}

void addImportBench(CLI::App& bench_app, GlobalOptions& global) {
  struct Opts {
    int nz = 512, resolution = 256, runs = 3;
    bool small = false, legacy = false;
    std::string dir, keep;
    std::vector<std::string> child;  // internal: CHECKPOINT MODEL REPORT
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench_app.add_subcommand(
      "import", "`automod import` of an authors'-format checkpoint at paper size: time against reading the file, peak "
                "RSS against its size");
  cmd->add_option("--nz", o->nz, "latent size (the released models: 512)")->capture_default_str();
  cmd->add_option("--resolution", o->resolution, "the checkpoint's resolution (phase)")->capture_default_str();
  cmd->add_flag("--small", o->small, "the small decoder (as celebahq256)");
  cmd->add_flag("--legacy", o->legacy, "the legacy (pre-1.6) torch.save format instead of zip");
  cmd->add_option("--runs", o->runs, "imports measured")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--dir", o->dir, "folder for the checkpoint and the imported model (default: a temporary one)");
  cmd->add_option("--keep", o->keep, "also keep the written checkpoint at this path");
  cmd->add_option("--child", o->child, "(internal) one measured import: CHECKPOINT MODEL REPORT")
      ->expected(3)
      ->group("");
  cmd->callback([o, &global] {
    prepare(global);
    if (!o->child.empty()) {
      runImportChild(o->child[0], o->child[1], o->child[2]);
      return;
    }
    const fs::path dir = o->dir.empty()
                             ? fs::temp_directory_path() / ("automod-bench-import-" + std::to_string(::getpid()))
                             : fs::path(o->dir);
    fs::create_directories(dir);
    const fs::path checkpoint = o->keep.empty() ? dir / "bench_state.pth" : fs::path(o->keep);
    const fs::path model_file = dir / "bench_import.amod";
    {
      // The checkpoint (the writer's memory is freed before any import starts).
      torch::manual_seed(0);
      Automodulator model(ModelConfig::reference(o->resolution, o->nz, o->small));
      ReferenceExportOptions options;
      options.iteration = 1000000;
      TorchWriteOptions w;
      w.format = o->legacy ? "legacy" : "zip";
      w.archive_name = checkpoint.stem().string();
      const auto start = std::chrono::steady_clock::now();
      writeTorchFile(checkpoint, referenceCheckpointTree(model, options), w);
      std::cerr << "wrote " << checkpoint.string() << " in "
                << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s\n";
    }
    const auto file_bytes = static_cast<int64_t>(fs::file_size(checkpoint));
    readSeconds(checkpoint);  // warm the page cache
    std::vector<double> reads, cold_reads, copies, imports, cold_imports, processes;
    std::vector<int64_t> rss, growth;
    const fs::path report = dir / "bench_import.json";
    std::vector<std::string> args{"bench", "import", "--child", checkpoint.string(), model_file.string(),
                                  report.string(), "--quiet"};
    if (global.threads > 0) args.insert(args.end(), {"--threads", std::to_string(global.threads)});
    // One import as the child process does it; its report.
    auto importOnce = [&](ChildRun* r) {
      fs::remove(model_file);
      fs::remove(report);
      *r = runSelf(args);
      if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0 || !fs::exists(report))
        throw Error("the import failed on the benchmark checkpoint " + checkpoint.string());
      nlohmann::json child;
      std::ifstream(report) >> child;
      return child;
    };
    for (int run = 0; run < o->runs; ++run) {
      // The file not yet in the page cache (as after a download that another program wrote, or a
      // reboot): its read, and an import of it.
      dropFromPageCache(checkpoint);
      cold_reads.push_back(readSeconds(checkpoint));
      dropFromPageCache(checkpoint);
      ChildRun cold;
      cold_imports.push_back(importOnce(&cold).at("import_ms").get<double>() / 1e3);
      copies.push_back(copySeconds(checkpoint, dir / "bench_copy.tmp"));
      reads.push_back(readSeconds(checkpoint));
      ChildRun r;
      const nlohmann::json child = importOnce(&r);
      const double import_s = child.at("import_ms").get<double>() / 1e3;
      imports.push_back(import_s);
      processes.push_back(r.seconds);
      const auto peak = child.at("vm_hwm_bytes").get<int64_t>();
      rss.push_back(peak);
      growth.push_back(peak - child.at("rss_before_bytes").get<int64_t>());
      nlohmann::json line{{"bench", "import"},
                          {"run", run + 1},
                          {"format", o->legacy ? "legacy" : "zip"},
                          {"nz", o->nz},
                          {"resolution", o->resolution},
                          {"file_bytes", file_bytes},
                          {"model_file_bytes", int64_t(fs::file_size(model_file))},
                          {"read_ms", 1e3 * reads.back()},
                          {"import_ms", 1e3 * import_s},
                          {"import_over_read", import_s / reads.back()},
                          {"cold_read_ms", 1e3 * cold_reads.back()},
                          {"cold_import_ms", 1e3 * cold_imports.back()},
                          {"cold_import_over_cold_read", cold_imports.back() / cold_reads.back()},
                          {"copy_ms", 1e3 * copies.back()},
                          {"import_over_copy", import_s / copies.back()},
                          {"process_ms", 1e3 * r.seconds},
                          {"peak_rss_bytes", peak},
                          {"peak_rss_over_file", double(peak) / double(file_bytes)},
                          {"rss_before_import_bytes", child.at("rss_before_bytes")},
                          {"rss_growth_over_file", double(growth.back()) / double(file_bytes)}};
      for (const char* phase : {"parse_ms", "build_ms", "sha256_wait_ms", "save_ms", "bytes_read", "vm_hwm_after_parse_bytes",
                                "vm_hwm_after_build_bytes", "vm_hwm_bytes"})
        line[phase] = child.at(phase);
      std::cout << line.dump() << std::endl;
    }
    std::cout << nlohmann::json{{"bench", "import-summary"},
                                {"runs", o->runs},
                                {"file_bytes", file_bytes},
                                {"read_ms_median", 1e3 * median(reads)},
                                {"import_ms_median", 1e3 * median(imports)},
                                {"import_over_read_median", median(imports) / median(reads)},
                                {"cold_read_ms_median", 1e3 * median(cold_reads)},
                                {"cold_import_ms_median", 1e3 * median(cold_imports)},
                                {"cold_import_over_cold_read_median", median(cold_imports) / median(cold_reads)},
                                {"copy_ms_median", 1e3 * median(copies)},
                                {"import_over_copy_median", median(imports) / median(copies)},
                                {"process_ms_median", 1e3 * median(processes)},
                                {"peak_rss_over_file_max",
                                 double(*std::max_element(rss.begin(), rss.end())) / double(file_bytes)},
                                {"rss_growth_over_file_max",
                                 double(*std::max_element(growth.begin(), growth.end())) / double(file_bytes)}}
                     .dump()
              << std::endl;
    fs::remove(report);
    fs::remove(model_file);
    if (o->keep.empty()) fs::remove(checkpoint);
    if (o->dir.empty()) fs::remove_all(dir);
  });
}

RegisterBench reg(40, &addImportBench);

}  // namespace
}  // namespace automod::cli
