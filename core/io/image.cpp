#include "core/io/image.h"

#include <torch/nn/functional.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include "core/util/error.h"

#ifdef AUTOMOD_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace automod {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

std::string lowerExt(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

torch::Tensor toChannels(torch::Tensor img, int channels) {
  const int64_t c = img.size(2);
  if (c == channels) return img;
  if (channels == 3 && c == 1) return img.expand({-1, -1, 3}).contiguous();
  if (channels == 1 && c == 3) {
    auto f = img.to(torch::kFloat32);
    auto g = f.select(2, 0) * 0.299 + f.select(2, 1) * 0.587 + f.select(2, 2) * 0.114;
    return g.round().clamp(0, 255).to(torch::kUInt8).unsqueeze(2).contiguous();
  }
  throw Error("cannot convert an image with " + std::to_string(c) + " channels");
}

// Minimal binary PPM/PGM support, used when OpenCV is not built in.
torch::Tensor readPnm(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  std::string magic;
  int w = 0, h = 0, maxv = 0;
  in >> magic >> w >> h >> maxv;
  in.get();
  if ((magic != "P6" && magic != "P5") || w <= 0 || h <= 0 || maxv != 255)
    throw Error("cannot read " + path.string() + ": only 8-bit binary PPM/PGM are supported without OpenCV");
  const int c = magic == "P6" ? 3 : 1;
  auto t = torch::empty({h, w, c}, torch::kUInt8);
  in.read(reinterpret_cast<char*>(t.data_ptr<uint8_t>()), static_cast<std::streamsize>(t.numel()));
  if (!in) throw Error("cannot read " + path.string() + ": the file is truncated");
  return t;
}

void writePnm(const fs::path& path, const torch::Tensor& img) {
  std::ofstream out(path, std::ios::binary);
  const int c = static_cast<int>(img.size(2));
  out << (c == 3 ? "P6" : "P5") << "\n" << img.size(1) << " " << img.size(0) << "\n255\n";
  out.write(reinterpret_cast<const char*>(img.data_ptr<uint8_t>()), static_cast<std::streamsize>(img.numel()));
  if (!out) throw Error("cannot write " + path.string());
}

#ifdef AUTOMOD_HAVE_OPENCV
// libjpeg decodes a truncated JPEG without an error (the missing part comes out grey), so look for the
// end-of-image marker after the first top-level start-of-scan (entropy-coded data never holds FF D9).
bool jpegIsTruncated(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* b = reinterpret_cast<const unsigned char*>(buf.data());
  const size_t n = buf.size();
  if (n < 4 || b[0] != 0xFF || b[1] != 0xD8) return false;  // not a JPEG; leave it to the decoder
  size_t i = 2;
  while (i + 4 <= n) {
    if (b[i] != 0xFF) return false;  // unexpected layout; trust the decoder
    const unsigned char m = b[i + 1];
    if (m == 0xFF) { ++i; continue; }
    if (m == 0xD9) return false;
    const size_t len = (size_t(b[i + 2]) << 8) | b[i + 3];
    if (m == 0xDA) {
      for (size_t k = i + 2 + len; k + 1 < n; ++k)
        if (b[k] == 0xFF && b[k + 1] == 0xD9) return false;
      return true;
    }
    i += 2 + len;
  }
  return true;
}

// The EXIF Orientation (1–8) from the TIFF structure at `base` (the payload of an EXIF block):
// tag 0x0112 in the first IFD. 1 (upright) when absent or unreadable.
int tiffOrientation(std::istream& in, std::streamoff base) {
  unsigned char h[8];
  in.seekg(base);
  if (!in.read(reinterpret_cast<char*>(h), 8)) return 1;
  const bool le = h[0] == 'I' && h[1] == 'I';
  if (!le && !(h[0] == 'M' && h[1] == 'M')) return 1;
  auto u16 = [&](const unsigned char* p) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; };
  auto u32 = [&](const unsigned char* p) { return uint32_t(le ? u16(p) | u16(p + 2) << 16 : u16(p) << 16 | u16(p + 2)); };
  if (u16(h + 2) != 42) return 1;  // BigTIFF (43) and others: assume upright
  in.seekg(base + std::streamoff(u32(h + 4)));
  unsigned char n2[2];
  if (!in.read(reinterpret_cast<char*>(n2), 2)) return 1;
  for (int i = 0, n = u16(n2); i < n && i < 1000; ++i) {
    unsigned char e[12];
    if (!in.read(reinterpret_cast<char*>(e), 12)) return 1;
    if (u16(e) == 0x0112) {
      const int v = u16(e + 8);  // SHORT, stored in the first two bytes of the value field
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

// EXIF orientation of a PNG (eXIf chunk) or WebP (EXIF chunk) file, read by seeking through the
// container's chunk headers (never the pixel data). OpenCV 4.6 applies EXIF orientation only to JPEGs,
// and not at all when decoding with IMREAD_UNCHANGED, which keeps alpha.
int fileOrientation(const fs::path& path, const std::string& ext) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return 1;
  unsigned char h[12];
  if (!in.read(reinterpret_cast<char*>(h), 12)) return 1;
  if (ext == ".png") {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (!std::equal(sig, sig + 8, h)) return 1;
    std::streamoff at = 8;
    for (int i = 0; i < 100000; ++i) {
      unsigned char c[8];
      in.seekg(at);
      if (!in.read(reinterpret_cast<char*>(c), 8)) return 1;
      const uint32_t len = uint32_t(c[0]) << 24 | uint32_t(c[1]) << 16 | uint32_t(c[2]) << 8 | c[3];
      const std::string type(reinterpret_cast<const char*>(c + 4), 4);
      if (type == "eXIf") return tiffOrientation(in, at + 8);
      if (type == "IEND") return 1;
      at += 12 + std::streamoff(len);
    }
    return 1;
  }
  if (ext == ".webp") {
    if (std::string(reinterpret_cast<const char*>(h), 4) != "RIFF" || std::string(reinterpret_cast<const char*>(h + 8), 4) != "WEBP")
      return 1;
    std::streamoff at = 12;
    for (int i = 0; i < 1000; ++i) {
      unsigned char c[8];
      in.seekg(at);
      if (!in.read(reinterpret_cast<char*>(c), 8)) return 1;
      const uint32_t len = c[4] | c[5] << 8 | c[6] << 16 | uint32_t(c[7]) << 24;
      if (std::string(reinterpret_cast<const char*>(c), 4) == "EXIF") {
        char exif[6] = {};  // some writers keep JPEG's "Exif\0\0" prefix
        in.read(exif, 6);
        return tiffOrientation(in, at + 8 + (std::string(exif, 4) == "Exif" ? 6 : 0));
      }
      at += 8 + std::streamoff(len) + (len & 1);
    }
  }
  return 1;
}

// Turns stored pixels upright for EXIF orientation 1–8 (as OpenCV does for JPEGs).
void applyOrientation(cv::Mat& m, int orientation) {
  switch (orientation) {
    case 2: cv::flip(m, m, 1); break;
    case 3: cv::rotate(m, m, cv::ROTATE_180); break;
    case 4: cv::flip(m, m, 0); break;
    case 5: cv::transpose(m, m); break;
    case 6: cv::rotate(m, m, cv::ROTATE_90_CLOCKWISE); break;
    case 7: cv::transpose(m, m), cv::flip(m, m, -1); break;
    case 8: cv::rotate(m, m, cv::ROTATE_90_COUNTERCLOCKWISE); break;
    default: break;
  }
}
#endif

}  // namespace

bool isImageFile(const fs::path& path) {
  static const char* exts[] = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"};
  const auto e = lowerExt(path);
  return std::any_of(std::begin(exts), std::end(exts), [&](const char* x) { return e == x; });
}

torch::Tensor readImage(const fs::path& path, int channels) {
  TORCH_CHECK(channels == 1 || channels == 3, "readImage: channels must be 1 or 3");
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("cannot read " + path.string() + ": no such file");
  if (fs::is_directory(path, ec)) throw Error("cannot read " + path.string() + ": it is a folder");
#ifdef AUTOMOD_HAVE_OPENCV
  const auto ext = lowerExt(path);
  cv::Mat m;
  const bool may_have_alpha = ext == ".png" || ext == ".webp" || ext == ".tif" || ext == ".tiff";
  try {
    if (may_have_alpha) {
      m = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
    } else {
      // IMREAD_COLOR applies a JPEG's EXIF orientation and converts CMYK (Adobe, inverted), grey and
      // 16-bit data.
      m = cv::imread(path.string(), cv::IMREAD_COLOR);
    }
  } catch (const cv::Exception& e) {
    throw Error("cannot read " + path.string() + ": " + e.what());
  }
  if (m.empty()) throw Error("cannot read " + path.string() + ": not an image, or the file is damaged");
  // IMREAD_UNCHANGED (kept for alpha) skips the EXIF orientation, so apply it here. TIFFs need nothing:
  // OpenCV's TIFF decoder (libtiff's RGBA reader) already returns them upright.
  if (ext == ".png" || ext == ".webp") applyOrientation(m, fileOrientation(path, ext));
  if ((ext == ".jpg" || ext == ".jpeg") && jpegIsTruncated(path))
    throw Error("cannot read " + path.string() + ": the file is truncated");
  if (m.depth() == CV_16U) m.convertTo(m, CV_8U, 1.0 / 257.0);
  else if (m.depth() == CV_32F) m.convertTo(m, CV_8U, 255.0);
  else if (m.depth() != CV_8U) m.convertTo(m, CV_8U);
  if (m.channels() == 4) {
    // Composite over white so transparent areas do not turn black.
    cv::Mat bgr(m.rows, m.cols, CV_8UC3);
    for (int y = 0; y < m.rows; ++y) {
      const auto* src = m.ptr<cv::Vec4b>(y);
      auto* dst = bgr.ptr<cv::Vec3b>(y);
      for (int x = 0; x < m.cols; ++x) {
        const int a = src[x][3];
        for (int k = 0; k < 3; ++k) dst[x][k] = static_cast<uint8_t>((src[x][k] * a + 255 * (255 - a) + 127) / 255);
      }
    }
    m = bgr;
  }
  if (m.channels() == 1) cv::cvtColor(m, m, cv::COLOR_GRAY2RGB);
  else if (m.channels() == 3) cv::cvtColor(m, m, cv::COLOR_BGR2RGB);
  else if (m.channels() == 2) {
    std::vector<cv::Mat> parts;
    cv::split(m, parts);
    cv::cvtColor(parts[0], m, cv::COLOR_GRAY2RGB);
  }
  auto t = torch::from_blob(m.data, {m.rows, m.cols, 3}, {static_cast<int64_t>(m.step[0]), 3, 1}, torch::kUInt8).clone();
  return toChannels(t, channels);
#else
  return toChannels(readPnm(path), channels);
#endif
}

void writeImage(const fs::path& path, const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8 && (image.size(2) == 1 || image.size(2) == 3),
              "writeImage expects uint8 [H, W, 1|3], got ", image.sizes());
  auto img = image.cpu().contiguous();
  if (!path.parent_path().empty()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
  }
#ifdef AUTOMOD_HAVE_OPENCV
  cv::Mat m(static_cast<int>(img.size(0)), static_cast<int>(img.size(1)), img.size(2) == 3 ? CV_8UC3 : CV_8UC1,
            img.data_ptr<uint8_t>());
  cv::Mat out;
  if (img.size(2) == 3) cv::cvtColor(m, out, cv::COLOR_RGB2BGR);
  else out = m;
  bool ok = false;
  try {
    ok = cv::imwrite(path.string(), out);
  } catch (const cv::Exception& e) {
    throw Error("cannot write " + path.string() + ": " + e.what());
  }
  if (!ok) throw Error("cannot write " + path.string() + " (unknown extension, no permission or disk full)");
#else
  const auto e = lowerExt(path);
  if (e != ".ppm" && e != ".pgm")
    throw Error("cannot write " + path.string() + ": this build has no OpenCV; use a .ppm or .pgm file name");
  writePnm(path, img);
#endif
}

