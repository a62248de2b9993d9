// openDataset and the non-folder sources: Fashion-MNIST IDX files and the synthetic-face generator.
#include <sys/wait.h>
#include <torch/nn/functional.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/util/error.h"
#include "training/data.h"
#include "training/data_folder.h"

namespace automod {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

std::string shellQuote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

fs::path findOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

int64_t countLines(const fs::path& path) {
  std::ifstream in(path);
  int64_t n = 0;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) ++n;
  return n;
}

const char* kFashionFiles[2][2] = {{"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"},
                                   {"train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"}};

fs::path idxFile(const fs::path& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""})
    if (fs::exists(dir / (stem + ext))) return dir / (stem + ext);
  throw Error("Fashion-MNIST file " + stem + "(.gz) not found in " + dir.string() +
              ": install it with `apt-get install dataset-fashion-mnist`");
}

std::unique_ptr<ImageDataset> openFashionMnist(const DataSpec& spec) {
  const fs::path dir = spec.path.empty() ? fashionMnistDir() : spec.path;
  if (dir.empty())
    throw Error("Fashion-MNIST is not installed: run `apt-get install dataset-fashion-mnist` (or ./packaging/bootstrap.sh)");
  auto train = readIdx(idxFile(dir, kFashionFiles[0][0]));
  auto test = readIdx(idxFile(dir, kFashionFiles[0][1]));
  TORCH_CHECK(train.dim() == 3 && test.dim() == 3, "Fashion-MNIST image files must hold [N, H, W] images");
  int64_t n_train = train.size(0);
  if (spec.count > 0) n_train = std::min(n_train, spec.count);
  const int64_t held = std::min<int64_t>(
      test.size(0), std::max<int64_t>(1, std::llround(spec.held_out_fraction * static_cast<double>(n_train))));
  if (n_train < std::max<int64_t>(1, spec.min_images))
    throw Error("Fashion-MNIST: " + std::to_string(n_train) + " images are too few for one batch of " +
                std::to_string(spec.min_images));
  // Training images first, then the held-out ones (from the official test split).
  auto all = torch::cat({train.narrow(0, 0, n_train), test.narrow(0, 0, held)}).unsqueeze(1);
  all = F::pad(all, F::PadFuncOptions({2, 2, 2, 2}));  // 28 → 32, black border like the background
  if (spec.max_resolution > 32) {
    all = F::interpolate(all.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{spec.max_resolution, spec.max_resolution})
                                                      .mode(torch::kBilinear)
                                                      .align_corners(false))
              .round()
              .clamp(0, 255)
              .to(torch::kUInt8);
  }
  if (spec.channels == 3) all = all.expand({-1, 3, -1, -1});
  all = all.contiguous();
  return std::make_unique<TensorImageDataset>(
      all, held,
      "fashion-mnist " + dir.string() + " (" + std::to_string(n_train) + " training + " + std::to_string(held) +
          " held-out images from the test split, 28 px padded to 32" +
          (spec.max_resolution > 32 ? ", upscaled to " + std::to_string(spec.max_resolution) : std::string()) + ")");
}

}  // namespace

fs::path defaultCacheDir() {
  if (const char* x = std::getenv("AUTOMOD_CACHE_DIR"); x && *x) return x;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "automod";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "automod";
  return fs::temp_directory_path() / "automod-cache";
}

fs::path fashionMnistDir() {
  for (const char* d : {"/usr/share/datasets/fashion-mnist", "/usr/share/fashion-mnist", "/usr/share/dataset-fashion-mnist"})
    if (fs::exists(fs::path(d) / "train-images-idx3-ubyte.gz") || fs::exists(fs::path(d) / "train-images-idx3-ubyte"))
      return d;
  return {};
}

torch::Tensor readIdx(const fs::path& path) {
  // gzread reads plain files transparently, so one path handles both.
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open " + path.string());
  auto fail = [&](const std::string& why) {
    gzclose(f);
    throw Error("cannot read IDX file " + path.string() + ": " + why);
  };
  unsigned char magic[4];
  if (gzread(f, magic, 4) != 4) fail("truncated header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08) fail("not an unsigned-byte IDX file");
  const int dims = magic[3];
  if (dims < 1 || dims > 4) fail("bad number of dimensions");
  std::vector<int64_t> shape;
  int64_t total = 1;
  for (int d = 0; d < dims; ++d) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) fail("truncated header");
    const int64_t v = (int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    shape.push_back(v);
    total *= v;
  }
  auto t = torch::empty(shape, torch::kUInt8);
  auto* p = t.data_ptr<uint8_t>();
  int64_t done = 0;
  while (done < total) {
    const int want = static_cast<int>(std::min<int64_t>(total - done, 1 << 30));
    const int got = gzread(f, p + done, static_cast<unsigned>(want));
    if (got <= 0) fail("truncated data (" + std::to_string(done) + " of " + std::to_string(total) + " bytes)");
    done += got;
  }
  gzclose(f);
  return t;
}

fs::path facesPackageDir() {
  std::vector<fs::path> candidates;
  if (const char* d = std::getenv("AUTOMOD_FACES_DIR"); d && *d) candidates.emplace_back(d);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path().parent_path() / "share" / "automod" / "faces");
    candidates.push_back(exe.parent_path().parent_path().parent_path() / "packaging" / "faces");
  }
