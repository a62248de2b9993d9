#pragma once
// Training data sources (docs/design.md §3 "Data", "Synthetic faces"): an image folder with its per-resolution
// uint8 cache, Fashion-MNIST from Debian's dataset-fashion-mnist, and synthetic faces rendered by
// packaging/faces (npm facesjs + resvg). openDataset() picks one and returns an ImageDataset.
//
// Choices a user should know:
// - Folder images are center-cropped to a square and area-resized to each resolution. An image whose
//   short side is smaller than the requested resolution is upscaled (bilinear) and counted; describe()
//   warns about them. Unreadable files are skipped and counted, never a crash.
// - The held-out split is the last max(1, round(fraction·N)) images of a seeded shuffle of the
//   sorted file list, so it is stable across runs and machines for the same folder and seed.
// - Fashion-MNIST: the 28×28 grey images are zero-padded (2 px each side, black background) to 32×32;
//   smaller resolutions are area-downsampled from 32. channels = 3 replicates the grey plane.
// - Faces: `count` faces at `max_resolution` px, seed `seed`, generated once into
//   cache_dir/faces-<count>-<size>-<seed>/ and reused.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset.h"

namespace automod {

struct DataSpec {
  enum Kind { Folder, FashionMnist, Faces } kind = Folder;
  /// Folder: the image folder. FashionMnist: optional folder holding the IDX files (default: the
  /// Debian package's location). Faces: optional output folder (default: under cache_dir).
  std::filesystem::path path;
  /// Faces: how many faces to generate. FashionMnist: if > 0, use only the first `count` images.
  int64_t count = 0;
  /// Fraction of images held out for evaluation (at least 1 image).
  double held_out_fraction = 0.05;
  /// Where per-resolution caches and generated faces go (default: ~/.cache/automod, or
  /// $XDG_CACHE_HOME/automod). Empty = default.
  std::filesystem::path cache_dir;
  uint64_t seed = 0;
  /// 1 (grey) or 3 (RGB).
  int channels = 3;
  /// The largest resolution that will be requested (faces are rendered at this size).
  int max_resolution = 64;
  /// Smallest number of training images accepted (e.g. one batch); 0 = no check beyond 1.
  int64_t min_images = 1;
  /// Print progress (decoding, face generation) to stderr.
  bool verbose = false;
};

/// Opens the data source. Throws automod::Error with a clear message for a missing/empty folder,
/// too few images, a missing Fashion-MNIST package, or missing node/npm packages for faces.
std::unique_ptr<ImageDataset> openDataset(const DataSpec& spec);

/// The default cache folder ($XDG_CACHE_HOME/automod or ~/.cache/automod).
std::filesystem::path defaultCacheDir();

/// Generates synthetic faces with packaging/faces/make_faces.mjs: DIR/NNNNNN.png + attributes.jsonl.
/// `progress` (may be null) is called with the number of faces written so far.
struct FaceOptions {
  int64_t count = 100;
  int size = 64;
  uint64_t seed = 0;
  std::filesystem::path out;
};
void makeFaces(const FaceOptions& options, void (*progress)(int64_t done, int64_t total, void* user) = nullptr,
               void* user = nullptr);
/// The folder of `count` labelled faces at `size` px from `seed` under `cache_dir` (empty:
/// defaultCacheDir()), rendered by makeFaces the first time and reused after; `log` (may be empty) is
/// told when they are rendered.
std::filesystem::path cachedFaces(int64_t count, int size, uint64_t seed, const std::filesystem::path& cache_dir = {},
                                  const std::function<void(const std::string&)>& log = {});
/// packaging/faces (the folder with make_faces.mjs and node_modules); throws when it is missing.
std::filesystem::path facesPackageDir();

/// Where Debian's dataset-fashion-mnist puts its files (first existing candidate) or empty.
std::filesystem::path fashionMnistDir();

/// Reads an IDX file (gzipped or not) of uint8 images [N, H, W] or labels [N].
torch::Tensor readIdx(const std::filesystem::path& path);

}  // namespace automod
