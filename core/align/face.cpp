#include "core/align/face.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "core/util/error.h"
#include "core/util/parallel.h"

#ifdef AUTOMOD_HAVE_OPENCV
#include <opencv2/imgproc.hpp>
#endif
#ifdef AUTOMOD_HAVE_DLIB
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/opencv/cv_image.h>
#endif

namespace automod {

namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::array<double, 6> invertAffine(const std::array<double, 6>& f) {
  const double det = f[0] * f[4] - f[1] * f[3];
  TORCH_CHECK(std::abs(det) > 1e-12, "alignment transform is singular");
  const double a = f[4] / det, b = -f[1] / det, c = -f[3] / det, d = f[0] / det;
  return {a, b, -(a * f[2] + b * f[5]), c, d, -(c * f[2] + d * f[5])};
}

Point2 applyAffine(const std::array<double, 6>& f, Point2 p) {
  return {f[0] * p.x + f[1] * p.y + f[2], f[3] * p.x + f[4] * p.y + f[5]};
}

void checkImage(const torch::Tensor& img, const char* what) {
  TORCH_CHECK(img.dim() == 3 && img.scalar_type() == torch::kUInt8 && (img.size(2) == 1 || img.size(2) == 3),
              what, " expects uint8 [H, W, 1|3], got ", img.sizes());
}

#ifdef AUTOMOD_HAVE_OPENCV
// A cv::Mat view of a contiguous uint8 [H, W, C] tensor (no copy).
cv::Mat matView(const torch::Tensor& t) {
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC(static_cast<int>(t.size(2))),
                 t.data_ptr<uint8_t>());
}
torch::Tensor toTensor(const cv::Mat& m) {
  return torch::from_blob(m.data, {m.rows, m.cols, m.channels()},
                          {static_cast<int64_t>(m.step[0]), m.channels(), 1}, torch::kUInt8)
      .clone();
}
cv::Mat cvAffine(const std::array<double, 6>& f) {
  return (cv::Mat_<double>(2, 3) << f[0], f[1], f[2], f[3], f[4], f[5]);
}
// Bounding box of the quad in the photo, grown by `margin`, clipped to the photo.
cv::Rect quadRoi(const AlignTransform& t, int width, int height, int margin) {
  double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
  for (auto& q : t.quad) {
    x0 = std::min(x0, q.x), y0 = std::min(y0, q.y), x1 = std::max(x1, q.x), y1 = std::max(y1, q.y);
  }
  const int l = std::max(0, static_cast<int>(std::floor(x0)) - margin);
  const int tp = std::max(0, static_cast<int>(std::floor(y0)) - margin);
  const int r = std::min(width, static_cast<int>(std::ceil(x1)) + margin + 1);
  const int b = std::min(height, static_cast<int>(std::ceil(y1)) + margin + 1);
  if (r <= l || b <= tp) return {};
  return {l, tp, r - l, b - tp};
}
#endif

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Transforms

Point2 AlignTransform::toCrop(Point2 p) const { return applyAffine(forward, p); }
Point2 AlignTransform::toPhoto(Point2 p) const { return applyAffine(inverse, p); }
double AlignTransform::quadSize() const { return std::hypot(quad[3].x - quad[0].x, quad[3].y - quad[0].y); }

nlohmann::json AlignTransform::toJson() const {
  nlohmann::json q = nlohmann::json::array();
  for (auto& p : quad) q.push_back({p.x, p.y});
  return {{"forward", forward},
          {"inverse", inverse},
          {"quad", q},
          {"crop_size", crop_size},
          {"photo_size", {photo_width, photo_height}}};
}

AlignTransform AlignTransform::fromJson(const nlohmann::json& j) {
  // A sidecar is a file a user can edit: every number is checked before it is converted (nlohmann's
  // get<int>() of 1e300 is undefined behaviour) and the matrices must be finite and invertible.
  auto size = [](const nlohmann::json& v, const char* what, int64_t max) {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > max)
      throw Error(std::string("malformed alignment transform: ") + what + " must be a whole number from 1 to " +
                  std::to_string(max));
    return static_cast<int>(v.get<int64_t>());
  };
  auto number = [](const nlohmann::json& v) {
    if (!v.is_number()) throw Error("malformed alignment transform: a coordinate is not a number");
    return v.get<double>();
  };
  try {
    AlignTransform t;
    const auto& f = j.at("forward");
    if (!f.is_array() || f.size() != 6) throw Error("malformed alignment transform: 'forward' must hold 6 numbers");
    for (int i = 0; i < 6; ++i) t.forward[i] = number(f[i]);
    if (!std::isfinite(t.forward[0] * t.forward[4] - t.forward[1] * t.forward[3]))
      throw Error("malformed alignment transform: its matrix cannot be inverted");
    t.inverse = invertAffine(t.forward);
    for (double v : t.inverse)
      if (!std::isfinite(v)) throw Error("malformed alignment transform: its matrix cannot be inverted");
    const auto& q = j.at("quad");
    for (int i = 0; i < 4; ++i) t.quad[i] = {number(q.at(i).at(0)), number(q.at(i).at(1))};
    t.crop_size = size(j.at("crop_size"), "crop_size", 16384);
    t.photo_width = size(j.at("photo_size").at(0), "the photo width", 1 << 20);
    t.photo_height = size(j.at("photo_size").at(1), "the photo height", 1 << 20);
    return t;
  } catch (const nlohmann::json::exception& e) {
    throw Error("malformed alignment transform: " + jsonErrorText(e), e.what());
  } catch (const c10::Error& e) {
    throw Error("malformed alignment transform: its matrix cannot be inverted", errorDetail(e));
  }
}

