// Loaders that cannot be fooled: JSON nested 100 000 deep in any file we read is refused with a
// sentence (never a stack overflow), library exceptions become sentences (the library's text only
// under --verbose), damaged images are reported without libpng's or libjpeg's own lines on stderr,
// and each bad photo of several is named.
#include <QtTest>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <new>

#include "core/align/face.h"
#include "core/edit/attribute.h"
#include "core/edit/recipe.h"
#include "core/edit/sources.h"
#include "core/io/archive.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"
#include "testutil.h"
#include "training/schedule.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {

const char* kAstronaut = "/usr/lib/python3/dist-packages/imageio/resources/images/astronaut.png";
const char* kGrace = "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg";

std::string deepJson(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

void writeText(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::vector<uint8_t> readBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void writeBytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// The automod::Error message of f(), or "" when f() succeeds. Any other exception fails the test.
std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

// Everything written to file descriptor 2 while it lives (libpng and libjpeg print there directly).
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    std::snprintf(path_, sizeof path_, "/tmp/automod-stderr-XXXXXX");
    fd_ = ::mkstemp(path_);
    ::dup2(fd_, 2);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    std::ifstream in(path_);
    return {std::istreambuf_iterator<char>(in), {}};
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    ::close(fd_);
    saved_ = -1;
  }
  int saved_ = -1, fd_ = -1;
  char path_[64];
};

// An .amod file written byte by byte, so that its header can be anything (writeArchive would refuse
// or, for a deep header, recurse): magic, version, header, data, trailer with a valid checksum.
void writeRawArchive(const fs::path& p, const std::string& header, const std::string& data = {}) {
  std::string b = "AMODFILE";
  const uint32_t version = 1;
  const uint64_t hlen = header.size();
  b.append(reinterpret_cast<const char*>(&version), 4);
  b.append(reinterpret_cast<const char*>(&hlen), 8);
  b += header;
  b += data;
  const uint32_t crc = crc32(b.data(), b.size());
  const uint64_t total = b.size() + 20;
  b += "AMODEND!";
  b.append(reinterpret_cast<const char*>(&total), 8);
  b.append(reinterpret_cast<const char*>(&crc), 4);
  writeText(p, b);
}

// A PNG whose image data is damaged (a critical chunk's checksum fails).
std::vector<uint8_t> damagedPng() {
  cv::Mat img(64, 64, CV_8UC3);
  cv::randu(img, 0, 255);
  std::vector<uint8_t> png;
  cv::imencode(".png", img, png);
  for (size_t i = 60; i < 90 && i < png.size(); ++i) png[i] ^= 0x5A;  // inside IDAT
  return png;
}

// A JPEG whose entropy-coded data is damaged (a stretch of the scan overwritten), end marker intact.
std::vector<uint8_t> damagedJpeg() {
  cv::Mat img(128, 128, CV_8UC3);
  cv::randu(img, 0, 255);
  std::vector<uint8_t> jpg;
  cv::imencode(".jpg", img, jpg);
  for (size_t i = jpg.size() / 2; i < jpg.size() / 2 + 200; ++i) jpg[i] = static_cast<uint8_t>(i * 37 % 251);
  return jpg;
}

}  // namespace

class TestLoaders : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void deeplyNestedFilesAreRefused_data();
  void deeplyNestedFilesAreRefused();
  void bracketsInsideStringsDoNotCount();
  void syntaxErrorIsASentenceWithTheLibraryTextAsDetail();
  void oversizedJsonIsRefused();
  void infoOnDeeplyNestedHeaderDoesNotCrash();
  void numbersOutOfRangeAreSentences_data();
  void numbersOutOfRangeAreSentences();
  void alignmentSidecarsAreChecked_data();
  void alignmentSidecarsAreChecked();
  void libraryExceptionsBecomeSentences();
  void outOfMemoryFromLibTorchSaysHowMuch();
  void damagedImagesGiveSentencesAndNothingOnStderr_data();
  void damagedImagesGiveSentencesAndNothingOnStderr();
  void pngWarningsStayOffStderr();
  void gigapixelHeadersAreRefusedBeforeDecoding();
  void decodingFromBytesEqualsReadingTheFile();
  void encodeNamesEveryBadPhoto();
  void verboseAddsTheLibraryText();

 private:
  QTemporaryDir dir_;
  fs::path path(const std::string& name) const { return test::tmpPath(dir_, name); }
};

void TestLoaders::initTestCase() { QVERIFY(dir_.isValid()); }

