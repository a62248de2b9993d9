#pragma once
// A user's photo → a square image the model can encode. With face alignment built in (dlib), the
// face is found and FFHQ-aligned; otherwise (or when asked) the photo is center-cropped. This is
// the one entry point the editing engine, the CLI and the GUI use to bring a photo in.
#include <torch/types.h>

#include <filesystem>
#include <string>

namespace automod {

struct PhotoOptions {
  /// Align the face (needs dlib); false = plain center crop.
  bool align = true;
  /// Which face when there are several: -1 = the largest.
  int face = -1;
  /// When no face is found: center-crop instead of failing.
  bool center_crop_fallback = false;
};

struct PreparedPhoto {
  /// uint8 [size, size, channels].
  torch::Tensor image;
  /// True when a face was found and aligned.
  bool aligned = false;
  /// A note for the user ("no face found; center-cropped"), empty when there is nothing to say.
  std::string note;
};

/// Whether this build can align faces.
bool alignmentAvailable();

/// Reads and prepares a photo; throws automod::Error for unreadable files, and for photos without
/// a face when alignment is on and center_crop_fallback is off.
PreparedPhoto preparePhoto(const std::filesystem::path& path, int size, int channels, const PhotoOptions& options = {});

}  // namespace automod
