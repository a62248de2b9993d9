// Training data sources (docs/design.md §3 "Data"): image folders with their per-resolution cache, odd and
// broken files, the held-out split, clear errors, Fashion-MNIST IDX files.
#include <QtTest>

#include <fstream>
#include <set>
#include <zlib.h>

#include "core/io/image.h"
#include "core/util/error.h"
#include "training/data.h"
#include "training/data_folder.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {

// A folder of `n` smooth test images of assorted sizes, in nested subfolders.
fs::path makeFolder(const QTemporaryDir& dir, int n, const std::string& name = "images") {
  const fs::path root = test::tmpPath(dir, name);
  for (int i = 0; i < n; ++i) {
    const fs::path sub = root / (i % 2 ? "a" : "b/c");
    fs::create_directories(sub);
    test::writeTestImage(sub / ("img" + std::to_string(i) + (i % 3 ? ".png" : ".jpg")), 24 + 4 * (i % 3), 20 + 2 * i, i);
  }
  return root;
}

FolderDatasetOptions options(const QTemporaryDir& dir, const fs::path& folder, int res = 16) {
  FolderDatasetOptions o;
  o.folder = folder;
  o.cache_dir = test::tmpPath(dir, "cache");
  o.max_resolution = res;
  o.held_out_fraction = 0.2;
  o.seed = 7;
  return o;
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

class TestData : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void folderIsReadRecursivelyAndCropped();
  void unreadableFilesAreSkippedAndCounted();
  void heldOutSplitIsDisjointAndStable();
  void cacheIsReusedAcrossRuns();
  void cacheIsRebuiltWhenTheFolderChanges();
  void lowerResolutionsAreAreaDownsampled();
  void smallImagesAreUpscaledWithAWarning();
  void greyscaleFolders();
  void emptyOrMissingFoldersGiveClearErrors();
  void tooFewImagesGiveAClearError();
  void idxReaderHandlesGzipAndPlainFiles();
  void fashionMnistIsPaddedTo32();
};

void TestData::folderIsReadRecursivelyAndCropped() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 10);
  FolderDataset d(options(dir, root));
  QCOMPARE(d.size() + d.heldOutSize(), int64_t{10});
  QCOMPARE(d.heldOutSize(), int64_t{2});
  QCOMPARE(d.channels(), 3);
  auto b = d.batch({0, 1, 2}, 16);
  QCOMPARE(b.sizes(), (torch::IntArrayRef{3, 3, 16, 16}));
  QCOMPARE(b.scalar_type(), torch::kUInt8);
  // Each image is the center crop of its file, area-resized.
  for (int64_t i = 0; i < 3; ++i) {
    auto expected = centerCropResize(readImage(root / d.trainFile(i)), 16).permute({2, 0, 1});
    QVERIFY(test::maxAbsDiff(b[i], expected) <= 1);
  }
  QVERIFY(d.describe().find("8 training + 2 held-out") != std::string::npos);
}

void TestData::unreadableFilesAreSkippedAndCounted() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 6);
  std::ofstream(root / "broken.jpg") << "this is not a JPEG";
  std::ofstream(root / "a" / "truncated.png") << "\x89PNG\r\n\x1a\n";
  std::ofstream(root / "notes.txt") << "ignored: not an image extension";
  FolderDataset d(options(dir, root));
  QCOMPARE(d.size() + d.heldOutSize(), int64_t{6});
  QCOMPARE(d.unreadableCount(), int64_t{2});
  const auto text = d.describe();
  QVERIFY2(text.find("2 unreadable skipped") != std::string::npos, text.c_str());
  // The count survives the cache (no decoding the second time).
  FolderDataset again(options(dir, root));
  QCOMPARE(again.unreadableCount(), int64_t{2});
}