void TestLoaders::deeplyNestedFilesAreRefused_data() {
  QTest::addColumn<QString>("kind");
  for (const char* k : {"model header", "recipe", "latent file", "attribute file", "preset", "project text"})
    QTest::newRow(k) << QString(k);
}

void TestLoaders::deeplyNestedFilesAreRefused() {
  QFETCH(QString, kind);
  const std::string deep = deepJson(100000);
  std::string err;
  if (kind == "model header") {
    const auto p = path("deep.amod");
    writeRawArchive(p, deep);
    err = errorOf([&] { loadModel(p); });
  } else if (kind == "recipe") {
    const auto p = path("deep-recipe.json");
    writeText(p, "{\"version\": 1, \"sources\": " + deep + "}");
    err = errorOf([&] { Recipe::load(p); });
  } else if (kind == "latent file") {
    const auto p = path("deep-latents.json");
    writeText(p, deep);
    err = errorOf([&] { readLatentFile(p); });
  } else if (kind == "attribute file") {
    const auto p = path("deep-attribute.json");
    writeText(p, "{\"vector\": " + deep + "}");
    err = errorOf([&] { AttributeVector::load(p); });
  } else if (kind == "preset") {
    const auto p = path("deep-preset.json");
    writeText(p, deep);
    err = errorOf([&] { loadPreset(p.string()); });
  } else {  // the project loader (ui/document.cpp) checks Qt's input with the same helper
    err = errorOf([&] { checkJsonLimits(deep, "the project"); });
  }
  QVERIFY2(err.find("nested more than 64 levels deep") != std::string::npos, err.c_str());
  QVERIFY2(err.find("[json.exception") == std::string::npos, err.c_str());
}

void TestLoaders::bracketsInsideStringsDoNotCount() {
  const std::string text = "{\"name\": \"" + std::string(1000, '[') + "\\\"{{{\", \"v\": [[1]]}";
  auto j = parseJsonLimited(text, "test");
  QCOMPARE(j.at("v")[0][0].get<int>(), 1);
  QCOMPARE(jsonDepth(j), 3);
  QCOMPARE(jsonDepth(parseJsonLimited(deepJson(64), "test")), 64);
  QVERIFY(!errorOf([] { parseJsonLimited(deepJson(65), "test"); }).empty());
}

void TestLoaders::syntaxErrorIsASentenceWithTheLibraryTextAsDetail() {
  const auto p = path("broken-recipe.json");
  writeText(p, "{\"version\": 1,\n \"sources\": [1, 2,,]}");
  try {
    Recipe::load(p);
    QFAIL("a broken recipe loaded");
  } catch (const Error& e) {
    const std::string msg = e.what();
    QVERIFY2(msg.find("recipe " + p.string() + " is not valid JSON (at line 2") != std::string::npos, e.what());
    QVERIFY2(msg.find("[json.exception") == std::string::npos, e.what());
    QVERIFY2(e.detail().find("[json.exception.parse_error") != std::string::npos, e.detail().c_str());
  }
}

void TestLoaders::oversizedJsonIsRefused() {
  JsonLimits small;
  small.max_bytes = 100;
  std::string padded(200, ' ');
  padded += "[]";
  const auto err = errorOf([&] { parseJsonLimited(padded, "the test file", small); });
  QVERIFY2(err.find("the test file is too large") != std::string::npos, err.c_str());
  const auto p = path("big.json");
  writeText(p, "[" + std::string(1000, ' ') + "]");
  std::ifstream in(p);
  QVERIFY(!errorOf([&] { parseJsonLimited(in, "big.json", small); }).empty());
}

void TestLoaders::infoOnDeeplyNestedHeaderDoesNotCrash() {
  // A valid checksum and a header of 100 000 nested lists in its metadata: this crashed `automod info`.
  const auto p = path("deep-info.amod");
  writeRawArchive(p, "{\"format\": \"automodulator\", \"metadata\": " + deepJson(100000) + ", \"tensors\": []}");
  auto r = test::runAutomod({"info", p.string()});
  QCOMPARE(r.code, 1);
  QVERIFY2(r.err.find("nested more than 64 levels deep") != std::string::npos, r.err.c_str());
  QCOMPARE(std::count(r.err.begin(), r.err.end(), '\n'), 1L);
}

