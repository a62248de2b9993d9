#include "training/data_folder.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <torch/nn/functional.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/io/image.h"
#include "core/util/error.h"
#include "core/util/parallel.h"

namespace automod {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

constexpr char kMagic[8] = {'A', 'M', 'O', 'D', 'I', 'M', 'G', '1'};
constexpr int64_t kDataOffset = 64;

struct CacheHeader {
  int64_t n = 0, c = 0, r = 0, json_offset = 0;
  nlohmann::json info;
};

uint64_t fnv1a(uint64_t h, const void* data, size_t len) {
  auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// splitmix64: a portable generator, so the held-out split is the same on every platform.
uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool readHeader(const fs::path& path, CacheHeader& h) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  char magic[8];
  int64_t v[4];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) return false;
  if (!in.read(reinterpret_cast<char*>(v), sizeof v)) return false;
  h.n = v[0], h.c = v[1], h.r = v[2], h.json_offset = v[3];
  std::error_code ec;
  const auto file_size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec || h.n < 0 || h.json_offset != kDataOffset + h.n * h.c * h.r * h.r || file_size <= h.json_offset) return false;
  std::string json(static_cast<size_t>(file_size - h.json_offset), '\0');
  in.seekg(h.json_offset);
  if (!in.read(json.data(), static_cast<std::streamsize>(json.size()))) return false;
  h.info = nlohmann::json::parse(json, nullptr, false);
  return !h.info.is_discarded();
}

// Writes a cache file atomically: header, images streamed by `fill`, JSON trailer, rename.
template <class Fill>
void writeCache(const fs::path& path, int64_t n, int64_t c, int64_t r, const nlohmann::json& info, Fill&& fill) {
  fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write the image cache " + tmp.string() + ": check permissions or use another cache dir");
    char header[kDataOffset] = {};
    std::memcpy(header, kMagic, 8);
    const int64_t v[4] = {n, c, r, kDataOffset + n * c * r * r};
    std::memcpy(header + 8, v, sizeof v);
    out.write(header, kDataOffset);
    fill(out);
    const std::string json = info.dump();
    out.write(json.data(), static_cast<std::streamsize>(json.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error("cannot write the image cache " + path.string() + " (disk full?)");
    }
  }
  fs::rename(tmp, path);
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

struct FolderDataset::Mapped {
  void* data = MAP_FAILED;
  size_t length = 0;
  ~Mapped() {
    if (data != MAP_FAILED) ::munmap(data, length);
  }
};

FolderDataset::FolderDataset(const FolderDatasetOptions& options) : options_(options) {
  TORCH_CHECK(options_.channels == 1 || options_.channels == 3, "channels must be 1 or 3");
  TORCH_CHECK(options_.max_resolution >= 1, "max_resolution must be positive");
  const fs::path& root = options_.folder;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw Error("data folder " + root.string() + " does not exist or is not a folder");

  // The file list, sorted, and its fingerprint (names, sizes, mtimes, channels).
  std::vector<std::pair<std::string, fs::path>> found;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && isImageFile(it->path()))
      found.emplace_back(fs::relative(it->path(), root, ec).generic_string(), it->path());
  }
  std::sort(found.begin(), found.end());
  if (found.empty())
    throw Error("no images (jpg, png, webp, bmp) found in " + root.string() + " or its subfolders");
  uint64_t h = 1469598103934665603ull;
  h = fnv1a(h, &options_.channels, sizeof options_.channels);
  h = fnv1a(h, &options_.max_resolution, sizeof options_.max_resolution);
  const std::string abs = fs::weakly_canonical(root, ec).string();
  h = fnv1a(h, abs.data(), abs.size());
  for (auto& [rel, path] : found) {
    const uint64_t size = fs::file_size(path, ec);
    const auto mtime = static_cast<int64_t>(fs::last_write_time(path, ec).time_since_epoch().count());
    h = fnv1a(h, rel.data(), rel.size() + 1);
    h = fnv1a(h, &size, sizeof size);
    h = fnv1a(h, &mtime, sizeof mtime);
  }
  key_ = hex(h);

  CacheHeader header;
  const fs::path master = cacheFile(options_.max_resolution);
  if (readHeader(master, header) && header.c == options_.channels && header.r == options_.max_resolution &&
      header.info.contains("files")) {
    files_ = header.info["files"].get<std::vector<std::string>>();
    unreadable_ = header.info.value("unreadable", int64_t{0});
    upscaled_ = header.info.value("upscaled", int64_t{0});
    first_unreadable_ = header.info.value("first_unreadable", std::string());
  } else {
    std::vector<fs::path> paths;
    for (auto& f : found) paths.push_back(f.second);
    buildFromFiles(paths);
    for (auto& f : files_) f = fs::relative(f, root, ec).generic_string();
  }

  const int64_t n = static_cast<int64_t>(files_.size());
  if (n == 0)
    throw Error("none of the " + std::to_string(found.size()) + " image files in " + root.string() +
                " could be read (first: " + first_unreadable_ + ")");
  const int64_t held = std::max<int64_t>(1, std::llround(options_.held_out_fraction * static_cast<double>(n)));
  const int64_t need = std::max<int64_t>(1, options_.min_images);
  if (n - held < need)
    throw Error(root.string() + " has " + std::to_string(n) + " readable images: too few for " + std::to_string(need) +
                " training images (one batch) plus " + std::to_string(held) + " held out");

  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  uint64_t s = options_.seed ^ 0x5eed5eed5eedull;
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[splitmix(s) % static_cast<uint64_t>(i + 1)]);
  train_.assign(order.begin(), order.end() - held);
  held_out_.assign(order.end() - held, order.end());
  // Keep each split in file order: reads from the mapped cache stay close together.
  std::sort(train_.begin(), train_.end());
  std::sort(held_out_.begin(), held_out_.end());
}

