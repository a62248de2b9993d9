// libFuzzer entry point for image files (decodeImage, what readImage runs on a file's bytes): every
// input must either decode to uint8 [H, W, C] or throw automod::Error, and nothing may reach stderr
// from libpng or libjpeg. OpenCV and the codec libraries are Debian's, not instrumented: the fuzzer
// steers by our code's coverage only, but their crashes and memory errors in our process are caught.
// Run with OPENCV_IO_MAX_IMAGE_PIXELS=16777216 (read when OpenCV loads) so that a TIFF or WebP header
// claiming a huge image stays within libFuzzer's memory limit; PNG and JPEG are bounded by our check.
#include <cstddef>
#include <cstdint>

#include "core/io/image.h"
#include "core/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const int channels = size % 2 == 0 ? 3 : 1;
    const auto img = automod::decodeImage(data, size, "fuzz", channels);
    if (img.dim() != 3 || img.size(2) != channels || img.scalar_type() != torch::kUInt8) __builtin_trap();
  } catch (const automod::Error&) {
  }
  return 0;
}
