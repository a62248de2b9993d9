#pragma once
// Face detection (dlib HOG + 68-point landmarks), FFHQ alignment and paste-back (docs/design.md §5).
// Images are uint8 [H, W, C] tensors (C = 3 RGB, or 1 grey for warping/pasting) in the photo's
// displayed orientation (readImage applies EXIF). Coordinates are pixel centres: pixel (i, j) is the
// point (x = j, y = i). Detection needs dlib (AUTOMOD_HAVE_DLIB); warping and pasting need OpenCV.
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace automod {

struct Point2 {
  double x = 0, y = 0;
};

/// A similarity transform photo → square crop of crop_size pixels, kept so an edit can be pasted back.
struct AlignTransform {
  /// photo (x, y) → crop (u, v): u = f[0]·x + f[1]·y + f[2], v = f[3]·x + f[4]·y + f[5].
  std::array<double, 6> forward{1, 0, 0, 0, 1, 0};
  /// crop → photo, same layout.
  std::array<double, 6> inverse{1, 0, 0, 0, 1, 0};
  /// The crop's corners in the photo (top-left, bottom-left, bottom-right, top-right), FFHQ's quad.
  std::array<Point2, 4> quad{};
  int crop_size = 0;
  int photo_width = 0, photo_height = 0;

  Point2 toCrop(Point2 p) const;
  Point2 toPhoto(Point2 p) const;
  /// Side of the quad in photo pixels (how many photo pixels the crop covers across).
  double quadSize() const;

  nlohmann::json toJson() const;
  /// Throws automod::Error for a malformed sidecar.
  static AlignTransform fromJson(const nlohmann::json& j);
  /// The FFHQ transform from 68 dlib landmarks (eye centres, mouth corners; docs/design.md §5).
  static AlignTransform ffhq(const std::vector<Point2>& landmarks68, int crop_size, int photo_width, int photo_height);
  /// CelebA-HQ's crop (Karras et al. 2018, the procedure FFHQ's derives from): the same oriented
  /// square from the eye centres and mouth corners, which CelebA-HQ's script shifts by half a pixel
  /// (eye_avg + 0.5, mouth_avg + 0.5). CelebA's annotated landmarks are replaced by dlib's here.
  static AlignTransform celebaHQ(const std::vector<Point2>& landmarks68, int crop_size, int photo_width,
                                 int photo_height);
  /// A plain center crop (the largest centred square) scaled to crop_size.
  static AlignTransform centerCrop(int crop_size, int photo_width, int photo_height);
};

/// A detected face, in photo coordinates.
struct DetectedFace {
  /// Detector box: left, top, width, height (photo pixels).
  std::array<int, 4> box{};
  /// HOG detector confidence.
  double score = 0;
  /// 68 dlib landmarks.
  std::vector<Point2> landmarks;
};

struct DetectOptions {
  /// The photo is area-downscaled so its longer side is at most this for the first detection pass
  /// (fast for any photo size: ~50 ms). It finds faces of about 72·longer side/1024 photo pixels and more.
  int detect_max_side = 1024;
  /// When the first pass finds no clear face, search again at higher resolution for faces from
  /// min_face_size up to those the first pass finds. In a colour photo the search looks only where a
  /// face could be: face-sized windows that are mostly skin-coloured and hold the most detail (up to
  /// max_proposals, not overlapping), each cut from the full photo, with a margin, and resized so that
  /// its face is 100 px across for the whole detector. A greyscale photo
  /// (no colour to go by), or any photo with exhaustive_search, is searched everywhere instead: the
  /// photo enlarged within search_max_pixels, scanned one pyramid level at a time in overlapping strips
  /// on all of LibTorch's threads (~10x slower).
  bool search_small_faces = true;
  bool exhaustive_search = false;
  /// Most skin-coloured windows the search looks at, best first (each costs ~5 ms of the detector).
  int max_proposals = 16;
  /// Smallest face (detector box, photo pixels) the second pass looks for.
  double min_face_size = 40;
  /// Pixel budget of the exhaustive search's largest level (the detector's time grows with it, all
  /// levels together ~60 ms per megapixel of the largest on one core): photos up to 5.5 MP are searched
  /// down to 40 px faces, a 12 MP one (4000×3000) down to 59 px, a 24 MP one down to 83 px.
  int64_t search_max_pixels = 18'000'000;
  /// A first-pass face scoring at least this is clear enough that no second pass runs (frontal faces
  /// score 0.5–1.5, HOG's false positives in texture and turned faces near 0–0.3).
  double clear_score = 0.5;
  /// Detections scoring below this fraction of the best one are dropped as false positives (HOG finds
  /// weak "faces" in clothing and backgrounds next to a real face: scores near 0 where real faces score
  /// 0.5–1.5). The best detection is always kept, so a lone, turned face (score ~0.2) is still found,
  /// but next to a clear frontal face it is dropped. 0 keeps everything the detector reports.
  double min_relative_score = 0.25;
  /// A detection whose box overlaps a stronger one by more than this (intersection over the smaller
  /// box) is a duplicate and dropped.
  double max_overlap = 0.5;
};

/// Milliseconds spent in each stage of the last detectFaces call.
struct DetectTimings {
  double downscale_ms = 0, detect_ms = 0, landmarks_ms = 0;
  /// Detector passes run: 1, or 2 when the small-face search ran (DetectOptions::search_small_faces).
  int passes = 0;
  /// The small-face search: pyramid levels scanned, strips (jobs) run, threads used; 0 when it did not run.
  int search_levels = 0, search_strips = 0, search_threads = 0;
  /// The search looked at skin-coloured windows (how many), not the whole photo; 0 otherwise.
  int search_proposals = 0;
  bool search_exhaustive = false;
};

/// Whether this build can detect faces (dlib and the 68-point model file are present).
bool faceDetectionAvailable();
/// Path of the 68-point shape predictor (AUTOMOD_SHAPE_PREDICTOR overrides the Debian location).
std::string shapePredictorPath();

/// All faces, largest (by box area) first. Thread-safe; the landmark model is loaded once per process.
/// Throws automod::Error when detection is not available.
std::vector<DetectedFace> detectFaces(const torch::Tensor& photo, const DetectOptions& options = {},
                                      DetectTimings* timings = nullptr);

/// The 68 landmarks of a face whose landmarks lie about in the square of half side `half_side` around
/// `centre` (photo pixels), found by the landmark model from that square instead of a detector's box
/// and refined as detectFaces refines its own. For checking a face where alignment would have put it:
/// the detector's box on a face that fills the photo can be placed badly enough for the landmarks not to
/// settle (measured: 15 px off in a 256 px aligned crop that a 205 or 512 px copy of it gets right).
/// Throws automod::Error when detection is not available.
std::vector<Point2> landmarksAround(const torch::Tensor& photo, Point2 centre, double half_side);

/// The aligned crop, uint8 [S, S, C]. Only the quad's neighbourhood of the photo is read (area-
/// downscaled first when the face is larger than the crop), so huge photos cost little memory. Where
/// the quad leaves the photo it is padded by reflection, blurred and faded to the median colour as
/// FFHQ's script does.
torch::Tensor warpToCrop(const torch::Tensor& photo, const AlignTransform& t);

struct PasteOptions {
  /// Radius of the blended disc around the crop centre, as a fraction of half the crop side.
  double radius = 0.9;
  /// Width of the feathered edge, as a fraction of half the crop side (inside the radius).
  double feather = 0.2;
};

/// Weight of the edited crop at crop pixel (u, v): 1 inside, 0 outside the disc, smooth between.
double pasteWeight(double u, double v, int crop_size, const PasteOptions& options = {});

/// The photo with `crop` (uint8 [s, s, C], any s; resized to the transform's crop size) warped back by
/// the inverse transform and blended with a feathered disc. Same size, channels and orientation as the
/// photo; pixels where the weight is 0 are copied bit for bit.
torch::Tensor pasteBack(const torch::Tensor& photo, const torch::Tensor& crop, const AlignTransform& t,
                        const PasteOptions& options = {});

}  // namespace automod