FolderDataset::~FolderDataset() {
  by_resolution_.clear();
  for (auto* m : maps_) delete m;
}

fs::path FolderDataset::cacheFile(int resolution) const {
  return options_.cache_dir / (options_.kind + "-" + key_ + "-c" + std::to_string(options_.channels) + "-r" +
                               std::to_string(resolution) + ".u8");
}

void FolderDataset::buildFromFiles(const std::vector<fs::path>& paths) {
  const int r = options_.max_resolution, c = options_.channels;
  const int64_t total = static_cast<int64_t>(paths.size());
  const int64_t chunk = 64;
  std::vector<std::string> files;
  int64_t unreadable = 0, upscaled = 0;
  std::string first_unreadable;
  auto last_report = std::chrono::steady_clock::now();
  auto fill = [&](std::ofstream& out) {
    for (int64_t start = 0; start < total; start += chunk) {
      const int64_t count = std::min(chunk, total - start);
      std::vector<torch::Tensor> decoded(static_cast<size_t>(count));
      std::vector<std::string> errors(static_cast<size_t>(count));
      std::vector<char> small(static_cast<size_t>(count), 0);
      parallelFor(0, count, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          try {
            auto img = readImage(paths[start + i], c);
            small[i] = std::min(img.size(0), img.size(1)) < r;
            decoded[i] = centerCropResize(img, r).permute({2, 0, 1}).contiguous();
          } catch (const std::exception& ex) {
            errors[i] = errorMessage(ex);
          }
        }
      });
      for (int64_t i = 0; i < count; ++i) {
        if (!decoded[i].defined()) {
          if (unreadable++ == 0) first_unreadable = errors[i];
          continue;
        }
        upscaled += small[i];
        files.push_back(paths[start + i].string());
        out.write(reinterpret_cast<const char*>(decoded[i].data_ptr<uint8_t>()), static_cast<std::streamsize>(c * r * r));
      }
      auto now = std::chrono::steady_clock::now();
      if (options_.verbose && (now - last_report > std::chrono::seconds(1) || start + count == total)) {
        std::cerr << "\rdecoding images " << start + count << "/" << total << std::flush;
        last_report = now;
      }
    }
    if (options_.verbose) std::cerr << "\n";
  };
  // The image count is only known after decoding: write, then patch the header's count.
  const fs::path path = cacheFile(r);
  fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw Error("cannot write the image cache " + tmp.string() + ": check permissions or set another cache dir");
    char header[kDataOffset] = {};
    out.write(header, kDataOffset);
    fill(out);
    std::vector<std::string> rel;
    std::error_code ec;
    for (auto& f : files) rel.push_back(fs::relative(f, options_.folder, ec).generic_string());
    nlohmann::json info = {{"files", rel},
                           {"unreadable", unreadable},
                           {"upscaled", upscaled},
                           {"first_unreadable", first_unreadable},
                           {"folder", options_.folder.string()}};
    const std::string json = info.dump();
    out.write(json.data(), static_cast<std::streamsize>(json.size()));
    const int64_t n = static_cast<int64_t>(files.size());
    std::memcpy(header, kMagic, 8);
    const int64_t v[4] = {n, c, r, kDataOffset + n * c * r * r};
    std::memcpy(header + 8, v, sizeof v);
    out.seekp(0);
    out.write(header, kDataOffset);
    out.flush();
    if (!out) {
      out.close();
      fs::remove(tmp, ec);
      throw Error("cannot write the image cache " + path.string() + " (disk full?)");
    }
  }
  fs::rename(tmp, path);
  files_ = std::move(files);
  unreadable_ = unreadable;
  upscaled_ = upscaled;
  first_unreadable_ = first_unreadable;
}

