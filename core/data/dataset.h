#pragma once
// Training data as the trainer sees it: a set of images it can fetch at any resolution, plus a
// held-out split for evaluation. Concrete sources (an image folder with its per-resolution cache,
// Fashion-MNIST IDX files, synthetic faces) implement this interface; openDataset picks one.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace automod {

class ImageDataset {
 public:
  virtual ~ImageDataset() = default;
  /// Number of training images (the held-out split excluded).
  virtual int64_t size() const = 0;
  /// Number of held-out images.
  virtual int64_t heldOutSize() const = 0;
  /// 1 (grey) or 3 (RGB).
  virtual int channels() const = 0;
  /// uint8 [N, C, R, R] training images at resolution R (no flipping: the trainer augments).
  virtual torch::Tensor batch(const std::vector<int64_t>& indices, int resolution) = 0;
  /// uint8 [N, C, R, R] held-out images, indices in [0, heldOutSize()).
  virtual torch::Tensor heldOut(const std::vector<int64_t>& indices, int resolution) = 0;
  /// One line for logs: "folder /x (1234 images, 3 unreadable skipped)".
  virtual std::string describe() const = 0;
};

/// Images held in memory as uint8 [N, C, S, S] at the largest size; smaller resolutions are area
/// downsampled once and kept. Used by tests and as the base of the file-backed sources.
class TensorImageDataset : public ImageDataset {
 public:
  /// The last `held_out` images form the held-out split.
  TensorImageDataset(torch::Tensor images_u8, int64_t held_out, std::string description = "in-memory images");
  int64_t size() const override { return images_.size(0) - held_out_; }
  int64_t heldOutSize() const override { return held_out_; }
  int channels() const override { return static_cast<int>(images_.size(1)); }
  torch::Tensor batch(const std::vector<int64_t>& indices, int resolution) override;
  torch::Tensor heldOut(const std::vector<int64_t>& indices, int resolution) override;
  std::string describe() const override { return description_; }
  /// All images (training then held-out) at a resolution.
  const torch::Tensor& atResolution(int resolution);

 private:
  torch::Tensor images_;
  int64_t held_out_;
  std::string description_;
  std::vector<std::pair<int, torch::Tensor>> by_resolution_;
};

}  // namespace automod
