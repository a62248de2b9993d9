#include "core/align/photo.h"

#include <algorithm>
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

// The photo through the options' input transform, without any warp: a centre crop (the reference
// transform's crop is centred too, to within half a pixel of its max_reso-sized copy, so the
// centre-crop transform serves for paste-back in both cases).
PreparedPhoto centerCropped(const torch::Tensor& rgb, int size, int channels, const PhotoOptions& options,
                            std::string note) {
  PreparedPhoto p;
  p.photo_height = static_cast<int>(rgb.size(0));
  p.photo_width = static_cast<int>(rgb.size(1));
  auto image = options.input_transform == InputTransform::Reference ? referenceInputTransform(rgb, options.max_reso, size)
                                                                     : centerCropResize(rgb, size);
  p.image = toGreyIfNeeded(image, channels);
  p.transform = AlignTransform::centerCrop(size, p.photo_width, p.photo_height);
  p.note = std::move(note);
  return p;
}

AlignTransform styleTransform(AlignStyle style, const std::vector<Point2>& landmarks, int size, int w, int h) {
  return style == AlignStyle::CelebAHQ ? AlignTransform::celebaHQ(landmarks, size, w, h)
                                       : AlignTransform::ffhq(landmarks, size, w, h);
}

// Whether a square photo is already aligned around `face` (alreadyAligned). The landmarks are looked
// for where an aligned face has them (their bounding square: centre (0.50, 0.65)·side, half side
// 0.27·side, measured on FFHQ-aligned crops of the test photos), not only from the detector's box,
// which on a face that fills the photo can sit far enough off for the landmarks not to settle.
bool isAlignedPhoto(const torch::Tensor& rgb, const DetectedFace& face, AlignStyle style, int size) {
  const int w = static_cast<int>(rgb.size(1)), h = static_cast<int>(rgb.size(0));
  if (w != h) return false;
  if (alreadyAligned(styleTransform(style, face.landmarks, size, w, h))) return true;
  // Only for a face detected about where an aligned face is (its box centred near (0.5, 0.6)·side).
  const double cx = face.box[0] + face.box[2] / 2.0, cy = face.box[1] + face.box[3] / 2.0;
  if (std::hypot(cx - 0.5 * w, cy - 0.6 * w) > 0.15 * w || face.box[2] < 0.3 * w || face.box[2] > 0.9 * w) return false;
  const auto landmarks = landmarksAround(rgb, Point2{0.5 * w - 0.5, 0.65 * w - 0.5}, 0.27 * w);
  return alreadyAligned(styleTransform(style, landmarks, size, w, h));
}

}  // namespace

bool alignmentAvailable() { return faceDetectionAvailable(); }

