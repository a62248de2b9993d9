#include "core/io/image.h"

#include <torch/nn/functional.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <streambuf>

#include "core/util/error.h"
#include "core/util/parallel.h"

#ifdef AUTOMOD_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#if __has_include(<png.h>) && __has_include(<jpeglib.h>)
#include <dlfcn.h>
#include <png.h>
#include <cstdio>  // jpeglib.h needs FILE
#include <jpeglib.h>
#include <jerror.h>
#endif
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
bool jpegIsTruncated(const uint8_t* b, size_t n) {
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

// Bounds-checked reads from the encoded bytes.
struct ByteReader {
  const uint8_t* data;
  size_t size;
  bool read(size_t at, size_t n, unsigned char* out) const {
    if (at > size || n > size - at) return false;
    std::memcpy(out, data + at, n);
    return true;
  }
};

// The EXIF Orientation (1–8) from the TIFF structure at `base` (the payload of an EXIF block):
// tag 0x0112 in the first IFD. 1 (upright) when absent or unreadable.
int tiffOrientation(const ByteReader& in, size_t base) {
  unsigned char h[8];
  if (!in.read(base, 8, h)) return 1;
  const bool le = h[0] == 'I' && h[1] == 'I';
  if (!le && !(h[0] == 'M' && h[1] == 'M')) return 1;
  auto u16 = [&](const unsigned char* p) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; };
  auto u32 = [&](const unsigned char* p) { return uint32_t(le ? u16(p) | u16(p + 2) << 16 : u16(p) << 16 | u16(p + 2)); };
  if (u16(h + 2) != 42) return 1;  // BigTIFF (43) and others: assume upright
  size_t at = base + size_t(u32(h + 4));
  unsigned char n2[2];
  if (!in.read(at, 2, n2)) return 1;
  at += 2;
  for (int i = 0, n = u16(n2); i < n && i < 1000; ++i, at += 12) {
    unsigned char e[12];
    if (!in.read(at, 12, e)) return 1;
    if (u16(e) == 0x0112) {
      const int v = u16(e + 8);  // SHORT, stored in the first two bytes of the value field
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

enum class Format { Unknown, Jpeg, Png, Webp, Tiff, Bmp, Pnm };

// Largest image decoded (RGB: 750 MB, and a few copies on the way to a tensor).
constexpr uint64_t kMaxImagePixels = 250'000'000;

// The container, from its signature (the file name's extension may lie).
Format sniff(const uint8_t* b, size_t n) {
  static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 8 && std::memcmp(b, png, 8) == 0) return Format::Png;
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Format::Jpeg;
  if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0) return Format::Webp;
  if (n >= 4 && (std::memcmp(b, "II*\0", 4) == 0 || std::memcmp(b, "MM\0*", 4) == 0)) return Format::Tiff;
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return Format::Bmp;
  if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6') return Format::Pnm;
  return Format::Unknown;
}

// Width × height from a PNG's IHDR or a JPEG's start-of-frame, before anything is decoded; {0, 0} when
// not found (other formats: OpenCV refuses more than 2^30 pixels itself).
std::pair<uint64_t, uint64_t> declaredSize(const uint8_t* b, size_t n, Format format) {
  if (format == Format::Png && n >= 24)
    return {uint64_t(b[16]) << 24 | uint64_t(b[17]) << 16 | uint64_t(b[18]) << 8 | b[19],
            uint64_t(b[20]) << 24 | uint64_t(b[21]) << 16 | uint64_t(b[22]) << 8 | b[23]};
  if (format == Format::Jpeg) {
    size_t i = 2;
    while (i + 9 <= n && b[i] == 0xFF) {
      const unsigned char m = b[i + 1];
      if (m == 0xFF) { ++i; continue; }
      const size_t len = (size_t(b[i + 2]) << 8) | b[i + 3];
      const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
      if (sof) return {(uint64_t(b[i + 7]) << 8) | b[i + 8], (uint64_t(b[i + 5]) << 8) | b[i + 6]};
      if (m == 0xDA || m == 0xD9 || len < 2) break;
      i += 2 + len;
    }
  }
  return {0, 0};
}

// EXIF orientation of a PNG (eXIf chunk) or WebP (EXIF chunk), found by walking the container's chunk
// headers (never the pixel data). OpenCV 4.6 applies EXIF orientation only to JPEGs, and not at all
// when decoding with IMREAD_UNCHANGED, which keeps alpha.
int containerOrientation(const ByteReader& in, Format format) {
  if (format == Format::Png) {
    size_t at = 8;
    for (int i = 0; i < 100000; ++i) {
      unsigned char c[8];
      if (!in.read(at, 8, c)) return 1;
      const uint32_t len = uint32_t(c[0]) << 24 | uint32_t(c[1]) << 16 | uint32_t(c[2]) << 8 | c[3];
      if (std::memcmp(c + 4, "eXIf", 4) == 0) return tiffOrientation(in, at + 8);
      if (std::memcmp(c + 4, "IEND", 4) == 0) return 1;
      at += 12 + size_t(len);
    }
    return 1;
  }
  if (format == Format::Webp) {
    size_t at = 12;
    for (int i = 0; i < 1000; ++i) {
      unsigned char c[8];
      if (!in.read(at, 8, c)) return 1;
      const uint32_t len = c[4] | c[5] << 8 | c[6] << 16 | uint32_t(c[7]) << 24;
      if (std::memcmp(c, "EXIF", 4) == 0) {
        unsigned char exif[6] = {};  // some writers keep JPEG's "Exif\0\0" prefix
        in.read(at + 8, 6, exif);
        return tiffOrientation(in, at + 8 + (std::memcmp(exif, "Exif", 4) == 0 ? 6 : 0));
      }
      at += 8 + size_t(len) + (len & 1);
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

#ifdef AUTOMOD_HAVE_OPENCV
namespace {
// What libpng and libjpeg said while this thread decoded its last image: kept for --verbose, never
// printed by the libraries themselves (see the handlers below).
std::string& codecMessages() {
  thread_local std::string messages;
  return messages;
}
// Whether libjpeg reported damaged image data while this thread decoded its last image.
bool& codecDamage() {
  thread_local bool damaged = false;
  return damaged;
}
// std::cerr's buffer, replaced once at start-up: OpenCV prints its decoders' exceptions to std::cerr
// ("imdecode_(''): can't read data: OpenCV(4.6.0) …") and catches them. While a thread decodes, what it
// writes to std::cerr goes to that thread's codec messages instead; every other write (any thread's
// own messages, this thread's outside decoding) passes through unchanged.
class DecodingQuietStderr : public std::streambuf {
 public:
  explicit DecodingQuietStderr(std::streambuf* out) : out_(out) {}
  /// Non-null while this thread decodes: where its std::cerr output goes.
  static std::string*& capture() {
    thread_local std::string* target = nullptr;
    return target;
  }

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    if (auto* t = capture()) {
      t->push_back(traits_type::to_char_type(c));
      return c;
    }
    return out_->sputc(traits_type::to_char_type(c));
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (auto* t = capture()) {
      t->append(s, static_cast<size_t>(n));
      return n;
    }
    return out_->sputn(s, n);
  }
  int sync() override { return capture() ? 0 : out_->pubsync(); }

 private:
  std::streambuf* out_;
};

// Installed before main() (no other thread can be writing yet) and never destroyed, since std::cerr
// outlives every static object.
const bool kQuietStderrInstalled = [] {
  std::cerr.rdbuf(new DecodingQuietStderr(std::cerr.rdbuf()));
  return true;
}();

// While alive, this thread's std::cerr output is collected instead of printed.
class QuietDecoding {
 public:
  explicit QuietDecoding(std::string& into) : previous_(DecodingQuietStderr::capture()) {
    DecodingQuietStderr::capture() = &into;
  }
  ~QuietDecoding() { DecodingQuietStderr::capture() = previous_; }
  QuietDecoding(const QuietDecoding&) = delete;
  QuietDecoding& operator=(const QuietDecoding&) = delete;

 private:
  std::string* previous_;
};

void noteCodecMessage(const char* library, const char* text) {
  auto& m = codecMessages();
  if (m.size() > 4096) return;
  if (!m.empty()) m += "; ";
  m += std::string(library) + ": " + text;
}
}  // namespace
#endif

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
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string() + ": no permission");
  in.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(std::max<std::streamoff>(0, in.tellg()));
  in.seekg(0);
  std::vector<uint8_t> bytes;
  try {
    bytes.resize(size);
  } catch (const std::exception& e) {
    throw Error(outOfMemoryMessage(e, "read " + path.string() + " (" + byteCount(size) + ")"), errorDetail(e));
  }
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw Error("cannot read " + path.string() + ": a read error occurred");
  return decodeImage(bytes.data(), bytes.size(), path.string(), channels);
#else
  return toChannels(readPnm(path), channels);
#endif
}

#ifdef AUTOMOD_HAVE_OPENCV
torch::Tensor decodeImage(const uint8_t* data, size_t size, const std::string& name, int channels) {
  TORCH_CHECK(channels == 1 || channels == 3, "decodeImage: channels must be 1 or 3");
  const std::string unreadable = "cannot read " + name + ": the file is not an image or is damaged";
  if (size == 0) throw Error("cannot read " + name + ": the file is empty");
  const Format format = sniff(data, size);
  // Only the formats isImageFile() names: OpenCV would also try JPEG 2000, HDR, PFM, Sun raster... by
  // content, whatever the file is called, and each decoder is more code a crafted file can reach.
  if (format == Format::Unknown)
    throw Error(unreadable + " (JPEG, PNG, WebP, BMP, TIFF, PPM and PGM are read)");
  // A few kilobytes can declare a gigapixel image (a decompression bomb): refuse before decoding.
  if (auto [dw, dh] = declaredSize(data, size, format); dw * dh > kMaxImagePixels)
    throw Error("cannot read " + name + ": the image is " + std::to_string(dw) + " × " + std::to_string(dh) +
                " pixels (" + std::to_string(dw * dh / 1000000) + " MP); images of at most " +
                std::to_string(kMaxImagePixels / 1000000) + " MP are read");
  cv::Mat m;
  codecMessages().clear();
  codecDamage() = false;
  std::string printed;  // what OpenCV writes to std::cerr meanwhile (see DecodingQuietStderr)
  QuietDecoding quiet(printed);
  // The library's words, for --verbose: libpng's and libjpeg's messages, then OpenCV's.
  auto detail = [&] {
    std::string d = codecMessages();
    while (!printed.empty() && (printed.back() == '\n' || printed.back() == ' ')) printed.pop_back();
    if (!printed.empty()) d += (d.empty() ? "" : "; ") + printed;
    return d;
  };
  try {
    const cv::Mat encoded(1, static_cast<int>(std::min<size_t>(size, INT_MAX)), CV_8UC1, const_cast<uint8_t*>(data));
    // PNG, WebP and TIFF may have alpha, which IMREAD_UNCHANGED keeps (composited below). IMREAD_COLOR
    // applies a JPEG's EXIF orientation and converts CMYK (Adobe, inverted), grey and 16-bit data.
    const bool may_have_alpha = format == Format::Png || format == Format::Webp || format == Format::Tiff;
    m = cv::imdecode(encoded, may_have_alpha ? cv::IMREAD_UNCHANGED : cv::IMREAD_COLOR);
  } catch (const std::exception& e) {
    if (isOutOfMemory(e)) throw Error(outOfMemoryMessage(e, "decode " + name), errorDetail(e));
    throw Error(unreadable, errorDetail(e));
  }
  if (m.empty()) throw Error(unreadable, detail());
  // IMREAD_UNCHANGED (kept for alpha) skips the EXIF orientation, so apply it here. TIFFs need nothing:
  // OpenCV's TIFF decoder (libtiff's RGBA reader) already returns them upright.
  if (format == Format::Png || format == Format::Webp) applyOrientation(m, containerOrientation({data, size}, format));
  if (format == Format::Jpeg && jpegIsTruncated(data, size))
    throw Error("cannot read " + name + ": the file is truncated", detail());
  if (codecDamage()) throw Error("cannot read " + name + ": the file is damaged (part of its image data is corrupt)", detail());
  try {
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
    } else {
      throw Error("cannot read " + name + ": images with " + std::to_string(m.channels()) + " channels are not supported");
    }
  } catch (const cv::Exception& e) {
    throw Error(unreadable, errorDetail(e));
  }
  auto t = torch::from_blob(m.data, {m.rows, m.cols, 3}, {static_cast<int64_t>(m.step[0]), 3, 1}, torch::kUInt8).clone();
  return toChannels(t, channels);
}
#else
torch::Tensor decodeImage(const uint8_t*, size_t, const std::string& name, int) {
  throw Error("cannot read " + name + ": this build has no OpenCV; use a .ppm or .pgm file");
}
#endif

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

