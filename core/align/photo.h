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

/// How a photo that is not warped here (alignment off, a photo that is already aligned, no face with
/// center_crop_fallback) becomes the model's input.
enum class InputTransform {
  /// The centred square, area-resized (our own models are trained on such crops).
  Area,
  /// The authors' Session.tf(): shorter side to max_reso, centre crop, model resolution, all with
  /// Pillow's bilinear filter (referenceInputTransform); the default for imported models.
  Reference,
};

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
  /// The input transform for photos that are not warped (see InputTransform).
  InputTransform input_transform = InputTransform::Area;
  /// Reference transform: the authors' maxReso, the size the shorter side goes to first (512 for
  /// their ffhq512 model, 256 for the others).
  int max_reso = 256;
  /// The photos are already aligned (FFHQ or CelebA-HQ files, the authors' inputs, `automod align`
  /// output): no face detection, only the input transform. The editor's "photos are already aligned".
  bool already_aligned = false;
  /// Without already_aligned, a square photo whose face already sits where the alignment would put it
  /// (alreadyAligned()) is not warped again but goes through the input transform; false always warps.
  bool keep_aligned_photos = true;
};

/// A short string that differs whenever two PhotoOptions can prepare a photo differently (for caches).
std::string photoOptionsKey(const PhotoOptions& options);

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
/// The input transform comes from metadata "input_transform" (modelInputTransform).
PhotoOptions photoOptionsForModel(const nlohmann::json& model_metadata, bool no_align = false);
/// "ffhq", "celebahq" or "none" for a model's metadata (absent: "ffhq").
std::string modelAlignment(const nlohmann::json& model_metadata);

/// A model's input transform, from metadata "input_transform": {"kind": "reference", "max_reso": N}
/// (the authors' Session.tf() with their maxReso N) or {"kind": "area"}. Without that key, a model
/// imported from the authors' code (metadata "provenance" present) takes the reference transform with
/// max_reso 512 when it is 512 px or larger (their ffhq512) and 256 otherwise; any other model takes
/// the area transform. `max_reso` is left unchanged for the area transform. Throws automod::Error for a
/// malformed "input_transform".
void modelInputTransform(const nlohmann::json& model_metadata, InputTransform& kind, int& max_reso);
/// The metadata value that records a transform ({"kind": "reference", "max_reso": N} or {"kind": "area"}).
nlohmann::json inputTransformJson(InputTransform kind, int max_reso);

/// Whether an alignment at `size` px (the model's resolution) leaves a square photo as it is: mapped
/// into the photo resized to size×size, every corner of the alignment square lies within
/// max(0.5 px, 1.5% of size) of the photo's corner, and its side is the photo's within 1.5%. False for
/// photos that are not square. 1.5%, not less: the landmarks found again in an aligned 256 px crop move
/// its corners by up to 0.9% and its side by up to 1.04% (measured on the test photos), so a tighter
/// bound would warp aligned photos again, by that noise.
bool alreadyAligned(const AlignTransform& alignment);

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