void TestLoaders::alignmentSidecarsAreChecked_data() {
  // fuzz_json's finding in ModelConfig::fromJson (get<int>() of 1e300, undefined behaviour) applies to
  // sidecars too: each of these was converted unchecked before.
  QTest::addColumn<QString>("json");
  QTest::addColumn<QString>("expected");
  const QString quad = R"("quad": [[0, 0], [0, 1], [1, 1], [1, 0]], "photo_size": [100, 80])";
  QTest::newRow("crop size 1e300") << R"({"forward": [1, 0, 0, 0, 1, 0], "crop_size": 1e300, )" + quad + "}"
                                   << "crop_size must be a whole number from 1 to 16384";
  QTest::newRow("photo width a string") << R"({"forward": [1, 0, 0, 0, 1, 0], "crop_size": 64, "quad": [[0, 0], [0, 1], [1, 1], [1, 0]], "photo_size": ["wide", 80]})"
                                        << "the photo width must be a whole number";
  QTest::newRow("matrix overflowing") << R"({"forward": [1e308, 0, 0, 0, 1e308, 0], "crop_size": 64, )" + quad + "}"
                                      << "its matrix cannot be inverted";
  QTest::newRow("singular matrix") << R"({"forward": [1, 2, 0, 2, 4, 0], "crop_size": 64, )" + quad + "}"
                                   << "its matrix cannot be inverted";
  QTest::newRow("five numbers") << R"({"forward": [1, 0, 0, 0, 1], "crop_size": 64, )" + quad + "}"
                                << "'forward' must hold 6 numbers";
  QTest::newRow("no quad") << R"({"forward": [1, 0, 0, 0, 1, 0], "crop_size": 64, "photo_size": [100, 80]})"
                           << "the field 'quad' is missing";
}

void TestLoaders::numbersOutOfRangeAreSentences_data() {
  // fuzz_json's finding (crash-cb3bdbbd…: an attribute file whose latent_dim is 4.1e60; nlohmann's
  // get<int>() of it is undefined behaviour) and its kin: each number is checked before it is converted.
  QTest::addColumn<QString>("kind");
  QTest::addColumn<QString>("json");
  QTest::addColumn<QString>("expected");
  QTest::newRow("attribute latent_dim 4.1e60")
      << "attribute"
      << R"({"kind": "automod-attribute", "latent_dim": 4111111111111111111111111111111111111111111111111111111111111,
           "resolution": 8, "scales": "0-1", "vector": [0.1, 0.2, 0.3, 0.4], "version": 1})"
      << "field 'latent_dim' must be a whole number from 1 to 1048576";
  QTest::newRow("attribute resolution 1e300")
      << "attribute" << R"({"resolution": 1e300, "scales": "0-1", "vector": [0.1]})"
      << "field 'resolution' has the wrong type";
  QTest::newRow("attribute vector 1e300")
      << "attribute" << R"({"resolution": 8, "scales": "0-1", "vector": [1e300]})"
      << "field 'vector' holds a number too large for a float";
  QTest::newRow("latent 1e300") << "latent" << "[0.5, 1e300]" << "holds a number too large for a float";
  QTest::newRow("config resolution 1e300")
      << "config" << R"({"resolution": 1e300, "widths": [8, 8]})" << "config: field 'resolution' must be a whole number";
  QTest::newRow("config width 2^40")
      << "config" << R"({"resolution": 8, "widths": [8, 1099511627776]})" << "config: field 'widths' must be a whole number";
}

void TestLoaders::numbersOutOfRangeAreSentences() {
  QFETCH(QString, kind);
  QFETCH(QString, json);
  QFETCH(QString, expected);
  const auto j = parseJsonLimited(json.toStdString(), "test file");
  const auto err = errorOf([&] {
    if (kind == "attribute") AttributeVector::fromJson(j, "attr.json");
    else if (kind == "latent") {
      QTemporaryDir dir;
      const auto path = std::filesystem::path(dir.filePath("z.json").toStdString());
      std::ofstream(path) << json.toStdString();
      readLatentFile(path);
    }
    else ModelConfig::fromJson(j);
  });
  QVERIFY2(err.find(expected.toStdString()) != std::string::npos, err.c_str());
}

void TestLoaders::alignmentSidecarsAreChecked() {
  QFETCH(QString, json);
  QFETCH(QString, expected);
  const auto err = errorOf([&] { AlignTransform::fromJson(parseJsonLimited(json.toStdString(), "sidecar")); });
  QVERIFY2(err.find("malformed alignment transform: " + expected.toStdString()) == 0, err.c_str());
}