void TestData::heldOutSplitIsDisjointAndStable() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 20);
  FolderDataset d(options(dir, root));
  std::set<std::string> train, held;
  for (int64_t i = 0; i < d.size(); ++i) train.insert(d.trainFile(i));
  for (int64_t i = 0; i < d.heldOutSize(); ++i) held.insert(d.heldOutFile(i));
  QCOMPARE(static_cast<int64_t>(train.size()), d.size());
  QCOMPARE(held.size(), size_t{4});
  for (auto& f : held) QVERIFY(!train.count(f));
  FolderDataset same(options(dir, root));
  for (int64_t i = 0; i < d.heldOutSize(); ++i) QCOMPARE(same.heldOutFile(i), d.heldOutFile(i));
  auto other_seed = options(dir, root);
  other_seed.seed = 8;
  FolderDataset other(other_seed);
  bool differs = false;
  for (int64_t i = 0; i < d.heldOutSize(); ++i) differs |= other.heldOutFile(i) != d.heldOutFile(i);
  QVERIFY(differs);
  QVERIFY(test::maxAbsDiff(d.heldOut({0, 1}, 16), same.heldOut({0, 1}, 16)) == 0);
}

void TestData::cacheIsReusedAcrossRuns() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 6);
  torch::Tensor first;
  fs::path cache;
  {
    FolderDataset d(options(dir, root));
    first = d.batch({0, 1, 2, 3}, 16).clone();
    cache = d.cacheFile(16);
  }
  QVERIFY(fs::exists(cache));
  const auto stamp = fs::last_write_time(cache);
  // Make the sources unreadable (for a non-root user): the second run must read only the cache,
  // and must not rewrite it.
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) fs::permissions(e.path(), fs::perms::none);
  FolderDataset d(options(dir, root));
  QVERIFY(test::maxAbsDiff(d.batch({0, 1, 2, 3}, 16), first) == 0);
  QCOMPARE(fs::last_write_time(cache), stamp);
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write);
}

void TestData::cacheIsRebuiltWhenTheFolderChanges() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 6);
  fs::path before;
  {
    FolderDataset d(options(dir, root));
    before = d.cacheFile(16);
  }
  test::writeTestImage(root / "new.png", 30, 30, 99);
  FolderDataset d(options(dir, root));
  QCOMPARE(d.size() + d.heldOutSize(), int64_t{7});
  QVERIFY(d.cacheFile(16) != before);
  bool found = false;
  for (int64_t i = 0; i < d.size(); ++i) found |= d.trainFile(i) == "new.png";
  for (int64_t i = 0; i < d.heldOutSize(); ++i) found |= d.heldOutFile(i) == "new.png";
  QVERIFY(found);
}

void TestData::lowerResolutionsAreAreaDownsampled() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 6);
  FolderDataset d(options(dir, root, 16));
  auto full = d.batch({0, 1}, 16).to(torch::kFloat32);
  auto half = d.batch({0, 1}, 8);
  QCOMPARE(half.sizes(), (torch::IntArrayRef{2, 3, 8, 8}));
  auto expected = torch::avg_pool2d(full, 2);  // area ×½ is the 2×2 mean
  QVERIFY(test::maxAbsDiff(half.to(torch::kFloat32), expected) <= 0.5 + 1e-4);
  QVERIFY(fs::exists(d.cacheFile(8)));
  const auto msg = errorOf([&] { d.batch({0}, 32); });
  QVERIFY2(msg.find("above the data set's maximum") != std::string::npos, msg.c_str());
}

void TestData::smallImagesAreUpscaledWithAWarning() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 5);
  test::writeTestImage(root / "tiny.png", 8, 10, 5);
  FolderDataset d(options(dir, root, 16));
  QCOMPARE(d.upscaledCount(), int64_t{1});
  QVERIFY2(d.describe().find("1 smaller than 16 px were upscaled") != std::string::npos, d.describe().c_str());
  QCOMPARE(d.size() + d.heldOutSize(), int64_t{6});
}

void TestData::greyscaleFolders() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 5);
  auto o = options(dir, root);
  o.channels = 1;
  FolderDataset d(o);
  QCOMPARE(d.channels(), 1);
  QCOMPARE(d.batch({0}, 16).sizes(), (torch::IntArrayRef{1, 1, 16, 16}));
}

