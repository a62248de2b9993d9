#pragma once
// Helpers the subcommands share: device/thread set-up, model lookup, output paths.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "app/cli/commands.h"
#include "core/edit/refine.h"
#include "core/align/photo.h"
#include "core/io/model_file.h"
#include "core/model/automodulator.h"

namespace automod::cli {

/// Applies --threads, resolves --device (throws a clear error for an unavailable device) and keeps
/// --allow-nonfinite for openModel (every command calls this first).
torch::Device prepare(const GlobalOptions& global);

/// How the CLI loads model files: on `device`, NaN/Inf weights refused unless --allow-nonfinite, in
/// which case the warning goes to stderr.
LoadOptions loadOptions(const GlobalOptions& global, torch::Device device);

/// Loads MODEL: a path to an .amod file, or "default" for the bundled model. When the bundled model
/// is missing (a fresh checkout before training), a freshly initialised 64 px model is used and a
/// note says so on stderr. Follows the --allow-nonfinite given to prepare().
std::unique_ptr<Automodulator> openModel(const std::string& model, torch::Device device, bool quiet = false);

/// How the photo-taking commands prepare photos: --no-align, --aligned, --input-transform.
struct PhotoFlags {
  bool no_align = false;
  bool aligned = false;
  /// "reference", "area" or empty (the model's own, photoOptionsForModel).
  std::string input_transform;
  /// DetectOptions::exhaustive_search.
  bool search_everywhere = false;
};
/// Adds --no-align, --aligned, --input-transform and --search-everywhere to a command; `no_align_help`
/// says what --no-align does there.
/// The help text of --search-everywhere (also `automod align`'s).
extern const char* const kSearchEverywhereHelp;
void addPhotoFlags(CLI::App* cmd, PhotoFlags& flags,
                   const std::string& no_align_help = "center-crop instead of aligning faces");
/// The model's photo options (photoOptionsForModel) with the flags applied; `no_align` adds to
/// --no-align (e.g. a recipe that turns alignment off). The reference transform asked for on a model
/// that does not record one uses max_reso max(256, the model's resolution).
PhotoOptions photoOptions(const Automodulator& model, const PhotoFlags& flags, bool no_align = false);

/// "automod: error: <one sentence>", and with --verbose the library's own text below it.
void printError(const std::exception& e, const GlobalOptions& global);
/// The same for one input of several that failed: "automod: skipped: INPUT: <sentence>" (the input's
/// name only when the sentence does not already give it), and the detail with --verbose.
void printSkipped(const std::string& input, const std::exception& e, const GlobalOptions& global);

/// Fails early, with the path, when an output cannot be written (missing parent is created).
void ensureParentDir(const std::filesystem::path& path);

/// "1m05s", "2h03m"; "--" for an unknown (negative or infinite) time.
std::string formatDuration(double seconds);
/// "[######------------------]": a bar `width` characters wide, `fraction` of it filled.
std::string progressBarText(double fraction, int width = 24);

/// A progress bar with ETA on stderr for a long loop (training's look): redrawn in place on a
/// terminal at most every 200 ms, a line every 10 s otherwise, nothing when quiet. The line is
/// finished by finish() or the destructor.
class ProgressBar {
 public:
  ProgressBar(std::string what, bool quiet);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  void update(int64_t done, int64_t total);
  void finish();

 private:
  std::string what_;
  bool quiet_, tty_, shown_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

/// --refine N and the refinement's dial (--refine-anchor, --refine-neighbour), --refine-lr and
/// --refine-loss-resolution, bound to `options` (whose values are the defaults shown).
void addRefineFlags(CLI::App* cmd, RefineOptions& options);

}  // namespace automod::cli