namespace {
// Builds the transform that maps quad corner c−x−y to the crop's top-left corner and c+x+y to its
// bottom-right (pixel-centre convention: crop corners are at −0.5 and S−0.5).
AlignTransform fromQuad(Point2 c, Point2 x, Point2 y, int size, int w, int h) {
  AlignTransform t;
  t.crop_size = size, t.photo_width = w, t.photo_height = h;
  t.quad = {Point2{c.x - x.x - y.x, c.y - x.y - y.y}, Point2{c.x - x.x + y.x, c.y - x.y + y.y},
            Point2{c.x + x.x + y.x, c.y + x.y + y.y}, Point2{c.x + x.x - y.x, c.y + x.y - y.y}};
  const double s2 = x.x * x.x + x.y * x.y;  // |x|² = |y|²
  const double k = size / 2.0 / s2;         // crop pixels per photo pixel, divided by |x|
  const double mid = (size - 1) / 2.0;
  // u = mid + k·(p − c)·x, v = mid + k·(p − c)·y
  t.forward = {k * x.x, k * x.y, mid - k * (c.x * x.x + c.y * x.y), k * y.x, k * y.y, mid - k * (c.x * y.x + c.y * y.y)};
  t.inverse = invertAffine(t.forward);
  return t;
}
}  // namespace

AlignTransform AlignTransform::ffhq(const std::vector<Point2>& lm, int size, int w, int h) {
  TORCH_CHECK(lm.size() == 68, "FFHQ alignment needs 68 landmarks, got ", lm.size());
  TORCH_CHECK(size > 0, "crop size must be positive");
  auto mean = [&](int a, int b) {
    Point2 m;
    for (int i = a; i < b; ++i) m.x += lm[i].x, m.y += lm[i].y;
    m.x /= (b - a), m.y /= (b - a);
    return m;
  };
  const Point2 eye_left = mean(36, 42), eye_right = mean(42, 48);
  const Point2 eye_avg{(eye_left.x + eye_right.x) / 2, (eye_left.y + eye_right.y) / 2};
  const Point2 eye_to_eye{eye_right.x - eye_left.x, eye_right.y - eye_left.y};
  const Point2 mouth_left = lm[48], mouth_right = lm[54];
  const Point2 mouth_avg{(mouth_left.x + mouth_right.x) / 2, (mouth_left.y + mouth_right.y) / 2};
  const Point2 eye_to_mouth{mouth_avg.x - eye_avg.x, mouth_avg.y - eye_avg.y};
  // rot90(v) = flipud(v)·[−1, 1] = (−v.y, v.x)
  Point2 x{eye_to_eye.x + eye_to_mouth.y, eye_to_eye.y - eye_to_mouth.x};
  const double xn = std::hypot(x.x, x.y);
  TORCH_CHECK(xn > 1e-9, "degenerate landmarks");
  const double scale = std::max(std::hypot(eye_to_eye.x, eye_to_eye.y) * 2.0,
                                std::hypot(eye_to_mouth.x, eye_to_mouth.y) * 1.8);
  x.x *= scale / xn, x.y *= scale / xn;
  const Point2 y{-x.y, x.x};
  const Point2 c{eye_avg.x + eye_to_mouth.x * 0.1, eye_avg.y + eye_to_mouth.y * 0.1};
  return fromQuad(c, x, y, size, w, h);
}

AlignTransform AlignTransform::celebaHQ(const std::vector<Point2>& lm, int size, int w, int h) {
  // Shifting both averages by +0.5 shifts the quad's centre by +0.5 and leaves its axes unchanged.
  auto shifted = lm;
  for (auto& p : shifted) p.x += 0.5, p.y += 0.5;
  return ffhq(shifted, size, w, h);
}

AlignTransform AlignTransform::centerCrop(int size, int w, int h) {
  TORCH_CHECK(size > 0 && w > 0 && h > 0, "center crop needs positive sizes");
  const double side = std::min(w, h);
  const Point2 c{(w - 1) / 2.0, (h - 1) / 2.0};
  return fromQuad(c, Point2{side / 2, 0}, Point2{0, side / 2}, size, w, h);
}

// ---------------------------------------------------------------------------------------------------
// Detection

std::string shapePredictorPath() {
  if (const char* env = std::getenv("AUTOMOD_SHAPE_PREDICTOR"); env && *env) return env;
  return "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
}