void TestData::emptyOrMissingFoldersGiveClearErrors() {
  QTemporaryDir dir;
  const auto empty = test::tmpPath(dir, "empty");
  fs::create_directories(empty / "sub");
  std::ofstream(empty / "sub" / "readme.txt") << "no images here";
  DataSpec spec;
  spec.path = empty;
  spec.cache_dir = test::tmpPath(dir, "cache");
  auto msg = errorOf([&] { openDataset(spec); });
  QVERIFY2(msg.find("no images") != std::string::npos, msg.c_str());
  spec.path = test::tmpPath(dir, "missing");
  msg = errorOf([&] { openDataset(spec); });
  QVERIFY2(msg.find("does not exist") != std::string::npos, msg.c_str());
  // Only broken files: says none could be read, and why.
  const auto broken = test::tmpPath(dir, "broken");
  fs::create_directories(broken);
  std::ofstream(broken / "x.jpg") << "garbage";
  spec.path = broken;
  msg = errorOf([&] { openDataset(spec); });
  QVERIFY2(msg.find("could be read") != std::string::npos, msg.c_str());
}

void TestData::tooFewImagesGiveAClearError() {
  QTemporaryDir dir;
  const auto root = makeFolder(dir, 3);
  DataSpec spec;
  spec.path = root;
  spec.cache_dir = test::tmpPath(dir, "cache");
  spec.max_resolution = 16;
  spec.min_images = 4;
  const auto msg = errorOf([&] { openDataset(spec); });
  QVERIFY2(msg.find("too few") != std::string::npos, msg.c_str());
  spec.min_images = 2;
  auto d = openDataset(spec);  // 3 images: 2 training + 1 held out
  QCOMPARE(d->size(), int64_t{2});
  QCOMPARE(d->heldOutSize(), int64_t{1});
}

void TestData::idxReaderHandlesGzipAndPlainFiles() {
  QTemporaryDir dir;
  // A 2×3×4 IDX file: magic 0 0 8 3, dims, then bytes 0..23.
  std::string bytes{'\0', '\0', '\x08', '\x03', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
  for (int i = 0; i < 24; ++i) bytes.push_back(static_cast<char>(i));
  const auto plain = test::tmpPath(dir, "x-idx3-ubyte");
  std::ofstream(plain, std::ios::binary) << bytes;
  const auto gz = test::tmpPath(dir, "x-idx3-ubyte.gz");
  gzFile f = gzopen(gz.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  for (auto& p : {plain, gz}) {
    auto t = readIdx(p);
    QCOMPARE(t.sizes(), (torch::IntArrayRef{2, 3, 4}));
    QCOMPARE(t[1][2][3].item<int>(), 23);
  }
  std::ofstream(test::tmpPath(dir, "short"), std::ios::binary) << bytes.substr(0, 20);
  const auto msg = errorOf([&] { readIdx(test::tmpPath(dir, "short")); });
  QVERIFY2(msg.find("truncated") != std::string::npos, msg.c_str());
}

void TestData::fashionMnistIsPaddedTo32() {
  if (fashionMnistDir().empty()) QSKIP("Debian package dataset-fashion-mnist is not installed");
  DataSpec spec;
  spec.kind = DataSpec::FashionMnist;
  spec.count = 300;
  spec.channels = 1;
  spec.max_resolution = 32;
  auto d = openDataset(spec);
  QCOMPARE(d->size(), int64_t{300});
  QCOMPARE(d->heldOutSize(), int64_t{15});
  auto b = d->batch({0, 1, 299}, 32);
  QCOMPARE(b.sizes(), (torch::IntArrayRef{3, 1, 32, 32}));
  // The 2 px border is padding; the clothes are inside and not blank.
  QCOMPARE(b.narrow(2, 0, 2).max().item<int>(), 0);
  QCOMPARE(b.narrow(3, 30, 2).max().item<int>(), 0);
  QVERIFY(b.narrow(2, 2, 28).narrow(3, 2, 28).to(torch::kFloat32).mean().item<double>() > 10);
  // The same pixels as the IDX file.
  auto raw = readIdx(fashionMnistDir() / "train-images-idx3-ubyte.gz");
  QVERIFY(test::maxAbsDiff(b[0][0].narrow(0, 2, 28).narrow(1, 2, 28), raw[0]) == 0);
  QCOMPARE(d->heldOut({0}, 16).sizes(), (torch::IntArrayRef{1, 1, 16, 16}));
  spec.channels = 3;
  QCOMPARE(openDataset(spec)->batch({0}, 32).size(1), int64_t{3});
}

QTEST_GUILESS_MAIN(TestData)
#include "tst_data.moc"