namespace {

// Pillow's resampling (libImaging/Resample.c: precompute_coeffs with the bilinear filter, then
// normalize_coeffs_8bpc) for one axis: output pixel i reads `count[i]` input pixels from `first[i]`
// with weights in Pillow's fixed point, PRECISION_BITS = 32 − 8 − 2.
constexpr int kPillowBits = 22;

struct PillowAxis {
  int taps = 0;  // weights per output pixel (Pillow's ksize)
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // [out, taps]
};

PillowAxis pillowBilinearAxis(int in_size, int out_size) {
  PillowAxis a;
  // Pillow's box is (0, in_size) as floats; scale = in / out, and the filter widens by it when shrinking.
  const double scale = double(float(in_size) - 0.0f) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // the bilinear (triangle) filter reaches ±1
  const double ss = 1.0 / filterscale;        // multiplied, not divided, as Pillow does
  a.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  a.first.resize(out_size);
  a.count.resize(out_size);
  a.weights.assign(size_t(out_size) * a.taps, 0);
  std::vector<double> k(a.taps);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    // Pillow "rounds" by adding 0.5 and truncating towards zero.
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    const int n = std::max(hi - lo, 0);
    double sum = 0.0;
    for (int x = 0; x < n; ++x) {
      const double t = std::abs((x + lo - center + 0.5) * ss);
      k[x] = t < 1.0 ? 1.0 - t : 0.0;
      sum += k[x];
    }
    a.first[i] = lo;
    a.count[i] = n;
    int32_t* w = &a.weights[size_t(i) * a.taps];
    for (int x = 0; x < n; ++x) {
      const double v = sum != 0.0 ? k[x] / sum : k[x];
      w[x] = static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPillowBits) : 0.5 + v * (1 << kPillowBits));
    }
  }
  return a;
}