std::vector<PreparedPhoto> preparePhotoImage(const torch::Tensor& rgb, const std::string& name, int size, int channels,
                                             const PhotoOptions& options, bool all_faces) {
  TORCH_CHECK(size > 0, "preparePhoto: size must be positive");
  TORCH_CHECK(channels == 1 || channels == 3, "preparePhoto: channels must be 1 or 3");
  TORCH_CHECK(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.scalar_type() == torch::kUInt8,
              "preparePhotoImage expects uint8 [H, W, 3]");
  if (!options.align) return {centerCropped(rgb, size, channels, options, "")};
  if (options.already_aligned) {
    auto p = centerCropped(rgb, size, channels, options, "");
    p.aligned = true;
    return {p};
  }
  if (!alignmentAvailable()) {
#ifdef AUTOMOD_HAVE_DLIB
    const std::string why = "the face landmark model " + shapePredictorPath() + " is missing (install libdlib-data)";
#else
    const std::string why = "face alignment is not built in";
#endif
    return {centerCropped(rgb, size, channels, options, why + "; center-cropped")};
  }
  auto faces = detectFaces(rgb, options.detect);
  if (faces.empty()) {
    if (options.center_crop_fallback)
      return {centerCropped(rgb, size, channels, options, "no face found in " + name + "; center-cropped")};
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
    p.transform = styleTransform(options.style, faces[k].landmarks, size, p.photo_width, p.photo_height);
    std::string note;
    if (options.keep_aligned_photos && isAlignedPhoto(rgb, faces[k], options.style, size)) {
      // Warping an aligned photo again would only resample it (and move it by the landmarks' jitter):
      // it goes to the model as an aligned file goes to the authors' code.
      p.image = centerCropped(rgb, size, channels, options, "").image;
      p.transform = AlignTransform::centerCrop(size, p.photo_width, p.photo_height);
      note = name + " is already aligned; used as it is";
    } else {
      p.image = toGreyIfNeeded(warpToCrop(rgb, p.transform), channels);
    }
    p.aligned = true;
    p.face_index = k;
    p.faces = faces;
    if (!all_faces && n > 1) {
      if (!note.empty()) note += "; ";
      note += std::to_string(n) + " faces found in " + name + "; using face " + std::to_string(k) +
              (options.face < 0 ? " (the largest; choose another with --face)" : "");
    }
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
  modelInputTransform(metadata, o.input_transform, o.max_reso);
  return o;
}

void modelInputTransform(const nlohmann::json& metadata, InputTransform& kind, int& max_reso) {
  kind = InputTransform::Area;
  if (!metadata.is_object()) return;
  if (auto it = metadata.find("input_transform"); it != metadata.end()) {
    const auto& t = *it;
    const auto k = t.is_object() ? t.value("kind", nlohmann::json()) : nlohmann::json();
    if (k == "area") return;
    if (k != "reference")
      throw Error("the model's metadata \"input_transform\" must be {\"kind\": \"reference\", \"max_reso\": N} or "
                  "{\"kind\": \"area\"}");
    const auto m = t.value("max_reso", nlohmann::json());
    if (!m.is_number_integer() || m.get<int64_t>() < 1 || m.get<int64_t>() > 16384)
      throw Error("the model's metadata \"input_transform\" needs \"max_reso\", a whole number from 1 to 16384");
    kind = InputTransform::Reference;
    max_reso = static_cast<int>(m.get<int64_t>());
    return;
  }
  // A model imported from the authors' code before the importer recorded the transform: their
  // Session.tf() with maxReso 512 for ffhq512 (phase 7) and up, 256 for the others.
  auto p = metadata.find("provenance");
  if (p == metadata.end() || !p->is_object()) return;
  kind = InputTransform::Reference;
  const auto phase = p->value("phase", nlohmann::json());
  const int resolution = phase.is_number_integer() && phase.get<int64_t>() >= 0 && phase.get<int64_t>() < 12
                             ? 4 << phase.get<int>()
                             : 256;
  max_reso = std::max(256, resolution);
}

nlohmann::json inputTransformJson(InputTransform kind, int max_reso) {
  if (kind == InputTransform::Area) return {{"kind", "area"}};
  return {{"kind", "reference"}, {"max_reso", max_reso}};
}

std::string photoOptionsKey(const PhotoOptions& o) {
  std::string k = o.align ? "a" : "c";
  k += std::to_string(int(o.style)) + "," + std::to_string(o.face);
  if (o.center_crop_fallback) k += "f";
  k += o.input_transform == InputTransform::Reference ? "r" + std::to_string(o.max_reso) : "s";
  if (o.already_aligned) k += "A";
  if (!o.keep_aligned_photos) k += "w";
  if (o.detect.exhaustive_search) k += "x";  // can find a face the window search misses
  return k;
}

bool alreadyAligned(const AlignTransform& t) {
  const int w = t.photo_width, h = t.photo_height, s = t.crop_size;
  if (w != h || w <= 0 || s <= 0) return false;
  // The photo's corners (pixel-edge convention) in crop pixels, against the crop's own corners.
  const double tolerance = std::max(0.5, 0.015 * s);
  const Point2 photo[4] = {{-0.5, -0.5}, {-0.5, h - 0.5}, {w - 0.5, h - 0.5}, {w - 0.5, -0.5}};
  const Point2 crop[4] = {{-0.5, -0.5}, {-0.5, s - 0.5}, {s - 0.5, s - 0.5}, {s - 0.5, -0.5}};
  for (int i = 0; i < 4; ++i) {
    const Point2 c = t.toCrop(photo[i]);
    if (std::hypot(c.x - crop[i].x, c.y - crop[i].y) > tolerance) return false;
  }
  return std::abs(t.quadSize() / w - 1.0) <= 0.015;
}

PreparedPhoto preparePhoto(const std::filesystem::path& path, int size, int channels, const PhotoOptions& options) {
  return preparePhotoImage(readImage(path, 3), path.string(), size, channels, options, false).front();
}

std::vector<PreparedPhoto> prepareAllFaces(const std::filesystem::path& path, int size, int channels,
                                           const PhotoOptions& options) {
  return preparePhotoImage(readImage(path, 3), path.string(), size, channels, options, true);
}

}  // namespace automod