void TestLoaders::libraryExceptionsBecomeSentences() {
  try {
    nlohmann::json j = "text";
    (void)j.get<int>();
    QFAIL("no exception");
  } catch (const std::exception& e) {
    const auto msg = errorMessage(e);
    QVERIFY2(msg.find("wrong type (a number is expected, not a string)") != std::string::npos, msg.c_str());
    QVERIFY(msg.find("json.exception") == std::string::npos);
    QVERIFY(errorDetail(e).find("type_error.302") != std::string::npos);
  }
  try {
    (void)nlohmann::json::object().at("widths");
    QFAIL("no exception");
  } catch (const std::exception& e) {
    QVERIFY2(errorMessage(e).find("the field 'widths' is missing") != std::string::npos, errorMessage(e).c_str());
  }
  const std::bad_alloc oom;
  QVERIFY2(errorMessage(oom).find("not enough memory") != std::string::npos, errorMessage(oom).c_str());
  try {
    cv::Mat m;
    cv::cvtColor(m, m, cv::COLOR_BGR2RGB);  // OpenCV's assertion on an empty image
    QFAIL("no exception");
  } catch (const std::exception& e) {
    QVERIFY2(errorMessage(e).find("OpenCV(") == std::string::npos, errorMessage(e).c_str());
    QVERIFY(errorDetail(e).find("OpenCV(") != std::string::npos);
  }
  // Our own messages pass through unchanged and have no detail.
  const Error own("cannot read x.png: no such file");
  QCOMPARE(errorMessage(own), std::string("cannot read x.png: no such file"));
  QVERIFY(errorDetail(own).empty());
}

void TestLoaders::outOfMemoryFromLibTorchSaysHowMuch() {
  try {
    auto t = torch::empty({int64_t(1) << 48}, torch::kFloat32);  // 1 PB: more than any address space
    QFAIL("a 1 PB tensor was allocated");
  } catch (const std::exception& e) {
    const auto msg = errorMessage(e);
    QVERIFY2(msg.find("not enough memory") != std::string::npos, msg.c_str());
    QVERIFY2(msg.find("1125.9 TB") != std::string::npos, msg.c_str());
    QVERIFY2(msg.find("enforce fail") == std::string::npos && msg.find("alloc_cpu") == std::string::npos, msg.c_str());
    QVERIFY(isOutOfMemory(e));
    QCOMPARE(requestedBytes(e), uint64_t(1) << 50);
  }
}

void TestLoaders::damagedImagesGiveSentencesAndNothingOnStderr_data() {
  QTest::addColumn<QString>("kind");
  QTest::newRow("damaged png") << "png";
  QTest::newRow("damaged jpeg") << "jpg";
  QTest::newRow("truncated jpeg") << "cut.jpg";
  QTest::newRow("text named .png") << "text.png";
  QTest::newRow("truncated bmp") << "bmp";  // OpenCV's decoder throws, and OpenCV prints that to std::cerr
}

void TestLoaders::damagedImagesGiveSentencesAndNothingOnStderr() {
  QFETCH(QString, kind);
  const auto p = path("bad-" + kind.toStdString() + (kind.contains('.') ? "" : "." + kind.toStdString()));
  if (kind == "png") writeBytes(p, damagedPng());
  else if (kind == "jpg") writeBytes(p, damagedJpeg());
  else if (kind == "cut.jpg") {
    auto b = readBytes(kGrace);
    b.resize(b.size() / 2);
    writeBytes(p, b);
  } else if (kind == "bmp") {
    cv::Mat img(64, 64, CV_8UC3, cv::Scalar(10, 20, 30));
    std::vector<uint8_t> bmp;
    cv::imencode(".bmp", img, bmp);
    bmp.resize(bmp.size() / 3);
    writeBytes(p, bmp);
  } else {
    writeText(p, "this is not an image\n");
  }
  std::string err;
  StderrCapture capture;
  err = errorOf([&] { readImage(p, 3); });
  const auto printed = capture.text();
  QVERIFY2(!err.empty(), "a damaged image was read");
  QVERIFY2(err.rfind("cannot read " + p.string() + ": ", 0) == 0, err.c_str());
  QVERIFY2(err.find("OpenCV") == std::string::npos && err.find("libpng") == std::string::npos, err.c_str());
  QVERIFY2(printed.empty(), printed.c_str());
}

void TestLoaders::pngWarningsStayOffStderr() {
  // astronaut.png has an sRGB profile libpng warns about ("iCCP: known incorrect sRGB profile").
  if (!fs::exists(kAstronaut)) QSKIP("python3-imageio is not installed");
  StderrCapture capture;
  auto img = readImage(kAstronaut, 3);
  const auto printed = capture.text();
  QCOMPARE(img.size(0), int64_t(512));
  QVERIFY2(printed.empty(), printed.c_str());
}

