// .amod model files: bit-exact round trips (also with the extra 8×8 block of flip-invariance
// training), files without that field loading as before, and a clear error for every kind of bad file,
// also for files with a valid checksum whose content is hostile (NaN weights, duplicate tensor names,
// tensors or configs far larger than the file, header fields of the wrong type). Files of format 1
// (CRC-32, packed tensors) still load; format 2 maps its aligned tensors, which stay valid when the file
// is replaced and can be written without touching it; `automod info` reads only the header.
#include <QtTest>

#include <cmath>
#include <cstring>
#include <fstream>

#include "core/io/archive.h"
#include "core/io/model_file.h"
#include "core/util/crc.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {
std::string loadError(const fs::path& p) {
  try {
    loadModel(p);
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}
std::vector<char> readBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void writeBytes(const fs::path& p, const std::vector<char>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}
// An archive written byte by byte around any header text, with a valid checksum.
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
  std::ofstream(p, std::ios::binary) << b;
}
// An archive in format 1 (before 64-byte alignment and CRC-32C): tensors packed after the header.
void writeFormat1(const fs::path& p, const TensorArchive& a) {
  nlohmann::json header = a.header, index = nlohmann::json::array();
  std::string data;
  for (auto& [name, t] : a.tensors) {
    auto c = t.contiguous();
    const size_t nbytes = static_cast<size_t>(c.nbytes());
    QCOMPARE(c.scalar_type(), torch::kFloat32);
    index.push_back({{"name", name}, {"dtype", "f32"}, {"shape", c.sizes().vec()}, {"offset", data.size()},
                     {"nbytes", nbytes}});
    data.append(static_cast<const char*>(c.data_ptr()), nbytes);
  }
  header["tensors"] = index;
  writeRawArchive(p, header.dump(), data);
}
// Every tensor of two models equal, names in the same order.
void compareStates(Automodulator& x, Automodulator& y) {
  auto a = namedState(x), b = namedState(y);
  QCOMPARE(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    QCOMPARE(a[i].first, b[i].first);
    QVERIFY2(torch::equal(a[i].second, b[i].second), a[i].first.c_str());
  }
}
// A model file whose `name` tensor has `value` at its first element.
fs::path modelWith(const QTemporaryDir& dir, const std::string& file, const std::vector<std::pair<std::string, float>>& bad) {
  auto m = test::tinyModel(16, 2);
  auto a = modelArchive(*m);
  size_t changed = 0;
  for (auto& [name, value] : bad)
    for (auto& [n, t] : a.tensors)
      if (n == name) t = t.clone(), t.view(-1)[0] = value, ++changed;
  if (changed != bad.size()) throw std::logic_error("modelWith: a tensor name is not in the model");
  const auto p = test::tmpPath(dir, file);
  writeArchive(p, a);
  return p;
}
}  // namespace

class TestModelFile : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void roundTripIsBitExact();
  void spectralNormVectorsSurviveSaveLoad();
  void metadataAndStageSurvive();
  void truncatedFileGivesClearError_data();
  void truncatedFileGivesClearError();
  void corruptByteIsDetected();
  void foreignFileIsRejected();
  void newerFormatAsksForUpdate();
  void tensorsNotMatchingConfigAreRejected();
  void failedWriteKeepsPreviousFile();
  void extraBlockRoundTrips();
  void fileWithoutExtraBlockFieldLoadsUnchanged();
  void plainModulationRoundTripsAndOldFilesStayEqualised();
  void nonFiniteWeightsAreRefused();
  void nonFiniteWeightsLoadWithAWarningWhenAllowed();
  void cliAllowNonfiniteTurnsTheRefusalIntoAWarning();
  void duplicateTensorNamesAreRefused();
  void hugeDeclaredTensorIsRefusedWithASentence_data();
  void hugeDeclaredTensorIsRefusedWithASentence();
  void configLargerThanTheFileIsRefusedBeforeBuilding();
  void headerFieldsOfTheWrongTypeAreNamed_data();
  void headerFieldsOfTheWrongTypeAreNamed();
  void checksumsMatchTheirStandards();
  void format1FilesStillLoad();
  void tensorsLieAlignedInTheFile();
  void loadedWeightsCanBeWrittenWithoutTouchingTheFile();
  void loadedModelOutlivesItsFileBeingReplaced();
  void ownedStorageLoadsTheSame();
  void infoReadsOnlyTheHeaderUnlessAskedToVerify();
};

