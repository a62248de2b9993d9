#pragma once
// Image files in and out, and the conversions between 8-bit images and model tensors.
// Decoding and encoding go through OpenCV when it is built in (JPEG, PNG, WebP, BMP, TIFF...);
// without it only binary PPM/PGM are supported. Resizing uses LibTorch, so it works everywhere.
#include <torch/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace automod {

/// Reads an image as uint8 [H, W, channels] (channels 3 = RGB, 1 = grey). Applies EXIF
/// orientation (JPEG, PNG eXIf, TIFF, WebP), converts grey/CMYK/16-bit, composites alpha over white. Throws automod::Error with
/// the file name and reason for unreadable, truncated or non-image files.
torch::Tensor readImage(const std::filesystem::path& path, int channels = 3);
/// The same from the encoded bytes of an image file (format from its signature, not its name); `name`
/// is used in messages. libpng's and libjpeg's own messages never reach stderr: an error's detail()
/// keeps them for --verbose. Needs OpenCV (otherwise throws automod::Error).
torch::Tensor decodeImage(const uint8_t* data, size_t size, const std::string& name, int channels = 3);

/// Writes uint8 [H, W, C] (C = 1 or 3, RGB). The format follows the extension (.png, .jpg, ...).
void writeImage(const std::filesystem::path& path, const torch::Tensor& image);

/// Whether the extension is one we read as an image (jpg, jpeg, png, webp, bmp, tif, tiff, ppm, pgm).
bool isImageFile(const std::filesystem::path& path);

/// Center crop to a square, then area-resize to size×size. uint8 [H, W, C] in and out.
torch::Tensor centerCropResize(const torch::Tensor& image, int size);
/// Area (or bilinear, when enlarging) resize of uint8 [H, W, C] to w×h.
torch::Tensor resizeImage(const torch::Tensor& image, int width, int height);

/// Pillow's `Image.resize((width, height), Image.BILINEAR)` of uint8 [H, W, C], to the bit: a triangle
/// filter whose support grows with the reduction (so shrinking antialiases), coefficients normalised per
/// output pixel and rounded to Pillow's 22-bit fixed point, one pass per axis (horizontal, then
/// vertical; an axis whose size does not change is not touched), each pass rounding and clipping to
/// 8 bits. This is what torchvision's Resize does to a PIL image (it passes no reducing_gap, so Pillow's
/// reduce() shortcut never runs).
torch::Tensor resizePillowBilinear(const torch::Tensor& image, int width, int height);

/// The authors' input transform (their Session.tf(): torchvision Resize(max_reso), CenterCrop(max_reso),
/// Resize(resolution), on a PIL image): the shorter side to max_reso (the longer to
/// int(max_reso·long/short)) with resizePillowBilinear, the centred max_reso square (offsets rounded as
/// torchvision does: round half to even), then resolution×resolution. uint8 [H, W, C] in and out;
/// toModelInput of the result is their ToTensor + Normalize(0.5, 0.5) to float rounding.
torch::Tensor referenceInputTransform(const torch::Tensor& image, int max_reso, int resolution);

/// uint8 [H, W, C] (or a batch [N, H, W, C]) → float [N, C, H, W] in [−1, 1].
torch::Tensor toModelInput(const torch::Tensor& images);
/// float [N, C, H, W] (or [C, H, W]) in [−1, 1] → uint8 [N, H, W, C] (or [H, W, C]), clamped.
torch::Tensor toImage(const torch::Tensor& model_output);

/// Tiles uint8 [N, H, W, C] images into a grid with `cols` columns and `pad` pixels of padding.
torch::Tensor makeGrid(const torch::Tensor& images, int cols, int pad = 2, uint8_t background = 255);

}  // namespace automod