void TestLoaders::gigapixelHeadersAreRefusedBeforeDecoding() {
  // A 64×64 image whose header claims 30000×30000 (PNG) or 65000×65000 (JPEG): a decompression bomb.
  cv::Mat img(64, 64, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<uint8_t> png, jpg;
  cv::imencode(".png", img, png);
  cv::imencode(".jpg", img, jpg);
  for (int k : {16, 20}) png[k] = 0, png[k + 1] = 0, png[k + 2] = 0x75, png[k + 3] = 0x30;  // 30000
  size_t sof = 2;
  while (!(jpg[sof] == 0xFF && jpg[sof + 1] == 0xC0)) sof += 2 + (size_t(jpg[sof + 2]) << 8 | jpg[sof + 3]);
  for (int k : {5, 7}) jpg[sof + k] = 0xFD, jpg[sof + k + 1] = 0xE8;  // 65000
  auto err = errorOf([&] { decodeImage(png.data(), png.size(), "bomb.png"); });
  QVERIFY2(err == "cannot read bomb.png: the image is 30000 × 30000 pixels (900 MP); images of at most 250 MP are read",
           err.c_str());
  err = errorOf([&] { decodeImage(jpg.data(), jpg.size(), "bomb.jpg"); });
  QVERIFY2(err.find("65000 × 65000 pixels (4225 MP)") != std::string::npos, err.c_str());
}

void TestLoaders::decodingFromBytesEqualsReadingTheFile() {
  for (const char* f : {kGrace, kAstronaut}) {
    if (!fs::exists(f)) continue;
    const auto bytes = readBytes(f);
    QVERIFY(torch::equal(decodeImage(bytes.data(), bytes.size(), f), readImage(f)));
  }
  const auto err = errorOf([] { decodeImage(nullptr, 0, "nothing"); });
  QVERIFY2(err == "cannot read nothing: the file is empty", err.c_str());
}

void TestLoaders::encodeNamesEveryBadPhoto() {
  auto m = test::tinyModel(16, 3);
  const auto model = path("tiny.amod");
  saveModel(model, *m);
  const auto good = path("good.png"), bad1 = path("bad1.png"), bad2 = path("bad2.jpg");
  test::writeTestImage(good, 40, 40, 3);
  writeBytes(bad1, damagedPng());
  writeText(bad2, "not an image");
  const auto out = path("z.json");
  auto r = test::runAutomod({"encode", model.string(), good.string(), bad1.string(), bad2.string(), "--no-align", "-o",
                             out.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  QVERIFY2(r.err.find("skipped: cannot read " + bad1.string()) != std::string::npos, r.err.c_str());
  QVERIFY2(r.err.find("skipped: cannot read " + bad2.string()) != std::string::npos, r.err.c_str());
  QVERIFY2(r.err.find("libpng") == std::string::npos, r.err.c_str());
  QCOMPARE(readLatentFile(out).size(), size_t(1));
  // Only bad photos: both are still named, then the failure.
  r = test::runAutomod({"encode", model.string(), bad1.string(), bad2.string(), "--no-align", "-o", out.string()});
  QCOMPARE(r.code, 1);
  QVERIFY2(r.err.find(bad1.string()) != std::string::npos && r.err.find(bad2.string()) != std::string::npos,
           r.err.c_str());
  QVERIFY2(r.err.find("none of the 2 photos could be encoded") != std::string::npos, r.err.c_str());
}

void TestLoaders::verboseAddsTheLibraryText() {
  auto m = test::tinyModel(16, 3);
  const auto model = path("tiny-v.amod");
  saveModel(model, *m);
  const auto bad = path("verbose-bad.png"), out = path("v.json");
  writeBytes(bad, damagedPng());
  auto quiet = test::runAutomod({"encode", model.string(), bad.string(), "--no-align", "-o", out.string()});
  auto loud = test::runAutomod({"--verbose", "encode", model.string(), bad.string(), "--no-align", "-o", out.string()});
  QVERIFY2(quiet.err.find("detail:") == std::string::npos, quiet.err.c_str());
  QVERIFY2(loud.err.find("automod: detail: libpng error") != std::string::npos, loud.err.c_str());
}

QTEST_GUILESS_MAIN(TestLoaders)
#include "tst_loaders.moc"