void TestModelFile::roundTripIsBitExact() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 3);
  const auto p = test::tmpPath(dir, "m.amod");
  saveModel(p, *m);
  auto back = loadModel(p);
  QCOMPARE(back->config(), m->config());
  auto a = namedState(*m), b = namedState(*back);
  QCOMPARE(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    QCOMPARE(a[i].first, b[i].first);
    QVERIFY2(torch::equal(a[i].second, b[i].second), a[i].first.c_str());
  }
  auto z = m->randomLatents(2, 1);
  QVERIFY(torch::equal(m->decode(z), back->decode(z)));
}

void TestModelFile::extraBlockRoundTrips() {
  QTemporaryDir dir;
  auto c = test::tinyModel(16, 3)->config();
  c.extra_8x8_block = true;
  torch::manual_seed(8);
  Automodulator m(c);
  test::makeExpressive(m);
  const auto p = test::tmpPath(dir, "flip.amod");
  saveModel(p, m);
  QVERIFY(readArchive(p).header["config"].value("extra_8x8_block", false));
  QVERIFY(readArchive(p).has("decoder.blocks.3.conv1.weight"));  // 4 decoder blocks at 16 px
  auto back = loadModel(p);
  QCOMPARE(back->config(), c);
  QCOMPARE(back->numBlocks(), 4);
  auto a = namedState(m), b = namedState(*back);
  QCOMPARE(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) QVERIFY2(torch::equal(a[i].second, b[i].second), a[i].first.c_str());
  auto z = m.randomLatents(2, 1);
  QVERIFY(torch::equal(m.decode(z), back->decode(z)));
  QCOMPARE(describeModelFile(p).at("decoder_blocks").get<int>(), 4);
  // The same tensors under a config without the extra block do not fit: a clear error, no model.
  auto archive = readArchive(p);
  archive.header["config"].erase("extra_8x8_block");
  const auto stripped = test::tmpPath(dir, "stripped.amod");
  writeArchive(stripped, archive);
  const auto err = loadError(stripped);
  QVERIFY2(QString::fromStdString(err).contains("does not match its config"), err.c_str());
}

void TestModelFile::fileWithoutExtraBlockFieldLoadsUnchanged() {
  // Files written before the field existed have no "extra_8x8_block" in their config; a model
  // without the option is still written that way, and loads with the usual blocks.
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 5);
  test::makeExpressive(*m);
  const auto p = test::tmpPath(dir, "plain.amod");
  saveModel(p, *m);
  auto archive = readArchive(p);
  QVERIFY(!archive.header["config"].contains("extra_8x8_block"));
  QVERIFY(!archive.has("decoder.blocks.3.conv1.weight"));
  auto back = loadModel(p);
  QVERIFY(!back->config().extra_8x8_block);
  QCOMPARE(back->numBlocks(), 3);
  QCOMPARE(describeModelFile(p).at("decoder_blocks").get<int>(), 3);
  auto z = m->randomLatents(3, 2);
  QVERIFY(torch::equal(m->decode(z), back->decode(z)));
}

void TestModelFile::spectralNormVectorsSurviveSaveLoad() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 4);
  m->encoder->train();
  {
    torch::NoGradGuard ng;
    for (int i = 0; i < 3; ++i) m->encoder->forward(torch::rand({2, 3, 16, 16}), m->stage());
  }
  m->encoder->eval();
  const auto p = test::tmpPath(dir, "sn.amod");
  saveModel(p, *m);
  auto back = loadModel(p);
  auto la = m->encoder->spectralLayers(), lb = back->encoder->spectralLayers();
  QCOMPARE(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    QVERIFY(torch::equal(la[i]->u, lb[i]->u));
    QVERIFY(torch::equal(la[i]->v, lb[i]->v));
  }
  auto x = torch::rand({2, 3, 16, 16});
  QVERIFY(torch::equal(m->encode(x), back->encode(x)));
}