// Pillow's clip8: the accumulator (with its rounding half already added) shifted back to 8 bits.
inline uint8_t pillowClip8(int32_t acc) {
  const int32_t v = acc >> kPillowBits;  // arithmetic shift, as in Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// The window [x0, x1) × [y0, y1) of Pillow's bilinear resize of `image` (uint8 [H, W, C], contiguous) to
// out_w × out_h. Computing only a window gives the same pixels as resizing everything and cropping.
torch::Tensor pillowResizeWindow(const torch::Tensor& image, int out_w, int out_h, int x0, int x1, int y0, int y1) {
  const int H = static_cast<int>(image.size(0)), W = static_cast<int>(image.size(1)), C = static_cast<int>(image.size(2));
  const bool horizontal = out_w != W, vertical = out_h != H;
  const PillowAxis ax = pillowBilinearAxis(W, out_w), ay = pillowBilinearAxis(H, out_h);
  // Rows of the input the vertical pass reads (all of the window's rows when there is no vertical pass).
  int r0 = y0, r1 = y1;
  if (vertical) {
    r0 = H, r1 = 0;
    for (int j = y0; j < y1; ++j) r0 = std::min(r0, ay.first[j]), r1 = std::max(r1, ay.first[j] + ay.count[j]);
    r1 = std::max(r1, r0);
  }
  // Horizontal pass over those rows: [r1 − r0, x1 − x0, C].
  torch::Tensor mid;
  if (horizontal) {
    mid = torch::empty({r1 - r0, x1 - x0, C}, torch::kUInt8);
    const uint8_t* in = image.data_ptr<uint8_t>();
    uint8_t* out = mid.data_ptr<uint8_t>();
    parallelFor(0, r1 - r0, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const uint8_t* row = in + (size_t(r0 + r) * W) * C;
        uint8_t* o = out + size_t(r) * (x1 - x0) * C;
        for (int i = x0; i < x1; ++i) {
          const int32_t* w = &ax.weights[size_t(i) * ax.taps];
          const uint8_t* p = row + size_t(ax.first[i]) * C;
          for (int c = 0; c < C; ++c) {
            int32_t acc = 1 << (kPillowBits - 1);
            for (int x = 0; x < ax.count[i]; ++x) acc += int32_t(p[x * C + c]) * w[x];
            o[(i - x0) * C + c] = pillowClip8(acc);
          }
        }
      }
    });
  } else {
    mid = image.narrow(0, r0, r1 - r0).narrow(1, x0, x1 - x0).contiguous();
  }
  if (!vertical) return mid;
  // Vertical pass: output rows y0..y1 from the horizontally resampled rows r0..r1.
  auto result = torch::empty({y1 - y0, x1 - x0, C}, torch::kUInt8);
  const uint8_t* in = mid.data_ptr<uint8_t>();
  uint8_t* out = result.data_ptr<uint8_t>();
  const int64_t stride = int64_t(x1 - x0) * C;
  parallelFor(y0, y1, 16, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const int32_t* w = &ay.weights[size_t(j) * ay.taps];
      const uint8_t* base = in + (ay.first[j] - r0) * stride;
      uint8_t* o = out + (j - y0) * stride;
      for (int64_t e = 0; e < stride; ++e) {
        int32_t acc = 1 << (kPillowBits - 1);
        for (int y = 0; y < ay.count[j]; ++y) acc += int32_t(base[y * stride + e]) * w[y];
        o[e] = pillowClip8(acc);
      }
    }
  });
  return result;
}