#ifdef AUTOMOD_HAVE_DLIB
namespace {

// The 68-point model (~100 MB) is read once per process and shared: shape_predictor::operator() is
// const and thread-safe.
const dlib::shape_predictor& shapePredictor() {
  static std::once_flag once;
  static dlib::shape_predictor sp;
  static std::string error;
  std::call_once(once, [] {
    const auto path = shapePredictorPath();
    try {
      if (!std::filesystem::exists(path)) throw Error("");
      dlib::deserialize(path) >> sp;
    } catch (...) {
      error = "cannot load the face landmark model " + path +
              " (install Debian's libdlib-data or set AUTOMOD_SHAPE_PREDICTOR)";
    }
  });
  if (!error.empty()) throw Error(error);
  return sp;
}

// The HOG detector keeps scratch buffers, so each thread has its own copy.
dlib::frontal_face_detector& faceDetector() {
  thread_local dlib::frontal_face_detector det = dlib::get_frontal_face_detector();
  return det;
}

// The same detector (all five of its filters) scanning only the image it is given, no pyramid: the
// small-face search builds its own levels and splits each into strips that threads scan in parallel.
dlib::frontal_face_detector& singleLevelDetector() {
  thread_local dlib::frontal_face_detector det = [] {
    const auto full = dlib::get_frontal_face_detector();
    dlib::frontal_face_detector::image_scanner_type scanner;
    scanner.copy_configuration(full.get_scanner());
    scanner.set_max_pyramid_levels(1);
    std::vector<dlib::frontal_face_detector::feature_vector_type> filters;
    for (unsigned long i = 0; i < full.num_detectors(); ++i) filters.push_back(full.get_w(i));
    return dlib::frontal_face_detector(scanner, full.get_overlap_tester(), filters);
  }();
  return det;
}

// The detector's window (80×80 px) and the scale step of its pyramid (pyramid_down<6>: 5/6 per level).
constexpr int kDetectorWindow = 80;
constexpr double kLevelStep = 5.0 / 6.0;

// dlib's 68-point predictor starts from the detector's box, and its landmarks follow that box: HOG
// boxes come in steps of 6/5 (the detector's pyramid), and the same face found one level up or down
// (e.g. once the photo is cut at the face's edge) gave a crop 9% larger or smaller and moved by
// several pixels. So the predictor is re-run from the square box around its own landmarks a few times
// (the box settles near a fixed point that does not depend on the detector's box) and the landmarks
// of the last kRefineAveraged runs are averaged, which also takes out their pixel rounding.
constexpr int kRefineRuns = 5, kRefineAveraged = 4;

// The smallest face box dlib's HOG detector reports, in pixels of the image it scans (its 80×80 window
// holds a face box of about 64–70 px; measured: a 46 px box is found at 1.6× and missed at 1.0×).
constexpr double kDetectorMinBox = 72;

template <typename Image>
std::vector<Point2> refinedLandmarks(const dlib::shape_predictor& sp, const Image& img, const dlib::rectangle& detected) {
  auto shape = sp(img, detected);
  const unsigned long n = shape.num_parts();
  std::vector<Point2> sum(n);
  for (int run = 0; run < kRefineRuns; ++run) {
    double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
    for (unsigned long i = 0; i < n; ++i) {
      const auto& p = shape.part(i);
      x0 = std::min<double>(x0, p.x()), x1 = std::max<double>(x1, p.x());
      y0 = std::min<double>(y0, p.y()), y1 = std::max<double>(y1, p.y());
    }
    const double cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, half = std::max(x1 - x0, y1 - y0) / 2;
    shape = sp(img, dlib::rectangle(std::lround(cx - half), std::lround(cy - half), std::lround(cx + half),
                                    std::lround(cy + half)));
    if (run >= kRefineRuns - kRefineAveraged)
      for (unsigned long i = 0; i < n; ++i) sum[i].x += shape.part(i).x(), sum[i].y += shape.part(i).y();
  }
  for (auto& p : sum) p.x /= kRefineAveraged, p.y /= kRefineAveraged;
  return sum;
}

// Where a face from min_face to max_face photo pixels across could be in a colour photo, as squares
// (photo pixels) around the face, best first. On an area-downscaled copy in which a min_face face is
// ~10 px across, square windows of each face size (steps of 1.3×, a quarter window apart) are scored
// by how much of them is skin (Chai & Ngan's YCrCb rule: Cr 133–173, Cb 77–127, not too dark) times
// how much detail they hold (mean gradient magnitude: eyes, brows and mouth are edges, a smooth
// skin-coloured wall is not); the best windows that do not overlap a better one are kept. Windows, not
// connected skin regions: a face joins the skin-coloured things around it (hair, a beige wall, an orange
// suit) into one region of no particular size. `colour` is false for a photo without colour
// (greyscale, or RGB with equal channels), where the rule says nothing.
std::vector<cv::Rect2d> skinWindows(const cv::Mat& rgb, double min_face, double max_face, int max_count,
                                    bool* colour) {
  *colour = false;
  if (rgb.channels() != 3 || max_count <= 0) return {};
  const double f = std::min(1.0, 10.0 / min_face);
  cv::Mat small, ycc, mask;
  cv::resize(rgb, small, cv::Size(std::max(1, int(std::lround(rgb.cols * f))), std::max(1, int(std::lround(rgb.rows * f)))),
             0, 0, cv::INTER_AREA);
  cv::cvtColor(small, ycc, cv::COLOR_RGB2YCrCb);
  cv::Scalar mean, dev;
  cv::meanStdDev(ycc, mean, dev);
  *colour = std::abs(mean[1] - 128) + std::abs(mean[2] - 128) + dev[1] + dev[2] > 1.0;
  if (!*colour) return {};
  cv::inRange(ycc, cv::Scalar(40, 133, 77), cv::Scalar(255, 173, 127), mask);
  cv::Mat grey, gx, gy, grad, skin_sum, grad_sum;
  cv::cvtColor(small, grey, cv::COLOR_RGB2GRAY);
  cv::Sobel(grey, gx, CV_32F, 1, 0);
  cv::Sobel(grey, gy, CV_32F, 0, 1);
  cv::magnitude(gx, gy, grad);
  cv::integral(mask, skin_sum, CV_64F);
  cv::integral(grad, grad_sum, CV_64F);
  auto boxSum = [](const cv::Mat& sum, int x, int y, int side) {
    return sum.at<double>(y + side, x + side) - sum.at<double>(y, x + side) - sum.at<double>(y + side, x) +
           sum.at<double>(y, x);
  };
  struct Window {
    int x, y, side;  // in the copy
    double score;
  };
  std::vector<Window> best;
  constexpr double kMinSkin = 0.4;
  for (double face = min_face; face <= 1.3 * max_face; face *= 1.3) {
    const int side = int(std::lround(face * f));
    if (side < 4 || side > std::min(small.cols, small.rows)) break;
    const int stride = std::max(1, side / 4);
    std::vector<Window> windows;
    for (int y = 0; y + side <= small.rows; y += stride)
      for (int x = 0; x + side <= small.cols; x += stride) {
        const double area = double(side) * side;
        const double skin = boxSum(skin_sum, x, y, side) / (255.0 * area);
        if (skin < kMinSkin) continue;
        windows.push_back({x, y, side, skin * boxSum(grad_sum, x, y, side) / area});
      }
    // Only a scale's best few can end among the best of all.
    const size_t keep = std::min(windows.size(), size_t(8 * max_count));
    std::partial_sort(windows.begin(), windows.begin() + keep, windows.end(),
                      [](const Window& a, const Window& b) { return a.score > b.score; });
    best.insert(best.end(), windows.begin(), windows.begin() + keep);
  }
  std::stable_sort(best.begin(), best.end(), [](const Window& a, const Window& b) { return a.score > b.score; });
  std::vector<Window> kept;
  for (const auto& c : best) {
    if (int(kept.size()) == max_count) break;
    const bool overlaps = std::any_of(kept.begin(), kept.end(), [&](const Window& k) {
      const int iw = std::min(k.x + k.side, c.x + c.side) - std::max(k.x, c.x);
      const int ih = std::min(k.y + k.side, c.y + c.side) - std::max(k.y, c.y);
      return iw > 0 && ih > 0 && double(iw) * ih > 0.3 * std::min(k.side, c.side) * std::min(k.side, c.side);
    });
    if (!overlaps) kept.push_back(c);
  }
  std::vector<cv::Rect2d> squares;
  for (const auto& k : kept) {
    const double cx = (k.x + k.side / 2.0) / f, cy = (k.y + k.side / 2.0) / f, half = 1.3 * k.side / f;
    squares.push_back(cv::Rect2d(cx - half, cy - half, 2 * half, 2 * half));
  }
  return squares;
}

}  // namespace
#endif

