#include "core/io/video.h"

#include <torch/torch.h>

#include <system_error>

#include "core/util/error.h"

#ifdef AUTOMOD_HAVE_OPENCV
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#endif

namespace automod {

namespace fs = std::filesystem;

#ifdef AUTOMOD_HAVE_OPENCV
bool videoAvailable() { return true; }

struct VideoWriter::Impl {
  fs::path path, partial;
  double fps = 12.0;
  cv::VideoWriter writer;
  int width = 0, height = 0, frames = 0;
  bool finished = false;
};

VideoWriter::VideoWriter(fs::path path, double fps) : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
  // Hidden, beside the target (the same file system, so finish() is a rename), with the target's
  // extension (OpenCV picks the container by it).
  impl_->partial = impl_->path.parent_path() / ("." + impl_->path.stem().string() + ".writing" +
                                                impl_->path.extension().string());
  impl_->fps = fps;
}

VideoWriter::~VideoWriter() {
  if (impl_->finished) return;
  if (impl_->writer.isOpened()) impl_->writer.release();
  std::error_code ec;
  fs::remove(impl_->partial, ec);
}

void VideoWriter::add(const torch::Tensor& frames) {
  if (impl_->finished) throw Error("the video " + impl_->path.string() + " is finished already");
  TORCH_CHECK((frames.dim() == 3 || frames.dim() == 4) && frames.scalar_type() == torch::kUInt8,
              "VideoWriter wants uint8 [H, W, C] or [N, H, W, C], got ", frames.sizes());
  auto cpu = (frames.dim() == 3 ? frames.unsqueeze(0) : frames).to(torch::kCPU).contiguous();
  const int h = static_cast<int>(cpu.size(1)), w = static_cast<int>(cpu.size(2));
  const int64_t c = cpu.size(3);
  TORCH_CHECK(c == 1 || c == 3, "VideoWriter wants 1 or 3 channels, got ", c);
  if (!impl_->writer.isOpened()) {
    impl_->writer.open(impl_->partial.string(), cv::VideoWriter::fourcc('m', 'p', '4', 'v'), impl_->fps, cv::Size(w, h),
                       true);
    if (!impl_->writer.isOpened())
      throw Error("cannot write video " + impl_->path.string() + ": OpenCV has no MP4 encoder here, or the folder is not writable");
    impl_->width = w;
    impl_->height = h;
  } else if (w != impl_->width || h != impl_->height) {
    throw Error("video " + impl_->path.string() + ": a " + std::to_string(w) + "×" + std::to_string(h) +
                " frame after " + std::to_string(impl_->width) + "×" + std::to_string(impl_->height) + " ones");
  }
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    auto f = cpu[i].contiguous();
    cv::Mat image(h, w, c == 1 ? CV_8UC1 : CV_8UC3, f.data_ptr<uint8_t>());
    cv::Mat bgr;
    cv::cvtColor(image, bgr, c == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_RGB2BGR);
    impl_->writer.write(bgr);
    ++impl_->frames;
  }
}

int VideoWriter::frames() const { return impl_->frames; }

void VideoWriter::finish() {
  if (impl_->finished) return;
  if (impl_->frames == 0) throw Error("the video " + impl_->path.string() + " has no frames");
  impl_->writer.release();
  std::error_code ec;
  const auto bytes = fs::file_size(impl_->partial, ec);
  if (ec || bytes == 0) throw Error("writing video " + impl_->path.string() + " failed (is the disk full?)");
  fs::rename(impl_->partial, impl_->path, ec);
  if (ec) throw Error("cannot put the video in place at " + impl_->path.string() + ": " + ec.message());
  impl_->finished = true;
}

int countVideoFrames(const fs::path& path) {
  cv::VideoCapture cap(path.string());
  if (!cap.isOpened()) return 0;
  int n = 0;
  cv::Mat m;
  while (cap.read(m) && !m.empty()) ++n;
  return n;
}
#else
bool videoAvailable() { return false; }

struct VideoWriter::Impl {};

VideoWriter::VideoWriter(fs::path path, double) {
  throw Error("cannot write video " + path.string() + ": this build has no OpenCV; write a .png grid instead");
}
VideoWriter::~VideoWriter() = default;
void VideoWriter::add(const torch::Tensor&) {}
int VideoWriter::frames() const { return 0; }
void VideoWriter::finish() {}
int countVideoFrames(const fs::path&) { return 0; }
#endif

void writeVideo(const fs::path& path, const torch::Tensor& frames, double fps) {
  TORCH_CHECK(frames.dim() == 4 && frames.scalar_type() == torch::kUInt8, "writeVideo wants uint8 [N, H, W, C]");
  VideoWriter writer(path, fps);
  writer.add(frames);
  writer.finish();
}

}  // namespace automod
