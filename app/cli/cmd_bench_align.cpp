// automod bench align — ms per photo for face alignment at 1 MP and 12 MP (JSON lines):
// decode, detection (downscale + HOG), landmarks, warp, and the whole preparePhoto. Then, at the
// largest size, the photos that need the small-face search (DetectOptions::search_small_faces): the
// same texture with a small face, and with none (the no-face path), each with its ratio to the one-face
// photo of that size measured in the same run; and the small face once more with the exhaustive search
// (what a greyscale photo gets).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "app/cli/common.h"
#include "core/align/photo.h"
#include "core/io/image.h"
#include "core/util/bench.h"
#include "core/util/error.h"

#ifdef AUTOMOD_HAVE_OPENCV
#include <opencv2/imgproc.hpp>
#endif

namespace automod::cli {
namespace fs = std::filesystem;
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void addAlignBench(CLI::App& bench_app, GlobalOptions& global) {
  struct Opts {
    std::string photo = "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg";
    std::vector<double> megapixels{1, 12};
    int reps = 3, size = 256;
    double small_face = 60;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = bench_app.add_subcommand("align", "ms per photo of face alignment (detection, landmarks, warp)");
  cmd->add_option("--photo", o->photo, "photo with one face, upscaled to each size")->capture_default_str();
  cmd->add_option("--megapixels", o->megapixels, "photo sizes")->capture_default_str();
  cmd->add_option("--reps", o->reps, "timed repetitions (median is reported)")->capture_default_str();
  cmd->add_option("--size", o->size, "crop size")->capture_default_str();
  cmd->add_option("--small-face", o->small_face,
                  "face width (px) for the small-face search rows, at the largest size (0: no such rows)")
      ->capture_default_str();
  cmd->callback([o, &global] {
    prepare(global);
#ifndef AUTOMOD_HAVE_OPENCV
    throw Error("bench align needs OpenCV");
#else
    if (!alignmentAvailable()) throw Error("face alignment is not available in this build");
    auto base = readImage(o->photo, 3);
    const auto tmp = fs::temp_directory_path() / ("automod-bench-align-" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    double last_align_ms = 0;
    int last_w = 0, last_h = 0;
    for (double mp : o->megapixels) {
      const double k = std::sqrt(mp * 1e6 / double(base.size(0) * base.size(1)));
      const int w = int(std::lround(base.size(1) * k)), h = int(std::lround(base.size(0) * k));
      cv::Mat src(int(base.size(0)), int(base.size(1)), CV_8UC3, base.data_ptr<uint8_t>()), big;
      cv::resize(src, big, cv::Size(w, h), 0, 0, cv::INTER_CUBIC);
      auto photo = torch::from_blob(big.data, {h, w, 3}, torch::kUInt8).clone();
      const auto file = tmp / ("photo_" + std::to_string(w) + "x" + std::to_string(h) + ".jpg");
      writeImage(file, photo);
      std::vector<double> dec, down, det, lm, warp, total;
      int faces = 0;
      for (int r = 0; r < o->reps + 1; ++r) {  // the first run loads the landmark model and is not counted
        auto t0 = std::chrono::steady_clock::now();
        auto img = readImage(file, 3);
        auto t1 = std::chrono::steady_clock::now();
        DetectTimings tm;
        auto found = detectFaces(img, {}, &tm);
        if (found.empty()) throw Error("no face found in the benchmark photo " + o->photo);
        faces = int(found.size());
        auto t2 = std::chrono::steady_clock::now();
        auto t = AlignTransform::ffhq(found[0].landmarks, o->size, w, h);
        auto crop = warpToCrop(img, t);
        auto t3 = std::chrono::steady_clock::now();
        auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
        if (r == 0) continue;
        dec.push_back(ms(t0, t1));
        down.push_back(tm.downscale_ms);
        det.push_back(tm.detect_ms);
        lm.push_back(tm.landmarks_ms);
        warp.push_back(ms(t2, t3));
        total.push_back(ms(t0, t3));
      }
      std::cout << nlohmann::json{{"bench", "align"},
                                  {"megapixels", double(w) * h / 1e6},
                                  {"width", w},
                                  {"height", h},
                                  {"crop", o->size},
                                  {"faces", faces},
                                  {"decode_ms", median(dec)},
                                  {"downscale_ms", median(down)},
                                  {"detect_ms", median(det)},
                                  {"landmarks_ms", median(lm)},
                                  {"warp_ms", median(warp)},
                                  {"align_ms", median(down) + median(det) + median(lm) + median(warp)},
                                  {"total_ms_with_decode", median(total)},
                                  {"peak_rss_mib", peakRssMiB()}}
                       .dump()
                << std::endl;
      last_align_ms = median(down) + median(det) + median(lm) + median(warp);
      last_w = w, last_h = h;
      fs::remove(file);
    }
    fs::remove_all(tmp);
    if (o->small_face > 0 && last_w > 0) {
      // Smooth random texture the size of the last photo, with the benchmark photo's face scaled to
      // small_face px (its detector box) and without: the first pass finds nothing clear in either, so
      // both run the small-face search. Timed in memory (decoding is the same as above).
      cv::Mat noise(60, 80, CV_8UC3), canvas;
      cv::RNG rng(7);
      rng.fill(noise, cv::RNG::UNIFORM, 40, 220);
      cv::resize(noise, canvas, cv::Size(last_w, last_h), 0, 0, cv::INTER_LINEAR);
      auto empty = torch::from_blob(canvas.data, {last_h, last_w, 3}, torch::kUInt8).clone();
      auto with_face = empty.clone();
      const auto faces = detectFaces(base);
      if (faces.empty()) throw Error("no face found in the benchmark photo " + o->photo);
      const double k = o->small_face / faces[0].box[2];
      cv::Mat src(int(base.size(0)), int(base.size(1)), CV_8UC3, base.data_ptr<uint8_t>()), small;
      cv::resize(src, small, cv::Size(), k, k, cv::INTER_AREA);
      cv::Mat dst(last_h, last_w, CV_8UC3, with_face.data_ptr<uint8_t>());
      small.copyTo(dst(cv::Rect(last_w * 2 / 3, last_h / 2, small.cols, small.rows)));
      struct Case {
        std::string name;
        torch::Tensor photo;
        bool exhaustive;
      };
      for (auto& [name, photo, exhaustive] : {Case{"small face", with_face, false}, Case{"no face", empty, false},
                                              Case{"small face, exhaustive search", with_face, true}}) {
        std::vector<double> down, det, lm, warp;
        DetectTimings tm;
        DetectOptions options;
        options.exhaustive_search = exhaustive;
        int found = 0;
        for (int r = 0; r < o->reps; ++r) {
          auto hits = detectFaces(photo, options, &tm);
          found = int(hits.size());
          auto t1 = std::chrono::steady_clock::now();
          if (!hits.empty()) warpToCrop(photo, AlignTransform::ffhq(hits[0].landmarks, o->size, last_w, last_h));
          warp.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count());
          down.push_back(tm.downscale_ms);
          det.push_back(tm.detect_ms);
          lm.push_back(tm.landmarks_ms);
        }
        const double align = median(down) + median(det) + median(lm) + median(warp);
        nlohmann::json row{{"bench", "align"},
                           {"photo", name},
                           {"megapixels", double(last_w) * last_h / 1e6},
                           {"width", last_w},
                           {"height", last_h},
                           {"faces", found},
                           {"passes", tm.passes},
                           {"search_levels", tm.search_levels},
                           {"search_strips", tm.search_strips},
                           {"search_threads", tm.search_threads},
                           {"search_exhaustive", tm.search_exhaustive},
                           {"search_proposals", tm.search_proposals},
                           {"downscale_ms", median(down)},
                           {"detect_ms", median(det)},
                           {"landmarks_ms", median(lm)},
                           {"warp_ms", median(warp)},
                           {"align_ms", align},
                           {"ratio_to_one_face", align / last_align_ms}};
        if (name != "no face") row["face_px"] = o->small_face;
        std::cout << row.dump() << std::endl;
      }
    }
#endif
  });
}

RegisterBench reg(40, &addAlignBench);

}  // namespace
}  // namespace automod::cli