void TestModelFile::metadataAndStageSurvive() {
  QTemporaryDir dir;
  auto m = test::tinyModel(32, 5);
  m->setStage(2);
  m->metadata["images_seen"] = 12345;
  const auto p = test::tmpPath(dir, "meta.amod");
  saveModel(p, *m);
  auto back = loadModel(p);
  QCOMPARE(back->stage(), 2);
  QCOMPARE(back->resolution(), 16);
  QCOMPARE(back->metadata["images_seen"].get<int>(), 12345);
  auto info = describeModelFile(p);
  QCOMPARE(info["resolution"].get<int>(), 16);
  QVERIFY(info["metadata"].contains("tool_version"));
}

void TestModelFile::truncatedFileGivesClearError_data() {
  QTest::addColumn<double>("fraction");
  QTest::newRow("empty") << 0.0;
  QTest::newRow("header only") << 0.0005;
  QTest::newRow("half") << 0.5;
  QTest::newRow("one byte short") << -1.0;
}

void TestModelFile::truncatedFileGivesClearError() {
  QFETCH(double, fraction);
  QTemporaryDir dir;
  auto m = test::tinyModel(16);
  const auto p = test::tmpPath(dir, "t.amod");
  saveModel(p, *m);
  auto bytes = readBytes(p);
  const size_t keep = fraction < 0 ? bytes.size() - 1 : static_cast<size_t>(bytes.size() * fraction);
  bytes.resize(std::max<size_t>(keep, fraction == 0.0 ? 0 : 9));
  writeBytes(p, bytes);
  const auto err = loadError(p);
  QVERIFY2(err.find("truncated") != std::string::npos || (fraction == 0.0 && err.find("not an") != std::string::npos),
           err.c_str());
}

void TestModelFile::corruptByteIsDetected() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16);
  const auto p = test::tmpPath(dir, "c.amod");
  saveModel(p, *m);
  auto bytes = readBytes(p);
  bytes[bytes.size() / 2] ^= 0x5A;
  writeBytes(p, bytes);
  const auto err = loadError(p);
  QVERIFY2(err.find("corrupt") != std::string::npos, err.c_str());
}

void TestModelFile::foreignFileIsRejected() {
  QTemporaryDir dir;
  const auto p = test::tmpPath(dir, "photo.amod");
  test::writeTestImage(test::tmpPath(dir, "x.png"), 32, 32);
  fs::copy_file(test::tmpPath(dir, "x.png"), p);
  const auto err = loadError(p);
  QVERIFY2(err.find("not an Automodulator Studio model file") != std::string::npos, err.c_str());
  QVERIFY(loadError(test::tmpPath(dir, "missing.amod")).find("cannot open") != std::string::npos);
}

void TestModelFile::newerFormatAsksForUpdate() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16);
  const auto p = test::tmpPath(dir, "new.amod");
  saveModel(p, *m);
  auto bytes = readBytes(p);
  const uint32_t future = kArchiveFormatVersion + 1;
  std::memcpy(bytes.data() + 8, &future, 4);
  writeBytes(p, bytes);
  const auto err = loadError(p);
  QVERIFY2(err.find("newer") != std::string::npos, err.c_str());
}

