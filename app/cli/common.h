#pragma once
// Helpers the subcommands share: device/thread set-up, model lookup, output paths.
#include <filesystem>
#include <memory>
#include <string>

#include "app/cli/commands.h"
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

/// "automod: error: <one sentence>", and with --verbose the library's own text below it.
void printError(const std::exception& e, const GlobalOptions& global);
/// The same for one input of several that failed: "automod: skipped: INPUT: <sentence>" (the input's
/// name only when the sentence does not already give it), and the detail with --verbose.
void printSkipped(const std::string& input, const std::exception& e, const GlobalOptions& global);

/// Fails early, with the path, when an output cannot be written (missing parent is created).
void ensureParentDir(const std::filesystem::path& path);

}  // namespace automod::cli
