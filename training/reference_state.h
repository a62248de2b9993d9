#pragma once
// The training state of an authors' checkpoint as a run of ours (`automod import --training-state`):
// the imported model plus their robust-loss parameters and both Adams' moments, placed on a paper
// preset's schedule, so that `automod train --resume` fine-tunes the authors' model on a user's own
// photos. What cannot be carried over is said, one sentence each.
#include <cstdint>
#include <string>
#include <vector>

#include "core/io/archive.h"
#include "core/io/reference_import.h"

namespace automod {

struct ReferenceTrainingOptions {
  /// The preset whose schedule and losses the run follows; empty: the paper preset of the released
  /// model the file is (paper-ffhq256, paper-ffhq512, paper-celebahq256, paper-lsun256), else by
  /// architecture and alignment.
  std::string preset;
  /// The run ends this many images after the checkpoint (the preset's total_images is moved).
  int64_t training_images = 200000;
  uint64_t seed = 0;
};

struct ReferenceTrainingState {
  /// A run checkpoint: write it as RUN/latest.amod.
  TensorArchive checkpoint;
  /// The preset the run follows (adapted to the model: its resolution, latent size and length).
  std::string preset_name;
  int64_t images_seen = 0;
  /// What the checkpoint holds that the run does not, and what was approximated.
  std::vector<std::string> not_carried;
};

/// Builds the run checkpoint from an import and the checkpoint it came from. Throws automod::Error
/// when the model cannot be trained by a preset (custom widths) or the preset does not fit it.
ReferenceTrainingState referenceTrainingState(ReferenceImport& imported, const ReferenceCheckpoint& ckpt,
                                              const ReferenceTrainingOptions& options = {});

}  // namespace automod