torch::Tensor resizeImage(const torch::Tensor& image, int width, int height) {
  TORCH_CHECK(image.dim() == 3, "resizeImage expects [H, W, C]");
  if (image.size(0) == height && image.size(1) == width) return image;
  auto x = image.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32);
  const bool shrink = height <= image.size(0) && width <= image.size(1);
  auto opts = F::InterpolateFuncOptions().size(std::vector<int64_t>{height, width});
  if (shrink) opts.mode(torch::kArea);
  else opts.mode(torch::kBilinear).align_corners(false);
  auto y = F::interpolate(x, opts);
  return y.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

torch::Tensor centerCropResize(const torch::Tensor& image, int size) {
  const int64_t h = image.size(0), w = image.size(1), s = std::min(h, w);
  auto crop = image.narrow(0, (h - s) / 2, s).narrow(1, (w - s) / 2, s);
  return resizeImage(crop, size, size);
}

torch::Tensor toModelInput(const torch::Tensor& images) {
  auto x = images.dim() == 3 ? images.unsqueeze(0) : images;
  return x.permute({0, 3, 1, 2}).to(torch::kFloat32).div(127.5).sub(1.0).contiguous();
}

torch::Tensor toImage(const torch::Tensor& out) {
  const bool single = out.dim() == 3;
  auto x = single ? out.unsqueeze(0) : out;
  auto u8 = x.detach().to(torch::kCPU, torch::kFloat32).add(1.0).mul(127.5).round().clamp(0, 255).to(torch::kUInt8);
  u8 = u8.permute({0, 2, 3, 1}).contiguous();
  return single ? u8.squeeze(0) : u8;
}

torch::Tensor makeGrid(const torch::Tensor& images, int cols, int pad, uint8_t background) {
  TORCH_CHECK(images.dim() == 4, "makeGrid expects [N, H, W, C]");
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2), c = images.size(3);
  cols = std::max<int>(1, std::min<int64_t>(cols, n));
  const int64_t rows = (n + cols - 1) / cols;
  auto grid = torch::full({rows * (h + pad) + pad, cols * (w + pad) + pad, c}, background, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / cols, q = i % cols;
    grid.narrow(0, pad + r * (h + pad), h).narrow(1, pad + q * (w + pad), w).copy_(images[i]);
  }
  return grid;
}

}  // namespace automod
