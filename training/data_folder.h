#pragma once
// An image folder as a training set (docs/design.md §3 "Data"): every readable image, center-cropped square and
// area-resized, held as one compact uint8 cache file per resolution that later runs map instead of
// decoding again. The cache is keyed by a hash of the folder's file list, sizes and mtimes (and the
// channel count), so any change to the folder rebuilds it.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/data/dataset.h"

namespace automod {

struct FolderDatasetOptions {
  std::filesystem::path folder;
  /// Where the cache files go (created when missing).
  std::filesystem::path cache_dir;
  int channels = 3;
  /// Images are decoded once at this size; smaller resolutions come from it.
  int max_resolution = 64;
  double held_out_fraction = 0.05;
  uint64_t seed = 0;
  int64_t min_images = 1;
  bool verbose = false;
  /// How the source is named in describe() ("folder", "faces").
  std::string kind = "folder";
};

class FolderDataset : public ImageDataset {
 public:
  explicit FolderDataset(const FolderDatasetOptions& options);
  ~FolderDataset() override;
  int64_t size() const override { return static_cast<int64_t>(train_.size()); }
  int64_t heldOutSize() const override { return static_cast<int64_t>(held_out_.size()); }
  int channels() const override { return options_.channels; }
  torch::Tensor batch(const std::vector<int64_t>& indices, int resolution) override;
  torch::Tensor heldOut(const std::vector<int64_t>& indices, int resolution) override;
  std::string describe() const override;

  /// The source file of training image i / held-out image i (relative to the folder).
  const std::string& trainFile(int64_t i) const { return files_.at(train_.at(i)); }
  const std::string& heldOutFile(int64_t i) const { return files_.at(held_out_.at(i)); }
  int64_t unreadableCount() const { return unreadable_; }
  int64_t upscaledCount() const { return upscaled_; }
  /// The cache file of a resolution (it exists once that resolution has been requested).
  std::filesystem::path cacheFile(int resolution) const;

 private:
  struct Mapped;
  const torch::Tensor& images(int resolution);
  void buildFromFiles(const std::vector<std::filesystem::path>& paths);

  FolderDatasetOptions options_;
  std::string key_;
  std::vector<std::string> files_;  // readable images, in cache order
  std::vector<int64_t> train_, held_out_;
  int64_t unreadable_ = 0, upscaled_ = 0;
  std::string first_unreadable_;
  std::vector<std::pair<int, torch::Tensor>> by_resolution_;
  std::vector<Mapped*> maps_;
};

}  // namespace automod