#ifdef AUTOMOD_SOURCE_DIR
  candidates.push_back(fs::path(AUTOMOD_SOURCE_DIR) / "packaging" / "faces");
#endif
  for (auto& c : candidates)
    if (fs::exists(c / "make_faces.mjs")) {
      if (!fs::exists(c / "node_modules" / "facesjs") || !fs::exists(c / "node_modules" / "@resvg" / "resvg-js"))
        throw Error("the synthetic-face generator's npm packages are missing in " + (c / "node_modules").string() +
                    ": run ./packaging/bootstrap.sh (or `npm ci --prefix " + c.string() + "`)");
      return c;
    }
  throw Error("the synthetic-face generator (packaging/faces/make_faces.mjs) was not found: run ./packaging/bootstrap.sh");
}

void makeFaces(const FaceOptions& o, void (*progress)(int64_t, int64_t, void*), void* user) {
  if (o.count < 1) throw Error("the number of faces must be at least 1");
  if (o.size < 4 || o.size > 2048) throw Error("the face size must be between 4 and 2048 px");
  if (o.out.empty()) throw Error("no output folder for the faces");
  const fs::path node = findOnPath("node");
  if (node.empty()) throw Error("node (Node.js) is not installed: run ./packaging/bootstrap.sh");
  const fs::path dir = facesPackageDir();
  fs::create_directories(o.out);
  const fs::path err = o.out / ".make_faces.stderr";
  const std::string cmd = shellQuote(node.string()) + " " + shellQuote((dir / "make_faces.mjs").string()) +
                          " --count " + std::to_string(o.count) + " --size " + std::to_string(o.size) + " --seed " +
                          std::to_string(o.seed) + " --out " + shellQuote(o.out.string()) + " 2>" +
                          shellQuote(err.string());
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw Error("cannot start node to generate faces");
  char line[256];
  while (std::fgets(line, sizeof line, p)) {
    long long done = 0, total = 0;
    if (std::sscanf(line, "progress %lld %lld", &done, &total) == 2 && progress) progress(done, total, user);
  }
  const int status = ::pclose(p);
  std::string message;
  {
    std::ifstream in(err);
    std::string l;
    while (std::getline(in, l))
      if (!l.empty()) message = l;
  }
  std::error_code ec;
  fs::remove(err, ec);
  if (status != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("generating faces failed" + (message.empty() ? std::string() : ": " + message));
}

fs::path cachedFaces(int64_t count, int size, uint64_t seed, const fs::path& cache_dir,
                     const std::function<void(const std::string&)>& log) {
  const auto dir = (cache_dir.empty() ? defaultCacheDir() : cache_dir) /
                   ("faces-" + std::to_string(count) + "-" + std::to_string(size) + "-" + std::to_string(seed));
  std::error_code ec;
  if (!fs::exists(dir / "attributes.jsonl", ec)) {
    if (log) log("rendering " + std::to_string(count) + " labelled faces into " + dir.string());
    makeFaces(FaceOptions{.count = count, .size = size, .seed = seed, .out = dir});
  }
  return dir;
}

std::unique_ptr<ImageDataset> openDataset(const DataSpec& spec) {
  if (spec.channels != 1 && spec.channels != 3) throw Error("images must have 1 or 3 channels");
  if (spec.held_out_fraction < 0 || spec.held_out_fraction >= 1)
    throw Error("the held-out fraction must be in [0, 1)");
  const fs::path cache = spec.cache_dir.empty() ? defaultCacheDir() : spec.cache_dir;
  FolderDatasetOptions f;
  f.cache_dir = cache / "images";
  f.channels = spec.channels;
  f.max_resolution = spec.max_resolution;
  f.held_out_fraction = spec.held_out_fraction;
  f.seed = spec.seed;
  f.min_images = spec.min_images;
  f.verbose = spec.verbose;
  switch (spec.kind) {
    case DataSpec::Folder:
      if (spec.path.empty()) throw Error("no data folder given");
      f.folder = spec.path;
      return std::make_unique<FolderDataset>(f);
    case DataSpec::FashionMnist:
      return openFashionMnist(spec);
    case DataSpec::Faces: {
      if (spec.count < 2) throw Error("synthetic faces: ask for at least 2 faces (one training, one held out)");
      FaceOptions o;
      o.count = spec.count;
      o.size = spec.max_resolution;
      o.seed = spec.seed;
      o.out = !spec.path.empty() ? spec.path
                                 : cache / ("faces-n" + std::to_string(o.count) + "-s" + std::to_string(o.size) +
                                            "-seed" + std::to_string(o.seed));
      if (countLines(o.out / "attributes.jsonl") != o.count) {
        auto report = [](int64_t done, int64_t total, void* verbose) {
          if (*static_cast<const bool*>(verbose))
            std::fprintf(stderr, "\rgenerating faces %lld/%lld", static_cast<long long>(done), static_cast<long long>(total));
          if (done == total && *static_cast<const bool*>(verbose)) std::fprintf(stderr, "\n");
        };
        bool verbose = spec.verbose;
        makeFaces(o, report, &verbose);
      }
      f.folder = o.out;
      f.kind = "faces";
      return std::make_unique<FolderDataset>(f);
    }
  }
  throw Error("unknown data kind");
}

}  // namespace automod
