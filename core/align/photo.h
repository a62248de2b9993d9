#pragma once
// A user's photo → a square image the model can encode. With face alignment built in (dlib), the
// face is found and FFHQ-aligned; otherwise (or when asked) the photo is center-cropped. This is
// the one entry point the editing engine, the CLI and the GUI use to bring a photo in.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/align/face.h"

namespace automod {

/// How a model expects its photos prepared (recorded in its metadata["alignment"]).
enum class AlignStyle { FFHQ, CelebAHQ };

struct PhotoOptions {
  /// Align the face (needs dlib); false = plain center crop.
  bool align = true;
  /// Which face crop: FFHQ's or CelebA-HQ's.
  AlignStyle style = AlignStyle::FFHQ;
  /// Which face when there are several: -1 = the largest.
  int face = -1;
  /// When no face is found: center-crop instead of failing.
  bool center_crop_fallback = false;
  /// Detection settings (downscaling of large photos, upsampled retry for small faces).
  DetectOptions detect;
};

struct PreparedPhoto {
  /// uint8 [size, size, channels].
  torch::Tensor image;
  /// True when a face was found and aligned.
  bool aligned = false;
  /// A note for the user ("no face found; center-cropped"), empty when there is nothing to say.
  std::string note;
  /// Photo → crop transform (FFHQ quad when aligned, the center square otherwise), for paste-back.
  AlignTransform transform;
  /// Every face found, largest first (empty when not aligned); the GUI's face picker shows these.
  std::vector<DetectedFace> faces;
  /// Index into `faces` of the face in `image`, -1 when none.
  int face_index = -1;
  /// Width and height of the photo as displayed (after EXIF orientation).
  int photo_width = 0, photo_height = 0;
};

/// The photo options a model asks for: metadata "alignment" = "ffhq" (or absent), "celebahq" or
/// "none" (center crop, e.g. the LSUN models); `no_align` (the user's --no-align) turns alignment off.
PhotoOptions photoOptionsForModel(const nlohmann::json& model_metadata, bool no_align = false);
/// "ffhq", "celebahq" or "none" for a model's metadata (absent: "ffhq").
std::string modelAlignment(const nlohmann::json& model_metadata);

/// Whether this build can align faces.
bool alignmentAvailable();

/// Reads and prepares a photo; throws automod::Error for unreadable files, and for photos without
/// a face when alignment is on and center_crop_fallback is off.
PreparedPhoto preparePhoto(const std::filesystem::path& path, int size, int channels, const PhotoOptions& options = {});

/// One PreparedPhoto per face found (largest first); with no face, as preparePhoto does (throw, or one
/// center crop with center_crop_fallback). options.face is ignored.
std::vector<PreparedPhoto> prepareAllFaces(const std::filesystem::path& path, int size, int channels,
                                           const PhotoOptions& options = {});

/// The same preparation from an already decoded photo (uint8 [H, W, 3] RGB, displayed orientation);
/// `name` is used in messages. all_faces = false gives one element.
std::vector<PreparedPhoto> preparePhotoImage(const torch::Tensor& rgb, const std::string& name, int size, int channels,
                                             const PhotoOptions& options, bool all_faces);

}  // namespace automod
