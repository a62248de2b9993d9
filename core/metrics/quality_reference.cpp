#include "core/metrics/quality_reference.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <system_error>

namespace automod {

namespace {

std::optional<double> sidecarPsnr(const std::filesystem::path& model_file) {
  if (model_file.empty()) return std::nullopt;
  auto sidecar = model_file.parent_path() / (model_file.stem().string() + "-eval.json");
  std::error_code ec;
  const auto size = std::filesystem::file_size(sidecar, ec);
  if (ec || size > (1u << 20)) return std::nullopt;
  std::ifstream in(sidecar);
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  const auto p = nlohmann::json::json_pointer("/reconstruction/psnr_db");
  if (j.is_discarded() || !j.contains(p) || !j.at(p).is_number()) return std::nullopt;
  return j.at(p).get<double>();
}

}  // namespace

QualityReference qualityReference(const nlohmann::json& metadata, const std::filesystem::path& model_file) {
  QualityReference r;
  if (metadata.is_object()) {
    if (auto e = metadata.find("evaluation");
        e != metadata.end() && e->is_object() && e->contains("psnr_db") && (*e)["psnr_db"].is_number())
      r.held_out_psnr_db = (*e)["psnr_db"].get<double>();
    if (auto p = metadata.find("preset"); p != metadata.end() && p->is_string())
      r.synthetic_faces = p->get<std::string>().rfind("faces", 0) == 0;
  }
  if (!r.held_out_psnr_db) r.held_out_psnr_db = sidecarPsnr(model_file);
  return r;
}

std::string qualityHint(const QualityReference& reference, double photo_psnr_db) {
  if (!reference.held_out_psnr_db || !std::isfinite(photo_psnr_db) ||
      photo_psnr_db >= *reference.held_out_psnr_db - kQualityGapDb)
    return {};
  char buf[160];
  std::snprintf(buf, sizeof buf, "reconstructed at %.1f dB, far below the %.1f dB this model reaches on its own held-out images",
                photo_psnr_db, *reference.held_out_psnr_db);
  std::string hint = buf;
  if (reference.synthetic_faces)
    hint += ": this model was trained on synthetic cartoon faces, so a real photo comes back as a cartoon. "
            "Model \u2192 Library has the paper authors' models trained on real faces";
  return hint;
}

}  // namespace automod
