#pragma once
// Helpers the subcommands share: device/thread set-up, model lookup, output paths.
#include <filesystem>
#include <memory>
#include <string>

#include "app/cli/commands.h"
#include "core/model/automodulator.h"

namespace automod::cli {

/// Applies --threads and resolves --device (throws a clear error for an unavailable device).
torch::Device prepare(const GlobalOptions& global);

/// Loads MODEL: a path to an .amod file, or "default" for the bundled model. When the bundled model
/// is missing (a fresh checkout before training), a freshly initialised 64 px model is used and a
/// note says so on stderr.
std::unique_ptr<Automodulator> openModel(const std::string& model, torch::Device device, bool quiet = false);

/// Fails early, with the path, when an output cannot be written (missing parent is created).
void ensureParentDir(const std::filesystem::path& path);

}  // namespace automod::cli