void TestModelFile::tensorsNotMatchingConfigAreRejected() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16);
  auto a = modelArchive(*m);
  // Claim wider blocks than the tensors have.
  auto cfg = m->config();
  cfg.widths[0] *= 2;
  a.header["config"] = cfg.toJson();
  const auto p = test::tmpPath(dir, "mismatch.amod");
  writeArchive(p, a);
  auto err = loadError(p);
  QVERIFY2(err.find("does not match its config") != std::string::npos, err.c_str());
  // A missing tensor.
  auto b = modelArchive(*m);
  b.tensors.pop_back();
  writeArchive(p, b);
  err = loadError(p);
  QVERIFY2(err.find("missing") != std::string::npos, err.c_str());
}

void TestModelFile::failedWriteKeepsPreviousFile() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 1);
  const auto p = test::tmpPath(dir, "keep.amod");
  saveModel(p, *m);
  const auto before = readBytes(p);
  // A tensor that cannot be stored makes the write fail before anything reaches the disk.
  auto a = modelArchive(*m);
  a.add("bad", torch::zeros({2}, torch::kComplexFloat));
  QVERIFY_THROWS_EXCEPTION(std::exception, writeArchive(p, a));
  QVERIFY(readBytes(p) == before);
  // An unwritable destination (its parent is a file) fails with a message and leaves nothing behind.
  const auto blocker = test::tmpPath(dir, "file");
  writeBytes(blocker, {'x'});
  QVERIFY_THROWS_EXCEPTION(Error, saveModel(blocker / "m.amod", *m));
  QVERIFY(loadModel(p) != nullptr);
  int leftovers = 0;
  for (auto& e : fs::directory_iterator(dir.path().toStdString()))
    if (e.path().filename().string().find(".tmp") != std::string::npos) ++leftovers;
  QCOMPARE(leftovers, 0);
}

void TestModelFile::plainModulationRoundTripsAndOldFilesStayEqualised() {
  // The same tensors mean different layers with and without ModelConfig::plain_modulation (the style
  // linears and toRGB are scaled at run time only when equalised), so the flag travels in the file
  // and a file written before it existed keeps decoding exactly as it did.
  QTemporaryDir dir;
  torch::manual_seed(4);
  auto c = test::tinyModel(8, 4)->config();
  c.plain_modulation = true;
  Automodulator plain(c);
  const auto p = test::tmpPath(dir, "plain-mod.amod");
  saveModel(p, plain);
  QVERIFY(readArchive(p).header["config"].value("plain_modulation", false));
  auto back = loadModel(p);
  QVERIFY(back->config().plain_modulation);
  auto z = plain.randomLatents(3, 1);
  QVERIFY(torch::equal(plain.decode(z), back->decode(z)));

  auto old = test::tinyModel(8, 4);
  const auto q = test::tmpPath(dir, "equalised.amod");
  saveModel(q, *old);
  QVERIFY(!readArchive(q).header["config"].contains("plain_modulation"));
  auto old_back = loadModel(q);
  QVERIFY(!old_back->config().plain_modulation);
  QVERIFY(torch::equal(old->decode(z), old_back->decode(z)));
  // Read as plain, the equalised file's tensors would decode to another image.
  auto archive = readArchive(q);
  archive.header["config"]["plain_modulation"] = true;
  const auto relabelled = test::tmpPath(dir, "relabelled.amod");
  writeArchive(relabelled, archive);
  QVERIFY(!torch::allclose(old->decode(z), loadModel(relabelled)->decode(z)));
}

void TestModelFile::nonFiniteWeightsAreRefused() {
  QTemporaryDir dir;
  const auto p = modelWith(dir, "nan.amod", {{"decoder.blocks.1.conv1.weight", NAN}, {"ema.blocks.0.conv1.weight", INFINITY}});
  const auto err = loadError(p);
  QVERIFY2(err.find("weights that are not numbers (NaN or infinite)") != std::string::npos, err.c_str());
  QVERIFY2(err.find("'decoder.blocks.1.conv1.weight' has 1 of") != std::string::npos, err.c_str());
  QVERIFY2(err.find("(and 1 more tensors)") != std::string::npos, err.c_str());
  QVERIFY2(err.find("--allow-nonfinite") != std::string::npos, err.c_str());
  QVERIFY(err.find('\n') == std::string::npos);
}

