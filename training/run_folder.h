#pragma once
// Run folders (what `automod train --out` and the Train tab write into): one run per folder. A new
// run never goes into a folder that holds another run's checkpoint unless the user says to continue
// it (resume) or to replace it (overwrite); the Train tab proposes a fresh folder for every run.
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <string>

namespace automod {

struct RunFolderState {
  /// The folder has a run's latest.amod.
  bool holds_run = false;
  /// That checkpoint's images seen and preset (when it could be read; -1 and empty otherwise).
  int64_t images_seen = -1;
  std::string preset;
};

/// What `folder` holds (a missing folder holds nothing).
RunFolderState inspectRunFolder(const std::filesystem::path& folder);

/// Removes a run's files from `folder`: latest.amod, checkpoint-*.amod, log.jsonl, config.json and
/// the preview PNGs (the data cache and anything else stay). Throws automod::Error when a file cannot
/// be removed.
void clearRunFolder(const std::filesystem::path& folder);

/// A folder under `parent` for a new run, named from the preset, the data and the time:
/// "faces-64-photos-20261202-0530", with "-2", "-3", ... when that name is taken.
std::filesystem::path proposeRunFolder(const std::filesystem::path& parent, const std::string& preset,
                                       const std::string& data, std::time_t when);

}  // namespace automod