bool faceDetectionAvailable() {
#ifdef AUTOMOD_HAVE_DLIB
  return std::filesystem::exists(shapePredictorPath());
#else
  return false;
#endif
}

std::vector<DetectedFace> detectFaces(const torch::Tensor& photo_in, const DetectOptions& options,
                                      DetectTimings* timings) {
#ifndef AUTOMOD_HAVE_DLIB
  (void)photo_in, (void)options, (void)timings;
  throw Error("face detection is not built in (needs dlib); use a center crop");
#else
  checkImage(photo_in, "detectFaces");
  const auto& sp = shapePredictor();
  auto photo = photo_in.contiguous();
  const int w = static_cast<int>(photo.size(1)), h = static_cast<int>(photo.size(0));
  DetectTimings tm;
  cv::Mat full = matView(photo);

  // Grey image at `scale` of the photo (area-downscaled; linear when enlarging). The photo is turned
  // grey once, at full size, and each pass resizes one channel instead of three.
  cv::Mat full_grey;
  auto greyAt = [&](double scale) {
    auto t0 = Clock::now();
    if (full_grey.empty()) {
      if (full.channels() == 3) cv::cvtColor(full, full_grey, cv::COLOR_RGB2GRAY);
      else full_grey = full;
    }
    cv::Mat grey;
    if (scale == 1.0) grey = full_grey;
    else
      cv::resize(full_grey, grey, cv::Size(std::max(1, int(std::lround(w * scale))), std::max(1, int(std::lround(h * scale)))),
                 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    tm.downscale_ms += msSince(t0);
    return grey;
  };

  // Each pass runs the detector on the photo, or a cut-out of it, at one scale; every detection remembers
  // its pass, whose grey image the landmarks are then found in. A pass's image is the photo from (ox, oy)
  // on at scale (sx, sy).
  struct Pass {
    cv::Mat grey;
    double sx, sy, ox = 0, oy = 0;
  };
  struct Hit {
    double score;
    dlib::rectangle rect;  // in the pass's grey image
    int pass;
    double l, t, r, b;  // box in photo pixels
  };
  std::vector<Pass> passes;
  std::vector<Hit> hits;
  // Detection-image pixel centre → photo pixel centre.
  auto upX = [](const Pass& p, double x) { return (x + 0.5) / p.sx - 0.5 + p.ox; };
  auto upY = [](const Pass& p, double y) { return (y + 0.5) / p.sy - 0.5 + p.oy; };
  auto addHit = [&](double score, const dlib::rectangle& rect, int pass) {
    const Pass& p = passes[pass];
    hits.push_back({score, rect, pass, upX(p, rect.left()), upY(p, rect.top()), upX(p, rect.right()),
                    upY(p, rect.bottom())});
  };
  auto detectAt = [&](double scale) {
    passes.push_back({greyAt(scale), scale, scale});
    std::vector<dlib::rect_detection> dets;
    auto t0 = Clock::now();
    faceDetector()(dlib::cv_image<unsigned char>(passes.back().grey), dets, 0.0);
    tm.detect_ms += msSince(t0);
    ++tm.passes;
    for (auto& d : dets) addHit(d.detection_confidence, d.rect, int(passes.size()) - 1);
  };
  auto bestScore = [&] {
    double best = -1e300;
    for (auto& hit : hits) best = std::max(best, hit.score);
    return best;
  };
  // The small-face search: the photo at `scale`, then smaller by the detector's own pyramid step down
  // to `down_to` (where the first pass's pyramid takes over), each level scanned in horizontal strips
  // that overlap by more than a detection window, on every LibTorch thread. The same work as one
  // pyramid pass of the detector, less the levels the first pass already scanned, but in parallel;
  // landmarks are found in the largest level.
  auto searchAt = [&](double scale, double down_to) {
    passes.push_back({greyAt(scale), scale, scale});
    tm.search_exhaustive = true;
    const int pass = int(passes.size()) - 1;
    auto t0 = Clock::now();
    std::vector<cv::Mat> levels{passes[pass].grey};
    for (double s = scale * kLevelStep; s > down_to * kLevelStep * kLevelStep; s *= kLevelStep) {
      const auto& top = levels.front();
      const cv::Size size(int(std::lround(top.cols * s / scale)), int(std::lround(top.rows * s / scale)));
      if (size.width < kDetectorWindow || size.height < kDetectorWindow) break;
      cv::Mat level;
      cv::resize(levels.back(), level, size, 0, 0, cv::INTER_AREA);
      levels.push_back(level);
    }
    tm.downscale_ms += msSince(t0);
    t0 = Clock::now();
    struct Strip {
      int level, y0, y1;
    };
    int64_t pixels = 0;
    for (auto& l : levels) pixels += int64_t(l.cols) * l.rows;
    const int threads = std::max(1, at::get_num_threads());
    // A few strips per thread balance the load; strips of less than ~0.25 MP would mostly be overlap.
    const int64_t strip_pixels = std::max<int64_t>(250'000, pixels / (threads * 3));
    constexpr int overlap = kDetectorWindow + 3 * 8;  // a window and three HOG cells
    std::vector<Strip> strips;
    for (int l = 0; l < int(levels.size()); ++l) {
      const int w = levels[l].cols, h = levels[l].rows;
      const int n = int(std::clamp<int64_t>((int64_t(w) * h + strip_pixels / 2) / strip_pixels, 1, std::max(1, h / overlap)));
      const int stride = (h + n - 1) / n;
      for (int k = 0; k < n; ++k) strips.push_back({l, k * stride, std::min(h, (k + 1) * stride + overlap)});
    }
    std::stable_sort(strips.begin(), strips.end(), [&](const Strip& a, const Strip& b) {
      return int64_t(levels[a.level].cols) * (a.y1 - a.y0) > int64_t(levels[b.level].cols) * (b.y1 - b.y0);
    });
    std::atomic<size_t> next{0};
    std::mutex found_mutex;
    std::vector<std::pair<double, dlib::rectangle>> found;  // in the largest level's pixels
    const int workers = std::min<int>(threads, int(strips.size()));
    parallelFor(0, workers, 1, [&](int64_t begin, int64_t end) {
      for (int64_t worker = begin; worker < end; ++worker)
        for (size_t i = next++; i < strips.size(); i = next++) {
          const Strip& st = strips[i];
          const cv::Mat& level = levels[st.level];
          const cv::Mat strip = level.rowRange(st.y0, st.y1).clone();
          std::vector<dlib::rect_detection> dets;
          singleLevelDetector()(dlib::cv_image<unsigned char>(strip), dets, 0.0);
          if (dets.empty()) continue;
          // Level pixel centre → largest-level pixel centre.
          const double kx = double(levels[0].cols) / level.cols, ky = double(levels[0].rows) / level.rows;
          std::lock_guard<std::mutex> lock(found_mutex);
          for (auto& d : dets) {
            const auto& r = d.rect;
            found.push_back({d.detection_confidence,
                             dlib::rectangle(std::lround((r.left() + 0.5) * kx - 0.5),
                                             std::lround((r.top() + st.y0 + 0.5) * ky - 0.5),
                                             std::lround((r.right() + 0.5) * kx - 0.5),
                                             std::lround((r.bottom() + st.y0 + 0.5) * ky - 0.5))});
          }
        }
    });
    tm.detect_ms += msSince(t0);
    ++tm.passes;
    tm.search_levels = int(levels.size());
    tm.search_strips = int(strips.size());
    tm.search_threads = workers;
    // Strips and levels find the same face more than once: the duplicate filter below keeps one.
    for (auto& [score, rect] : found) addHit(score, rect, pass);
  };

  // The search in skin-coloured windows: each square (the window with a margin) cut from the grey photo
  // (full_grey, which pass 1 made), resized so that the window's face is kProposalFace px across (faces
  // from ~0.7 to ~2 times that are in the detector's pyramid), scanned by the whole detector; the
  // squares are shared among the threads.
  auto searchWindows = [&](const std::vector<cv::Rect2d>& squares) {
    constexpr double kProposalFace = 100;
    auto t0 = Clock::now();
    const int n = int(squares.size());
    std::vector<Pass> cut(n);
    std::vector<std::vector<dlib::rect_detection>> dets(n);
    parallelFor(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const cv::Rect2d& sq = squares[i];
        const cv::Rect roi = cv::Rect(int(std::floor(sq.x)), int(std::floor(sq.y)), int(std::ceil(sq.width)),
                                      int(std::ceil(sq.height))) & cv::Rect(0, 0, w, h);
        if (roi.width < 8 || roi.height < 8) continue;
        const double k = kProposalFace / (sq.width / 2.6);
        const cv::Size size(std::max(1, int(std::lround(roi.width * k))), std::max(1, int(std::lround(roi.height * k))));
        cv::Mat grey;
        cv::resize(full_grey(roi), grey, size, 0, 0, k < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
        cut[i] = {grey, double(size.width) / roi.width, double(size.height) / roi.height, double(roi.x), double(roi.y)};
        faceDetector()(dlib::cv_image<unsigned char>(grey), dets[i], 0.0);
      }
    });
    tm.detect_ms += msSince(t0);
    ++tm.passes;
    tm.search_proposals = n;
    for (int i = 0; i < n; ++i) {
      if (dets[i].empty()) continue;
      passes.push_back(cut[i]);
      for (auto& d : dets[i]) addHit(d.detection_confidence, d.rect, int(passes.size()) - 1);
    }
  };

  // Pass 1 on a copy at most detect_max_side across: finds faces of kDetectorMinBox / scale photo pixels
  // and more, in ~50 ms for any photo size.
  const double scale1 = std::min(1.0, double(options.detect_max_side) / std::max(w, h));
  detectAt(scale1);
  // Pass 2, only when pass 1 found no clear face, for faces from min_face_size up to those pass 1 finds:
  // in a colour photo the skin-coloured windows of face size; in a greyscale one (or when asked) the
  // photo enlarged so that a face of min_face_size pixels fills the detector's smallest window, within
  // search_max_pixels (the detector's cost grows with the pixel count: ~60 ms per megapixel on one core).
  if (options.search_small_faces && options.min_face_size > 0 && (hits.empty() || bestScore() < options.clear_score)) {
    // The largest face the search looks for: a little beyond the smallest that pass 1 finds.
    const double max_face = 1.2 * kDetectorMinBox / scale1;
    bool colour = false;
    std::vector<cv::Rect2d> squares;
    if (!options.exhaustive_search && max_face > options.min_face_size) {
      auto t0 = Clock::now();
      squares = skinWindows(full, options.min_face_size, max_face, options.max_proposals, &colour);
      tm.downscale_ms += msSince(t0);
    }
    if (colour) {
      searchWindows(squares);
    } else {
      const double wanted = kDetectorMinBox / options.min_face_size;
      const double affordable = std::sqrt(double(options.search_max_pixels) / (double(w) * h));
      const double scale2 = std::min(wanted, affordable);
      if (scale2 > scale1 * 1.2) searchAt(scale2, scale1);
    }
  }

  // Strongest first; drop weak and duplicate detections (DetectOptions::min_relative_score, max_overlap),
  // comparing boxes in photo pixels across passes.
  std::stable_sort(hits.begin(), hits.end(),
                   [](const Hit& a, const Hit& b) { return a.score > b.score; });
  {
    auto area = [](const Hit& h) { return (h.r - h.l + 1) * (h.b - h.t + 1); };
    std::vector<Hit> kept;
    for (auto& d : hits) {
      if (!kept.empty() && d.score < options.min_relative_score * kept.front().score)
        continue;
      const bool duplicate = std::any_of(kept.begin(), kept.end(), [&](const Hit& k) {
        const double iw = std::min(k.r, d.r) - std::max(k.l, d.l) + 1, ih = std::min(k.b, d.b) - std::max(k.t, d.t) + 1;
        const double inter = iw > 0 && ih > 0 ? iw * ih : 0.0;
        return inter > options.max_overlap * std::min(area(k), area(d));
      });
      if (!duplicate) kept.push_back(d);
    }
    hits = std::move(kept);
  }

  std::vector<DetectedFace> faces;
  auto t0 = Clock::now();
  for (auto& hit : hits) {
    const Pass& pass = passes[hit.pass];
    dlib::cv_image<unsigned char> dimg(pass.grey);
    DetectedFace f;
    f.score = hit.score;
    f.box = {int(std::lround(hit.l)), int(std::lround(hit.t)), int(std::lround(hit.r - hit.l + 1)),
             int(std::lround(hit.b - hit.t + 1))};
    f.landmarks = refinedLandmarks(sp, dimg, hit.rect);
    for (auto& p : f.landmarks) p = {upX(pass, p.x), upY(pass, p.y)};
    faces.push_back(std::move(f));
  }
  tm.landmarks_ms += msSince(t0);
  std::stable_sort(faces.begin(), faces.end(), [](const DetectedFace& a, const DetectedFace& b) {
    return int64_t(a.box[2]) * a.box[3] > int64_t(b.box[2]) * b.box[3];
  });
  if (timings) *timings = tm;
  return faces;
#endif
}

std::vector<Point2> landmarksAround(const torch::Tensor& photo_in, Point2 centre, double half_side) {
#ifndef AUTOMOD_HAVE_DLIB
  (void)photo_in, (void)centre, (void)half_side;
  throw Error("face detection is not built in (needs dlib); use a center crop");
#else
  checkImage(photo_in, "landmarksAround");
  const auto& sp = shapePredictor();
  auto photo = photo_in.contiguous();
  const int w = static_cast<int>(photo.size(1)), h = static_cast<int>(photo.size(0));
  // Only the square's neighbourhood is turned grey (the landmarks stay near it).
  const int margin = static_cast<int>(std::ceil(half_side));
  const int x0 = std::clamp(static_cast<int>(std::floor(centre.x - half_side)) - margin, 0, w - 1);
  const int y0 = std::clamp(static_cast<int>(std::floor(centre.y - half_side)) - margin, 0, h - 1);
  const int x1 = std::clamp(static_cast<int>(std::ceil(centre.x + half_side)) + margin + 1, x0 + 1, w);
  const int y1 = std::clamp(static_cast<int>(std::ceil(centre.y + half_side)) + margin + 1, y0 + 1, h);
  cv::Mat roi = matView(photo)(cv::Rect(x0, y0, x1 - x0, y1 - y0)), grey;
  if (roi.channels() == 3) cv::cvtColor(roi, grey, cv::COLOR_RGB2GRAY);
  else grey = roi.clone();
  const dlib::rectangle box(std::lround(centre.x - half_side - x0), std::lround(centre.y - half_side - y0),
                            std::lround(centre.x + half_side - x0), std::lround(centre.y + half_side - y0));
  auto landmarks = refinedLandmarks(sp, dlib::cv_image<unsigned char>(grey), box);
  for (auto& p : landmarks) p.x += x0, p.y += y0;
  return landmarks;
#endif
}

// ---------------------------------------------------------------------------------------------------
// Warping and pasting

torch::Tensor warpToCrop(const torch::Tensor& photo_in, const AlignTransform& t) {
#ifndef AUTOMOD_HAVE_OPENCV
  (void)photo_in, (void)t;
  throw Error("aligned crops need OpenCV, which this build lacks");
#else
  checkImage(photo_in, "warpToCrop");
  auto photo = photo_in.contiguous();
  const int w = static_cast<int>(photo.size(1)), h = static_cast<int>(photo.size(0)), S = t.crop_size;
  const double qsize = t.quadSize();
  cv::Mat full = matView(photo);
  cv::Rect roi = quadRoi(t, w, h, 2);
  if (roi.empty()) throw Error("the face lies outside the photo");

  // Read only the quad's neighbourhood; area-downscale it first when the face is larger than the crop
  // so that the affine warp (bilinear) does not alias.
  cv::Mat src = full(roi);
  double sx = 1, sy = 1;
  if (qsize > S) {
    const double f = S / qsize;
    cv::Mat small;
    cv::resize(src, small, cv::Size(std::max(1, int(std::lround(roi.width * f))), std::max(1, int(std::lround(roi.height * f)))),
               0, 0, cv::INTER_AREA);
    sx = double(roi.width) / small.cols, sy = double(roi.height) / small.rows;
    src = small;
  }
  // src pixel d → photo: x = roi.x + (d + 0.5)·sx − 0.5; compose with the forward transform.
  const auto& f = t.forward;
  const double ox = roi.x + 0.5 * sx - 0.5, oy = roi.y + 0.5 * sy - 0.5;
  std::array<double, 6> m{f[0] * sx, f[1] * sy, f[0] * ox + f[1] * oy + f[2],
                          f[3] * sx, f[4] * sy, f[3] * ox + f[4] * oy + f[5]};
  cv::Mat out;
  cv::warpAffine(src, out, cvAffine(m), cv::Size(S, S), cv::INTER_LINEAR, cv::BORDER_REFLECT_101);

  // FFHQ's padding: when the quad (plus a 10% border) reaches the photo's edge, the reflected part is
  // blurred and faded towards the median colour, with the blur reaching a third of the pad inside.
  double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
  for (auto& q : t.quad) x0 = std::min(x0, q.x), y0 = std::min(y0, q.y), x1 = std::max(x1, q.x), y1 = std::max(y1, q.y);
  const double border = std::max(std::round(qsize * 0.1), 3.0);
  const double need[4] = {-x0 + border, -y0 + border, x1 - (w - 1) + border, y1 - (h - 1) + border};
  if (*std::max_element(need, need + 4) > border - 4) {
    const double minpad = std::round(qsize * 0.3);
    double pad[4];
    for (int i = 0; i < 4; ++i) pad[i] = std::max({need[i], minpad, 1.0});
    cv::Mat fl, blur;
    out.convertTo(fl, CV_32F);
    const double sigma = std::max(0.02 * S, 0.5);
    cv::GaussianBlur(fl, blur, cv::Size(0, 0), sigma, sigma, cv::BORDER_REFLECT_101);
    const int C = out.channels();
    std::vector<float> median(C);
    {
      std::vector<cv::Mat> ch;
      cv::split(out, ch);
      for (int c = 0; c < C; ++c) {
        int hist[256] = {0};
        for (int i = 0; i < S; ++i)
          for (int j = 0; j < S; ++j) ++hist[ch[c].at<uint8_t>(i, j)];
        int acc = 0, k = 0;
        while (k < 255 && (acc += hist[k]) < S * S / 2) ++k;
        median[c] = float(k);
      }
    }
    const auto& inv = t.inverse;
    for (int i = 0; i < S; ++i) {
      auto* o = out.ptr<uint8_t>(i);
      const auto* a = fl.ptr<float>(i);
      const auto* bl = blur.ptr<float>(i);
      for (int j = 0; j < S; ++j) {
        const double px = inv[0] * j + inv[1] * i + inv[2], py = inv[3] * j + inv[4] * i + inv[5];
        const double mask = std::max({-px / pad[0], -py / pad[1], (px - (w - 1)) / pad[2], (py - (h - 1)) / pad[3]});
        const double wb = std::clamp(mask * 3.0 + 1.0, 0.0, 1.0), wm = std::clamp(mask, 0.0, 1.0);
        if (wb <= 0) continue;
        for (int c = 0; c < C; ++c) {
          double v = a[j * C + c];
          v += (bl[j * C + c] - v) * wb;
          v += (median[c] - v) * wm;
          o[j * C + c] = cv::saturate_cast<uint8_t>(v);
        }
      }
    }
  }
  return toTensor(out);
#endif
}

double pasteWeight(double u, double v, int size, const PasteOptions& o) {
  const double half = size / 2.0, mid = (size - 1) / 2.0;
  const double r = std::hypot(u - mid, v - mid) / half;
  const double outer = o.radius, inner = std::max(0.0, o.radius - o.feather);
  if (r >= outer) return 0.0;
  if (r <= inner) return 1.0;
  const double s = (outer - r) / (outer - inner);
  return s * s * (3 - 2 * s);  // smoothstep
}

torch::Tensor pasteBack(const torch::Tensor& photo_in, const torch::Tensor& crop_in, const AlignTransform& t,
                        const PasteOptions& options) {
#ifndef AUTOMOD_HAVE_OPENCV
  (void)photo_in, (void)crop_in, (void)t, (void)options;
  throw Error("paste-back needs OpenCV, which this build lacks");
#else
  checkImage(photo_in, "pasteBack");
  checkImage(crop_in, "pasteBack");
  if (photo_in.size(1) != t.photo_width || photo_in.size(0) != t.photo_height)
    throw Error("the photo is " + std::to_string(photo_in.size(1)) + "x" + std::to_string(photo_in.size(0)) +
                " but the alignment was made for " + std::to_string(t.photo_width) + "x" +
                std::to_string(t.photo_height));
  auto out = photo_in.contiguous().clone();
  const int w = t.photo_width, h = t.photo_height, S = t.crop_size, C = static_cast<int>(out.size(2));
  cv::Mat crop = matView(crop_in.contiguous());
  cv::Mat crop_owner;
  if (crop.channels() != C) {
    cv::cvtColor(crop, crop_owner, C == 1 ? cv::COLOR_RGB2GRAY : cv::COLOR_GRAY2RGB);
    crop = crop_owner;
  }
  if (crop.cols != S || crop.rows != S) {
    cv::Mat r;
    cv::resize(crop, r, cv::Size(S, S), 0, 0, crop.cols > S ? cv::INTER_AREA : cv::INTER_CUBIC);
    crop = r;
  }
  cv::Rect roi = quadRoi(t, w, h, 2);
  if (roi.empty()) return out;
  // ROI pixel → crop: forward transform of (x + roi.x, y + roi.y); WARP_INVERSE_MAP samples the crop there.
  const auto& f = t.forward;
  std::array<double, 6> m{f[0], f[1], f[0] * roi.x + f[1] * roi.y + f[2], f[3], f[4], f[3] * roi.x + f[4] * roi.y + f[5]};
  cv::Mat warped;
  cv::warpAffine(crop, warped, cvAffine(m), roi.size(), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_REPLICATE);
  cv::Mat dst = matView(out)(roi);
  for (int i = 0; i < roi.height; ++i) {
    auto* d = dst.ptr<uint8_t>(i);
    const auto* e = warped.ptr<uint8_t>(i);
    for (int j = 0; j < roi.width; ++j) {
      const double u = m[0] * j + m[1] * i + m[2], v = m[3] * j + m[4] * i + m[5];
      const double a = pasteWeight(u, v, S, options);
      if (a <= 0) continue;
      for (int c = 0; c < C; ++c) {
        const double o = d[j * C + c];
        d[j * C + c] = cv::saturate_cast<uint8_t>(o + (e[j * C + c] - o) * a);
      }
    }
  }
  return out;
#endif
}

}  // namespace automod
