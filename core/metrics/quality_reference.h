#pragma once
// What a photo's reconstruction is compared with: the model's own held-out reconstruction PSNR
// (`automod eval --store` keeps it in the model file's metadata as "evaluation"; a
// `<model>-eval.json` beside the file stands in when the metadata has none), and whether the model
// learnt synthetic cartoon faces. The editor's photo tiles and status bar and the headless job
// (`automod-studio --headless`) say the same thing from these.
#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace automod {

struct QualityReference {
  std::optional<double> held_out_psnr_db;  // none: the model was never evaluated
  bool synthetic_faces = false;            // trained under a faces-* preset (automod make-faces data)
};

/// A photo this many dB below the held-out figure is "far below" it. Measured on the bundled model
/// (held-out 18.85 dB): its own sample photos (resources/samples, cartoon faces) reconstruct at
/// 14.6–17.1 dB, real photos (grace_hopper, astronaut) at 8.2–11.3; 4 dB flagged a cartoon sample.
/// tst_default_model holds both sides.
inline constexpr double kQualityGapDb = 5.0;

/// From a model's metadata, else from `<stem>-eval.json` beside `model_file` (when given and
/// readable; a sidecar over 1 MiB or not JSON is ignored).
QualityReference qualityReference(const nlohmann::json& metadata, const std::filesystem::path& model_file = {});

/// Empty while `photo_psnr_db` is within kQualityGapDb of the held-out figure (or there is none, or
/// the PSNR is not finite); otherwise one sentence for the user, pointing a synthetic-face model's
/// user to Model → Library.
std::string qualityHint(const QualityReference& reference, double photo_psnr_db);

}  // namespace automod