void TestModelFile::nonFiniteWeightsLoadWithAWarningWhenAllowed() {
  QTemporaryDir dir;
  const auto p = modelWith(dir, "inf.amod", {{"encoder.final_conv.weight_orig", -INFINITY}});
  std::vector<std::string> warnings;
  LoadOptions o;
  o.allow_nonfinite = true;
  o.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto m = loadModel(p, o);
  QVERIFY(m != nullptr);
  QCOMPARE(warnings.size(), size_t(1));
  QVERIFY2(warnings[0].find("'encoder.final_conv.weight_orig'") != std::string::npos, warnings[0].c_str());
  QVERIFY2(warnings[0].find("loaded anyway") != std::string::npos, warnings[0].c_str());
  // The weights are loaded as they are: the editor shows what the file holds.
  bool found = false;
  for (auto& [name, t] : namedState(*m))
    if (name == "encoder.final_conv.weight_orig") found = std::isinf(t.view(-1)[0].item<float>());
  QVERIFY(found);
  // A finite file gives no warning.
  warnings.clear();
  auto clean = test::tinyModel(16, 2);
  const auto q = test::tmpPath(dir, "clean.amod");
  saveModel(q, *clean);
  loadModel(q, o);
  QVERIFY(warnings.empty());
}

void TestModelFile::cliAllowNonfiniteTurnsTheRefusalIntoAWarning() {
  QTemporaryDir dir;
  const auto p = modelWith(dir, "nan-cli.amod", {{"decoder.blocks.0.conv1.weight", NAN}});
  // Without --verify, info reads the header only and says so; the weights are checked with it.
  auto r = test::runAutomod({"info", p.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  QCOMPARE(nlohmann::json::parse(r.out).at("integrity").get<std::string>(), std::string("not verified"));
  r = test::runAutomod({"info", "--verify", p.string()});
  QCOMPARE(r.code, 1);
  QVERIFY2(r.err.find("automod: error: " + p.string() + " holds weights that are not numbers") != std::string::npos,
           r.err.c_str());
  r = test::runAutomod({"--allow-nonfinite", "info", "--verify", p.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  QVERIFY2(r.err.find("automod: warning: " + p.string() + " holds weights that are not numbers") != std::string::npos,
           r.err.c_str());
  QVERIFY(nlohmann::json::parse(r.out).at("resolution") == 16);
}

void TestModelFile::duplicateTensorNamesAreRefused() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16);
  auto a = modelArchive(*m);
  a.add(a.tensors[3].first, torch::zeros_like(a.tensors[3].second));  // a second copy, zeros, after the real one
  const auto p = test::tmpPath(dir, "dup.amod");
  writeArchive(p, a);
  const auto err = loadError(p);
  QVERIFY2(err.find("it holds two tensors named '" + a.tensors[3].first + "'") != std::string::npos, err.c_str());
}

void TestModelFile::hugeDeclaredTensorIsRefusedWithASentence_data() {
  QTest::addColumn<QString>("tensor");
  QTest::addColumn<QString>("expected");
  QTest::newRow("4 TB in a tiny file")
      << R"({"name": "x", "dtype": "f32", "shape": [1048576, 1048576], "offset": 0, "nbytes": 4398046511104})"
      << "does not fit the file (it declares 4.4 TB";
  QTest::newRow("shape larger than its bytes")
      << R"({"name": "x", "dtype": "f32", "shape": [1099511627776], "offset": 0, "nbytes": 4})"
      << "declares a shape that does not match its byte count";
  QTest::newRow("shape overflowing 64 bits")
      << R"({"name": "x", "dtype": "f64", "shape": [4294967296, 4294967296, 4294967296], "offset": 0, "nbytes": 8})"
      << "declares a shape that does not match its byte count";
  QTest::newRow("negative size") << R"({"name": "x", "dtype": "f32", "shape": [-1], "offset": 0, "nbytes": 4})"
                                 << "has a size that is not a whole number >= 0";
  QTest::newRow("offset past the end") << R"({"name": "x", "dtype": "u8", "shape": [4], "offset": 18446744073709551615, "nbytes": 4})"
                                       << "does not fit the file";
  QTest::newRow("unknown type") << R"({"name": "x", "dtype": "c64", "shape": [1], "offset": 0, "nbytes": 8})"
                                << "has an unknown tensor type 'c64'";
  QTest::newRow("name not a string") << R"({"name": 7, "dtype": "u8", "shape": [1], "offset": 0, "nbytes": 1})"
                                     << "tensor 0 in its header has a name that is not a string";
}

void TestModelFile::hugeDeclaredTensorIsRefusedWithASentence() {
  QFETCH(QString, tensor);
  QFETCH(QString, expected);
  QTemporaryDir dir;
  const auto p = test::tmpPath(dir, "huge.amod");
  writeRawArchive(p, R"({"format": "automodulator", "tensors": [)" + tensor.toStdString() + "]}", std::string(16, '\0'));
  const auto err = loadError(p);
  QVERIFY2(err.find(p.string() + " is corrupt: ") == 0, err.c_str());
  QVERIFY2(err.find(expected.toStdString()) != std::string::npos, err.c_str());
  QVERIFY2(err.find("enforce") == std::string::npos && err.find("json.exception") == std::string::npos, err.c_str());
}

void TestModelFile::configLargerThanTheFileIsRefusedBeforeBuilding() {
  // 1024 px, every block 4096 wide: at least 21 GB of weights, declared in a few bytes.
  QTemporaryDir dir;
  const auto p = test::tmpPath(dir, "big-config.amod");
  nlohmann::json h{{"format", "automodulator"},
                   {"config", {{"resolution", 1024}, {"widths", std::vector<int>(9, 4096)}}},
                   {"tensors", nlohmann::json::array()}};
  writeRawArchive(p, h.dump());
  const auto err = loadError(p);
  QVERIFY2(err.find("does not match its config: the config describes a model of at least 21 GB but the file holds "
                    "0 bytes of tensors") != std::string::npos,
           err.c_str());
}

void TestModelFile::headerFieldsOfTheWrongTypeAreNamed_data() {
  QTest::addColumn<QString>("field");
  QTest::addColumn<QString>("value");
  QTest::addColumn<QString>("expected");
  QTest::newRow("latent_dim huge float") << "latent_dim" << "1e300" << "field 'latent_dim' that is not a whole number";
  QTest::newRow("latent_dim beyond int") << "latent_dim" << "4294967808" << "field 'latent_dim' that is not a whole number";
  QTest::newRow("widths a string") << "widths" << "\"wide\"" << "field 'widths' that is not a list of whole numbers";
  QTest::newRow("flag a number") << "learned_input" << "1" << "field 'learned_input' that is not true or false";
  QTest::newRow("stage a string") << "stage" << "\"last\"" << "the header field 'stage' is not a whole number";
  QTest::newRow("config a list") << "config" << "[]" << "the model config in its header is not a JSON object";
}

void TestModelFile::headerFieldsOfTheWrongTypeAreNamed() {
  QFETCH(QString, field);
  QFETCH(QString, value);
  QFETCH(QString, expected);
  QTemporaryDir dir;
  auto m = test::tinyModel(16);
  auto a = modelArchive(*m);
  const auto v = nlohmann::json::parse(value.toStdString());
  if (field == "stage" || field == "config") a.header[field.toStdString()] = v;
  else a.header["config"][field.toStdString()] = v;
  const auto p = test::tmpPath(dir, "typed.amod");
  writeArchive(p, a);
  const auto err = loadError(p);
  QVERIFY2(err.find(expected.toStdString()) != std::string::npos, err.c_str());
  QVERIFY2(err.find("json.exception") == std::string::npos, err.c_str());
}

void TestModelFile::checksumsMatchTheirStandards() {
  // The check values of both CRCs ("123456789"), and any split of a buffer at any alignment gives the
  // same value as a bit-at-a-time reference (on x86 CRC-32C runs on the CPU's crc32 instruction).
  QCOMPARE(crc32("123456789", 9), 0xCBF43926u);
  QCOMPARE(crc32c("123456789", 9), 0xE3069283u);
  auto reference = [](uint32_t poly, const uint8_t* p, size_t n, uint32_t from = 0) {
    uint32_t c = ~from;
    for (size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k) c = (c & 1) ? poly ^ (c >> 1) : c >> 1;
    }
    return ~c;
  };
  const auto bytes = torch::randint(0, 256, {1000}, torch::kUInt8);
  const auto* b = bytes.data_ptr<uint8_t>();
  for (size_t start : {0, 1, 3, 7}) {
    for (size_t split : {0, 5, 64, 333}) {
      const size_t n = 1000 - start;
      QCOMPARE(crc32(b + start + split, n - split, crc32(b + start, split)), reference(0xEDB88320u, b + start, n));
      QCOMPARE(crc32c(b + start + split, n - split, crc32c(b + start, split)), reference(0x82F63B78u, b + start, n));
    }
  }
  // Every length around the carry-less multiplication's steps (64-byte blocks, 16-byte tail, the
  // table for the rest), and a megabyte: the folding of many blocks.
  for (size_t n = 0; n <= 300; ++n)
    QCOMPARE(crc32(b + 1, n, 0x12345678u), reference(0xEDB88320u, b + 1, n, 0x12345678u));
  const auto big = torch::randint(0, 256, {1 << 20}, torch::kUInt8);
  QCOMPARE(crc32(big.data_ptr<uint8_t>(), big.numel()), reference(0xEDB88320u, big.data_ptr<uint8_t>(), big.numel()));
  QCOMPARE(crc32c(big.data_ptr<uint8_t>(), big.numel()), reference(0x82F63B78u, big.data_ptr<uint8_t>(), big.numel()));
}

void TestModelFile::format1FilesStillLoad() {
  // Files written before format 2 (the committed models among them): CRC-32, tensors at any offset.
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 6);
  test::makeExpressive(*m);
  const auto p = test::tmpPath(dir, "v1.amod");
  writeFormat1(p, modelArchive(*m));
  const auto h = readArchiveHeader(p);
  QCOMPARE(h.format_version, 1u);
  auto back = loadModel(p);
  compareStates(*m, *back);
  auto z = m->randomLatents(2, 3);
  QVERIFY(torch::equal(m->decode(z), back->decode(z)));
  // Its checksum is still checked.
  auto bytes = readBytes(p);
  bytes[bytes.size() / 2] ^= 0x20;
  writeBytes(p, bytes);
  QVERIFY(loadError(p).find("corrupt (checksum mismatch)") != std::string::npos);
}

