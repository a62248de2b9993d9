#include "app/cli/common.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "core/io/default_model.h"
#include "core/io/model_file.h"
#include "core/util/device.h"
#include "core/util/error.h"

namespace automod::cli {
namespace fs = std::filesystem;

namespace {
// --allow-nonfinite as given to prepare(), for openModel (whose callers predate the option).
bool g_allow_nonfinite = false;

void printWithDetail(const std::string& label, const std::exception& e, const GlobalOptions& global) {
  std::cerr << "automod: " << label << errorMessage(e) << "\n";
  if (!global.verbose) return;
  const auto detail = errorDetail(e);
  if (!detail.empty()) std::cerr << "automod: detail: " << detail << "\n";
}
}  // namespace

torch::Device prepare(const GlobalOptions& global) {
  g_allow_nonfinite = global.allow_nonfinite;
  configureThreads(global.threads);
  return resolveDevice(global.device);
}

LoadOptions loadOptions(const GlobalOptions& global, torch::Device device) {
  LoadOptions o;
  o.device = device;
  o.allow_nonfinite = global.allow_nonfinite;
  o.warn = [](const std::string& message) { std::cerr << "automod: warning: " << message << "\n"; };
  return o;
}

const char* const kSearchEverywhereHelp =
    "when the first look finds no clear face, search the whole photo for small ones, not only its "
    "skin-coloured places (for strong colour casts or unusual light; several times slower)";

void addPhotoFlags(CLI::App* cmd, PhotoFlags& flags, const std::string& no_align_help) {
  cmd->add_flag("--no-align", flags.no_align, no_align_help);
  cmd->add_flag("--aligned", flags.aligned,
                "the photos are already aligned (FFHQ/CelebA-HQ files, `automod align` output): no face detection, "
                "only the model's input transform");
  cmd->add_option("--input-transform", flags.input_transform,
                  "how a photo that is not warped becomes the model's input: reference (the authors' Pillow "
                  "resize of the shorter side, centre crop; the default for imported models) or area (centre "
                  "crop, area resize; the default for other models)")
      ->check(CLI::IsMember({"reference", "area"}));
  cmd->add_flag("--search-everywhere", flags.search_everywhere, kSearchEverywhereHelp);
}

PhotoOptions photoOptions(const Automodulator& model, const PhotoFlags& flags, bool no_align) {
  PhotoOptions o = photoOptionsForModel(model.metadata, flags.no_align || no_align);
  o.already_aligned = flags.aligned;
  o.detect.exhaustive_search = flags.search_everywhere;
  if (flags.input_transform == "area") {
    o.input_transform = InputTransform::Area;
  } else if (flags.input_transform == "reference" && o.input_transform != InputTransform::Reference) {
    o.input_transform = InputTransform::Reference;
    o.max_reso = std::max(256, model.resolution());
  }
  return o;
}

void printError(const std::exception& e, const GlobalOptions& global) { printWithDetail("error: ", e, global); }
void printSkipped(const std::string& input, const std::exception& e, const GlobalOptions& global) {
  const bool named = errorMessage(e).find(input) != std::string::npos;
  printWithDetail(named ? std::string("skipped: ") : "skipped: " + input + ": ", e, global);
}

std::unique_ptr<Automodulator> openModel(const std::string& model, torch::Device device, bool quiet) {
  GlobalOptions global;
  global.allow_nonfinite = g_allow_nonfinite;
  const auto options = loadOptions(global, device);
  if (model == "default") {
    auto d = openDefaultModel(options);
    if (d.untrained && !quiet) std::cerr << "automod: note: " << d.note << "\n";
    return std::move(d.model);
  }
  return loadModel(model, options);
}

void ensureParentDir(const fs::path& path) {
  if (path.parent_path().empty()) return;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) throw Error("cannot create folder " + path.parent_path().string() + ": " + ec.message());
}

std::string formatDuration(double s) {
  if (s < 0 || !std::isfinite(s)) return "--";
  const auto t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t / 60 % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

std::string progressBarText(double fraction, int width) {
  const int filled = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * width);
  return "[" + std::string(filled, '#') + std::string(width - filled, '-') + "]";
}

ProgressBar::ProgressBar(std::string what, bool quiet)
    : what_(std::move(what)),
      quiet_(quiet),
      tty_(::isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()),
      last_(start_ - std::chrono::hours(1)) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(int64_t done, int64_t total) {
  if (quiet_ || total <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  const auto gap = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
  if (now - last_ < gap && done < total) return;
  last_ = now;
  const double frac = std::min(1.0, double(done) / double(total));
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = done > 0 ? elapsed * double(total - done) / double(done) : -1.0;
  char buf[64];
  std::snprintf(buf, sizeof buf, " %5.1f%% %lld/%lld | ETA ", 100.0 * frac, (long long)done, (long long)total);
  std::cerr << (tty_ ? "\r\033[K" : "") << "automod: " << what_ << " " << progressBarText(frac) << buf
            << formatDuration(eta) << (tty_ ? "" : "\n") << std::flush;
  shown_ = true;
}

void ProgressBar::finish() {
  if (shown_ && tty_) std::cerr << "\n" << std::flush;
  shown_ = false;
}

void addRefineFlags(CLI::App* cmd, RefineOptions& o) {
  cmd->add_option("--refine", o.steps,
                  "refine each photo's code for N steps (per-block codes optimised against the photo; "
                  "docs/refinement.md); 0 = off")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--refine-anchor", o.anchor,
                  "refinement: pull of every block's code towards the encoder's (higher keeps mixing and "
                  "attribute edits closer to the unrefined code's, lower reconstructs more faithfully)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--refine-neighbour", o.neighbour, "refinement: pull between neighbouring blocks' codes")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--refine-lr", o.lr, "refinement: peak learning rate")->capture_default_str()->check(
      CLI::PositiveNumber);
  cmd->add_option("--refine-offsets", o.offsets,
                  "refinement: also optimise style offsets (per-photo additions to every AdaIN layer's styles, "
                  "carried with the codes through mixing and edits): true or false")
      ->capture_default_str();
  cmd->add_option("--refine-offset-decay", o.offset_decay,
                  "refinement: weight of the style offsets' mean square (higher keeps edits closer to the codes' "
                  "own styles)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--refine-offset-lr", o.offset_lr, "refinement: the style offsets' peak learning rate (0 = --refine-lr)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--refine-loss-resolution", o.loss_resolution,
                  "refinement: compare at this resolution (a power of two up to the model's; 0 = the model's), "
                  "decoding only up to it: faster for large models")
      ->capture_default_str();
}

}  // namespace automod::cli
