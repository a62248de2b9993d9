#pragma once
// Videos of decoded frames (morphs: `automod interpolate … .mp4`, the editor's Morph → Export Video).
#include <torch/types.h>

#include <filesystem>
#include <memory>

namespace automod {

/// Whether this build can write videos (OpenCV).
bool videoAvailable();

/// Writes an MP4 (codec 'mp4v') frame by frame, holding one frame at a time, into a hidden file beside
/// `path`. finish() puts it in place of `path`; a writer destroyed before that (an error, a cancelled
/// export) removes it, so `path` is either the whole new video or whatever was there before.
class VideoWriter {
 public:
  /// Throws automod::Error when this build has no OpenCV.
  VideoWriter(std::filesystem::path path, double fps = 12.0);
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  /// Appends uint8 frames [H, W, C] or [N, H, W, C] (C = 1 or 3), all of the first frame's size. Throws
  /// automod::Error when the video cannot be written (no MP4 encoder, another size, a full disk).
  void add(const torch::Tensor& frames);
  /// Frames added so far.
  int frames() const;
  /// Closes the video and renames it to the path; throws automod::Error when no frame was added or
  /// nothing was written.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// All of `frames` (uint8 [N, H, W, C]) as one video: a VideoWriter's add() and finish().
void writeVideo(const std::filesystem::path& path, const torch::Tensor& frames, double fps = 12.0);
/// Frames a video file decodes to (0 when unreadable); used to check exports.
int countVideoFrames(const std::filesystem::path& path);

}  // namespace automod
