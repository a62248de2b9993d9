#pragma once
// The bundled default model (models/default.amod): the one place that knows where it is installed
// and what to use when it is not (a freshly initialised 64 px model, said so). The CLI's `default`,
// the editor's Model → Default Model and headless mode all come here.
#include <filesystem>
#include <memory>
#include <string>

#include "core/io/model_file.h"
#include "core/model/automodulator.h"

namespace automod {

/// The first of: the source tree's models/default.amod, the installed share folder beside the program
/// (<program>/../share/automod-studio/models/default.amod), /usr/share/automod-studio/models, and
/// ./models/default.amod. Empty when none exists.
std::filesystem::path defaultModelPath();

struct DefaultModel {
  std::unique_ptr<Automodulator> model;
  std::filesystem::path path;  ///< empty for the untrained fallback
  bool untrained = false;
  /// For the untrained fallback, the sentence to show the user; empty otherwise.
  std::string note;
};

/// The stand-in when no default model is installed: a freshly initialised 64 px model (cpu-128
/// widths, seed 0) with metadata "untrained": true.
std::unique_ptr<Automodulator> untrainedDefaultModel(torch::Device device = torch::kCPU);

/// Loads the default model onto `device`, or, when none is installed, a freshly initialised 64 px
/// model (seed 0, metadata "untrained": true) with a note. A default model file that exists but
/// cannot be read throws automod::Error (that is not the same as "not installed").
DefaultModel openDefaultModel(torch::Device device = torch::kCPU);
/// The same with loader options (device, integrity checks, non-finite weights allowed, ...).
DefaultModel openDefaultModel(const LoadOptions& options);

}  // namespace automod
