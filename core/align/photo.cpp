#include "core/align/photo.h"

#include <cmath>

#include "core/io/image.h"
#include "core/util/error.h"

namespace automod {

namespace {

torch::Tensor toGreyIfNeeded(const torch::Tensor& rgb, int channels) {
  if (channels == 3 || rgb.size(2) == 1) return rgb;
  auto f = rgb.to(torch::kFloat32);
  auto g = f.select(2, 0) * 0.299 + f.select(2, 1) * 0.587 + f.select(2, 2) * 0.114;
  return g.round().clamp(0, 255).to(torch::kUInt8).unsqueeze(2).contiguous();
}

PreparedPhoto centerCropped(const torch::Tensor& rgb, int size, int channels, std::string note) {
  PreparedPhoto p;
  p.photo_height = static_cast<int>(rgb.size(0));
  p.photo_width = static_cast<int>(rgb.size(1));
  p.image = toGreyIfNeeded(centerCropResize(rgb, size), channels);
  p.transform = AlignTransform::centerCrop(size, p.photo_width, p.photo_height);
  p.note = std::move(note);
  return p;
}

}  // namespace

bool alignmentAvailable() { return faceDetectionAvailable(); }

std::vector<PreparedPhoto> preparePhotoImage(const torch::Tensor& rgb, const std::string& name, int size, int channels,
                                             const PhotoOptions& options, bool all_faces) {
  TORCH_CHECK(size > 0, "preparePhoto: size must be positive");
  TORCH_CHECK(channels == 1 || channels == 3, "preparePhoto: channels must be 1 or 3");
  TORCH_CHECK(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.scalar_type() == torch::kUInt8,
              "preparePhotoImage expects uint8 [H, W, 3]");
  if (!options.align) return {centerCropped(rgb, size, channels, "")};
  if (!alignmentAvailable()) {
#ifdef AUTOMOD_HAVE_DLIB
    const std::string why = "the face landmark model " + shapePredictorPath() + " is missing (install libdlib-data)";
#else
    const std::string why = "face alignment is not built in";
#endif
    return {centerCropped(rgb, size, channels, why + "; center-cropped")};
  }
  auto faces = detectFaces(rgb, options.detect);
  if (faces.empty()) {
    if (options.center_crop_fallback) return {centerCropped(rgb, size, channels, "no face found in " + name + "; center-cropped")};
    throw Error("no face found in " + name + " (use --center-crop to crop the middle instead, or --no-align)");
  }
  const int n = static_cast<int>(faces.size());
  std::vector<int> picks;
  if (all_faces) {
    for (int i = 0; i < n; ++i) picks.push_back(i);
  } else {
    const int k = options.face < 0 ? 0 : options.face;
    if (k >= n)
      throw Error(name + " has " + std::to_string(n) + (n == 1 ? " face" : " faces") + "; choose a face from 0 to " +
                  std::to_string(n - 1));
    picks.push_back(k);
  }
  std::vector<PreparedPhoto> out;
  for (int k : picks) {
    PreparedPhoto p;
    p.photo_height = static_cast<int>(rgb.size(0));
    p.photo_width = static_cast<int>(rgb.size(1));
    p.transform = options.style == AlignStyle::CelebAHQ
                      ? AlignTransform::celebaHQ(faces[k].landmarks, size, p.photo_width, p.photo_height)
                      : AlignTransform::ffhq(faces[k].landmarks, size, p.photo_width, p.photo_height);
    p.image = toGreyIfNeeded(warpToCrop(rgb, p.transform), channels);
    p.aligned = true;
    p.face_index = k;
    p.faces = faces;
    std::string note;
    if (!all_faces && n > 1)
      note = std::to_string(n) + " faces found in " + name + "; using face " + std::to_string(k) +
             (options.face < 0 ? " (the largest; choose another with --face)" : "");
    // Only an upscaling one can see (more than 10%): a 63.6 px face for a 64 px crop is no news, and
    // "64 px across for a 64 px crop" read as nonsense.
    const double q = p.transform.quadSize();
    if (q < 0.9 * size) {
      if (!note.empty()) note += "; ";
      note += "the face in " + name + " is small (" + std::to_string(static_cast<int>(std::lround(q))) +
              " px across for a " + std::to_string(size) + " px crop); the crop is upscaled and will look soft";
    }
    p.note = std::move(note);
    out.push_back(std::move(p));
  }
  return out;
}

std::string modelAlignment(const nlohmann::json& metadata) {
  if (!metadata.is_object()) return "ffhq";
  auto it = metadata.find("alignment");
  if (it == metadata.end() || !it->is_string()) return "ffhq";
  const auto& a = it->get_ref<const std::string&>();
  return a == "celebahq" || a == "none" ? a : "ffhq";
}

PhotoOptions photoOptionsForModel(const nlohmann::json& metadata, bool no_align) {
  PhotoOptions o;
  const auto alignment = modelAlignment(metadata);
  o.align = !no_align && alignment != "none";
  o.style = alignment == "celebahq" ? AlignStyle::CelebAHQ : AlignStyle::FFHQ;
  return o;
}

PreparedPhoto preparePhoto(const std::filesystem::path& path, int size, int channels, const PhotoOptions& options) {
  return preparePhotoImage(readImage(path, 3), path.string(), size, channels, options, false).front();
}

std::vector<PreparedPhoto> prepareAllFaces(const std::filesystem::path& path, int size, int channels,
                                           const PhotoOptions& options) {
  return preparePhotoImage(readImage(path, 3), path.string(), size, channels, options, true);
}

}  // namespace automod