void TestModelFile::tensorsLieAlignedInTheFile() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 2);
  const auto p = test::tmpPath(dir, "aligned.amod");
  saveModel(p, *m);
  const auto bytes = readBytes(p);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data() + 12, 8);
  const uint64_t data_start = (20 + header_len + 63) / 64 * 64;
  const auto h = readArchiveHeader(p);
  QCOMPARE(h.format_version, kArchiveFormatVersion);
  QCOMPARE(h.file_bytes, uint64_t(bytes.size()));
  QVERIFY(!h.tensors.empty());
  for (auto& t : h.tensors) QVERIFY2((data_start + t.offset) % kArchiveTensorAlignment == 0, t.name.c_str());
  // The padding is zeros, and loaded tensors lie aligned in memory.
  for (uint64_t i = 20 + header_len; i < data_start; ++i) QCOMPARE(int(bytes[i]), 0);
  auto back = loadModel(p);
  for (auto& [name, t] : namedState(*back))
    QVERIFY2(reinterpret_cast<uintptr_t>(t.data_ptr()) % kArchiveTensorAlignment == 0, name.c_str());
}

void TestModelFile::loadedWeightsCanBeWrittenWithoutTouchingTheFile() {
  // Training resumed from a file and the editor's EMA reset write to the loaded weights: the map is
  // private, so the file stays as it was.
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 3);
  const auto p = test::tmpPath(dir, "cow.amod");
  saveModel(p, *m);
  const auto before = readBytes(p);
  auto back = loadModel(p);
  {
    torch::NoGradGuard ng;
    for (auto& [name, t] : namedState(*back)) t.add_(1.0);
  }
  back->resetEma();
  QVERIFY(readBytes(p) == before);
  auto again = loadModel(p);
  compareStates(*m, *again);
  auto a = namedState(*m), b = namedState(*back);
  QVERIFY(torch::equal(a.front().second + 1.0, b.front().second));
}

