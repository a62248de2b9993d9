#pragma once
// `automod-studio --headless --out DIR`: the editor's main job without a display, on core alone (no
// widgets): load the model, bring the photos in as the editor does (core's EditState: aligned or
// centre-cropped, encoded), refine them as the editor's default refinement does, write each
// reconstruction and a coarse/fine mix, and print each photo's PSNR / SSIM before and after
// refinement with the same hint as the editor's tiles.
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

namespace automod {

struct HeadlessOptions {
  std::filesystem::path model;  ///< empty: the bundled default model
  std::filesystem::path out = "automod-studio-out";
  std::vector<std::filesystem::path> photos;  ///< empty: the bundled sample photos
  /// Refinement steps per photo (core/edit/refine); < 0: the default, 0: off.
  int refine_steps = -1;
};

/// Returns the process exit code; results go to `out`, messages to `err`.
int runStudioHeadless(const HeadlessOptions& options, std::ostream& out, std::ostream& err);

/// The bundled sample photos (resources/samples in the source tree or share/automod-studio/samples).
std::vector<std::filesystem::path> samplePhotos(const std::filesystem::path& program_dir = {});

}  // namespace automod