void checkPillowInput(const torch::Tensor& image, const char* what) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8 && image.size(0) > 0 && image.size(1) > 0,
              what, " expects uint8 [H, W, C], got ", image.sizes());
}

}  // namespace

torch::Tensor resizePillowBilinear(const torch::Tensor& image, int width, int height) {
  checkPillowInput(image, "resizePillowBilinear");
  TORCH_CHECK(width > 0 && height > 0, "resizePillowBilinear: the size must be positive");
  return pillowResizeWindow(image.contiguous(), width, height, 0, width, 0, height);
}

torch::Tensor referenceInputTransform(const torch::Tensor& image_in, int max_reso, int resolution) {
  checkPillowInput(image_in, "referenceInputTransform");
  TORCH_CHECK(max_reso > 0 && resolution > 0, "referenceInputTransform: sizes must be positive");
  auto image = image_in.contiguous();
  const int64_t h = image.size(0), w = image.size(1);
  // torchvision's Resize(int): the shorter side to max_reso, the longer to int(max_reso·long / short)
  // (a true division, then truncated).
  int64_t nw = max_reso, nh = max_reso;
  if (w < h) nh = static_cast<int64_t>(double(int64_t(max_reso) * h) / double(w));
  else nw = static_cast<int64_t>(double(int64_t(max_reso) * w) / double(h));
  // CenterCrop(max_reso): offsets int(round((size − max_reso) / 2.0)), Python's round (half to even,
  // which std::nearbyint does in the default rounding mode).
  const int top = static_cast<int>(std::nearbyint((nh - max_reso) / 2.0));
  const int left = static_cast<int>(std::nearbyint((nw - max_reso) / 2.0));
  auto square = pillowResizeWindow(image, int(nw), int(nh), left, left + max_reso, top, top + max_reso);
  if (resolution == max_reso) return square;
  return pillowResizeWindow(square, resolution, resolution, 0, resolution, 0, resolution);
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

// ---------------------------------------------------------------------------------------------------
// Quiet image libraries. OpenCV decodes PNGs and JPEGs with libpng's and libjpeg's default message
// handlers, which print to stderr ("libpng warning: iCCP: known incorrect sRGB profile", "Corrupt JPEG
// data: …") — from any thread, mixed into our own output. OpenCV offers no way to set handlers, so this
// program defines the two functions through which those handlers are installed, png_create_read_struct
// and jpeg_std_error: the dynamic linker binds OpenCV's (and dlib's) calls to these definitions, which
// call the library's own and replace only the handlers that would print. The messages go to a
// thread-local note shown with --verbose; errors still stop the decoder (libpng's longjmp, OpenCV's
// error_exit for libjpeg), so OpenCV reports failures exactly as before. No global state is touched,
// so decoding on several threads at once is safe, and nothing of ours is ever redirected.
#if defined(AUTOMOD_HAVE_OPENCV) && __has_include(<png.h>) && __has_include(<jpeglib.h>)
extern "C" {

static void automodPngError(png_structp png, png_const_charp message) {
  automod::noteCodecMessage("libpng error", message);
  png_longjmp(png, 1);
}

static void automodPngWarning(png_structp, png_const_charp message) { automod::noteCodecMessage("libpng warning", message); }

png_structp png_create_read_struct(png_const_charp user_png_ver, png_voidp error_ptr, png_error_ptr error_fn,
                                   png_error_ptr warn_fn) {
  using Fn = png_structp (*)(png_const_charp, png_voidp, png_error_ptr, png_error_ptr);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "png_create_read_struct"));
  if (!real) return nullptr;  // cannot happen: only code linked against libpng calls this
  return real(user_png_ver, error_ptr, error_fn ? error_fn : automodPngError, warn_fn ? warn_fn : automodPngWarning);
}

