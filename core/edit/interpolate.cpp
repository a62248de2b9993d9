#include "core/edit/interpolate.h"

#include <cmath>

#include "core/model/layers.h"
#include "core/util/error.h"

#ifdef AUTOMOD_HAVE_OPENCV
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#endif

namespace automod {

torch::Tensor slerp(const torch::Tensor& a, const torch::Tensor& b, double t) {
  if (t <= 0.0) return a;
  if (t >= 1.0) return b;
  auto an = normaliseLatent(a), bn = normaliseLatent(b);
  auto cos = (an * bn).sum(1, true).clamp(-1.0, 1.0);
  auto omega = torch::acos(cos);
  auto so = torch::sin(omega);
  auto near = so.abs() < 1e-6;
  auto wa = torch::where(near, torch::full_like(so, 1.0 - t), torch::sin((1.0 - t) * omega) / so);
  auto wb = torch::where(near, torch::full_like(so, t), torch::sin(t * omega) / so);
  return normaliseLatent(wa * an + wb * bn);
}

torch::Tensor slerpPath(const std::vector<torch::Tensor>& keys, double t) {
  if (keys.empty()) throw Error("interpolation needs at least one source");
  if (keys.size() == 1 || t <= 0.0) return keys.front();
  if (t >= 1.0) return keys.back();
  const double pos = t * double(keys.size() - 1);
  const size_t seg = std::min(static_cast<size_t>(pos), keys.size() - 2);
  return slerp(keys[seg], keys[seg + 1], pos - double(seg));
}

namespace {
void checkInterpolation(const std::vector<torch::Tensor>& keys, int num_blocks, const std::vector<BlockRange>& ranges) {
  if (keys.size() < 2) throw Error("interpolation needs at least two sources");
  for (auto& r : ranges)
    if (r.first < 0 || r.last >= num_blocks || r.first > r.last)
      throw Error("scale range " + r.toString() + " is outside the model's blocks 0-" + std::to_string(num_blocks - 1));
}

LatentPlan movingPlan(const torch::Tensor& moving, const torch::Tensor& fixed, int num_blocks,
                      const std::vector<BlockRange>& ranges) {
  LatentPlan plan;
  for (int b = 0; b < num_blocks; ++b) plan.latents.push_back(ranges.empty() || rangesContain(ranges, b) ? moving : fixed);
  return plan;
}
}  // namespace

LatentPlan interpolationPlan(const std::vector<torch::Tensor>& keys, int steps, int num_blocks,
                             const std::vector<BlockRange>& ranges) {
  checkInterpolation(keys, num_blocks, ranges);
  if (steps < 2) throw Error("interpolation needs at least 2 steps (got " + std::to_string(steps) + ")");
  std::vector<torch::Tensor> path;
  for (int i = 0; i < steps; ++i) path.push_back(slerpPath(keys, double(i) / double(steps - 1)));
  return movingPlan(torch::cat(path), keys.front().expand({steps, keys.front().size(1)}), num_blocks, ranges);
}

LatentPlan interpolationPlanAt(const std::vector<torch::Tensor>& keys, double t, int num_blocks,
                               const std::vector<BlockRange>& ranges) {
  checkInterpolation(keys, num_blocks, ranges);
  return movingPlan(slerpPath(keys, t), keys.front(), num_blocks, ranges);
}

#ifdef AUTOMOD_HAVE_OPENCV
bool videoAvailable() { return true; }

void writeVideo(const std::filesystem::path& path, const torch::Tensor& frames, double fps) {
  TORCH_CHECK(frames.dim() == 4 && frames.scalar_type() == torch::kUInt8, "writeVideo wants uint8 [N, H, W, C]");
  const int h = static_cast<int>(frames.size(1)), w = static_cast<int>(frames.size(2));
  cv::VideoWriter writer(path.string(), cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, cv::Size(w, h), true);
  if (!writer.isOpened()) throw Error("cannot write video " + path.string() + ": OpenCV has no MP4 encoder here");
  auto cpu = frames.to(torch::kCPU).contiguous();
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    auto f = cpu[i].contiguous();
    cv::Mat rgb(h, w, f.size(2) == 1 ? CV_8UC1 : CV_8UC3, f.data_ptr<uint8_t>());
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, f.size(2) == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_RGB2BGR);
    writer.write(bgr);
  }
  writer.release();
  std::error_code ec;
  if (std::filesystem::file_size(path, ec) == 0 || ec) throw Error("writing video " + path.string() + " failed");
}

int countVideoFrames(const std::filesystem::path& path) {
  cv::VideoCapture cap(path.string());
  if (!cap.isOpened()) return 0;
  int n = 0;
  cv::Mat m;
  while (cap.read(m) && !m.empty()) ++n;
  return n;
}
#else
bool videoAvailable() { return false; }
void writeVideo(const std::filesystem::path& path, const torch::Tensor&, double) {
  throw Error("cannot write video " + path.string() + ": this build has no OpenCV; write a .png grid instead");
}
int countVideoFrames(const std::filesystem::path&) { return 0; }
#endif

}  // namespace automod