void TestModelFile::loadedModelOutlivesItsFileBeingReplaced() {
  // Saving over a file replaces it by a rename: a model loaded from the old file keeps its weights
  // (the editor keeps a model open while a training run writes a new latest.amod), even once removed.
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 4);
  test::makeExpressive(*m);
  const auto p = test::tmpPath(dir, "replaced.amod");
  saveModel(p, *m);
  auto back = loadModel(p);
  auto z = m->randomLatents(2, 5);
  const auto expected = m->decode(z);
  saveModel(p, *test::tinyModel(16, 9));
  QVERIFY(torch::equal(back->decode(z), expected));
  fs::remove(p);
  QVERIFY(torch::equal(back->decode(z), expected));
  compareStates(*m, *back);
}

void TestModelFile::ownedStorageLoadsTheSame() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 7);
  const auto p = test::tmpPath(dir, "owned.amod");
  saveModel(p, *m);
  LoadOptions o;
  o.storage = TensorStorage::Owned;
  auto back = loadModel(p, o);
  compareStates(*m, *back);
  fs::remove(p);
  auto x = torch::rand({2, 3, 16, 16});
  QVERIFY(torch::equal(m->encode(x), back->encode(x)));
}

void TestModelFile::infoReadsOnlyTheHeaderUnlessAskedToVerify() {
  QTemporaryDir dir;
  auto m = test::tinyModel(16, 8);
  const auto p = test::tmpPath(dir, "info.amod");
  saveModel(p, *m);
  auto info = describeModelFile(p);
  QCOMPARE(info.at("integrity").get<std::string>(), std::string("not verified"));
  QCOMPARE(info.at("format_version").get<uint32_t>(), kArchiveFormatVersion);
  QCOMPARE(info.at("file_bytes").get<uint64_t>(), uint64_t(fs::file_size(p)));
  QCOMPARE(describeModelFile(p, {}, true).at("integrity").get<std::string>(), std::string("verified"));
  // A damaged weight is not seen from the header; --verify sees it.
  auto bytes = readBytes(p);
  bytes[bytes.size() - 40] ^= 0x5A;
  writeBytes(p, bytes);
  QCOMPARE(describeModelFile(p).at("resolution").get<int>(), 16);
  QVERIFY_THROWS_EXCEPTION(Error, describeModelFile(p, {}, true));
  // A damaged header is reported as a damaged file, not as a JSON error.
  bytes = readBytes(p);
  bytes[bytes.size() - 40] ^= 0x5A;
  bytes[25] = '#';
  writeBytes(p, bytes);
  std::string err;
  try {
    describeModelFile(p);
  } catch (const Error& e) {
    err = e.what();
  }
  QVERIFY2(err.find("corrupt (checksum mismatch)") != std::string::npos, err.c_str());
  // A truncated file is noticed from its trailer.
  bytes.resize(bytes.size() - 1);
  writeBytes(p, bytes);
  err.clear();
  try {
    describeModelFile(p);
  } catch (const Error& e) {
    err = e.what();
  }
  QVERIFY2(err.find("truncated") != std::string::npos, err.c_str());
}

QTEST_GUILESS_MAIN(TestModelFile)
#include "tst_model_file.moc"