static void automodJpegMessage(j_common_ptr cinfo) {
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  automod::noteCodecMessage("libjpeg", text);
}

// libjpeg's emit_message, which reports only a file's first warning; this one also notes whether a
// warning means damaged image data (decoded as grey or garbage blocks rather than refused).
static void automodJpegEmit(j_common_ptr cinfo, int level) {
  auto* err = cinfo->err;
  if (level < 0) {
    switch (err->msg_code) {
      case JWRN_HIT_MARKER:       // "Corrupt JPEG data: premature end of data segment"
      case JWRN_HUFF_BAD_CODE:    // "Corrupt JPEG data: bad Huffman code"
      case JWRN_MUST_RESYNC:      // "Corrupt JPEG data: found marker ... instead of RST"
      case JWRN_JPEG_EOF:         // "Premature end of JPEG file"
        automod::codecDamage() = true;
        break;
      case JWRN_EXTRANEOUS_DATA:  // "Corrupt JPEG data: N extraneous bytes before marker": a few bytes of
                                  // padding are common and harmless; hundreds mean the decoder lost its place
        if (err->msg_parm.i[0] > 256) automod::codecDamage() = true;
        break;
      default: break;
    }
    if (err->num_warnings++ < 8) automodJpegMessage(cinfo);
  } else if (err->trace_level >= level) {
    automodJpegMessage(cinfo);
  }
}

struct jpeg_error_mgr* jpeg_std_error(struct jpeg_error_mgr* err) {
  using Fn = struct jpeg_error_mgr* (*)(struct jpeg_error_mgr*);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "jpeg_std_error"));
  if (!real) return err;
  real(err);
  err->output_message = automodJpegMessage;
  err->emit_message = automodJpegEmit;
  return err;
}

}  // extern "C"
#endif
