#include "core/align/photo.h"

#include "core/io/image.h"

namespace automod {

// Until the dlib alignment lands, every photo is center-cropped.
bool alignmentAvailable() { return false; }

PreparedPhoto preparePhoto(const std::filesystem::path& path, int size, int channels, const PhotoOptions& options) {
  PreparedPhoto p;
  p.image = centerCropResize(readImage(path, channels), size);
  if (options.align) p.note = "face alignment is not built in; center-cropped";
  return p;
}

}  // namespace automod