const torch::Tensor& FolderDataset::images(int resolution) {
  for (auto& [res, t] : by_resolution_)
    if (res == resolution) return t;
  const int r_max = options_.max_resolution, c = options_.channels;
  if (resolution < 1 || resolution > r_max)
    throw Error("resolution " + std::to_string(resolution) + " px is above the data set's maximum of " +
                std::to_string(r_max) + " px (DataSpec::max_resolution)");
  const int64_t n = static_cast<int64_t>(files_.size());
  const fs::path path = cacheFile(resolution);
  CacheHeader header;
  if (!(readHeader(path, header) && header.n == n && header.c == c && header.r == resolution)) {
    // Area-downsample from the largest size, in chunks, into a new cache file.
    const torch::Tensor& top = images(r_max);
    writeCache(path, n, c, resolution, nlohmann::json{{"from", cacheFile(r_max).filename().string()}},
               [&](std::ofstream& out) {
                 for (int64_t s = 0; s < n; s += 256) {
                   auto x = top.narrow(0, s, std::min<int64_t>(256, n - s)).to(torch::kFloat32);
                   auto y = F::interpolate(x, F::InterpolateFuncOptions()
                                                  .size(std::vector<int64_t>{resolution, resolution})
                                                  .mode(torch::kArea));
                   auto u8 = y.round().clamp(0, 255).to(torch::kUInt8).contiguous();
                   out.write(reinterpret_cast<const char*>(u8.data_ptr<uint8_t>()), static_cast<std::streamsize>(u8.numel()));
                 }
               });
  }
  // Map the file read-only: the OS pages images in as batches touch them.
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open the image cache " + path.string());
  struct stat st {};
  ::fstat(fd, &st);
  auto* m = new Mapped;
  m->length = static_cast<size_t>(st.st_size);
  m->data = ::mmap(nullptr, m->length, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m->data == MAP_FAILED) {
    delete m;
    throw Error("cannot map the image cache " + path.string());
  }
  maps_.push_back(m);
  auto t = torch::from_blob(static_cast<uint8_t*>(m->data) + kDataOffset, {n, c, resolution, resolution},
                            torch::TensorOptions().dtype(torch::kUInt8));
  by_resolution_.emplace_back(resolution, t);
  return by_resolution_.back().second;
}

torch::Tensor FolderDataset::batch(const std::vector<int64_t>& indices, int resolution) {
  const auto& all = images(resolution);
  std::vector<int64_t> rows;
  rows.reserve(indices.size());
  for (auto i : indices) {
    TORCH_CHECK(i >= 0 && i < size(), "training index ", i, " out of range [0, ", size(), ")");
    rows.push_back(train_[static_cast<size_t>(i)]);
  }
  return all.index_select(0, torch::tensor(rows, torch::kInt64));
}

torch::Tensor FolderDataset::heldOut(const std::vector<int64_t>& indices, int resolution) {
  const auto& all = images(resolution);
  std::vector<int64_t> rows;
  rows.reserve(indices.size());
  for (auto i : indices) {
    TORCH_CHECK(i >= 0 && i < heldOutSize(), "held-out index ", i, " out of range [0, ", heldOutSize(), ")");
    rows.push_back(held_out_[static_cast<size_t>(i)]);
  }
  return all.index_select(0, torch::tensor(rows, torch::kInt64));
}

std::string FolderDataset::describe() const {
  std::string s = options_.kind + " " + options_.folder.string() + " (" + std::to_string(size()) + " training + " +
                  std::to_string(heldOutSize()) + " held-out images";
  if (unreadable_ > 0) s += ", " + std::to_string(unreadable_) + " unreadable skipped, first: " + first_unreadable_;
  if (upscaled_ > 0)
    s += ", warning: " + std::to_string(upscaled_) + " smaller than " + std::to_string(options_.max_resolution) +
         " px were upscaled";
  return s + ")";
}

}  // namespace automod
