// PyTorch torch.save files read in C++: the reference checkpoint in its three forms (zip, legacy,
// GPU-saved) gives the same tree and bit-identical CPU tensors, read whole or streamed; legacy storage
// views work; files written back by writeTorchFile read as they were written; and every kind of bad
// input, crafted or mutated at random, ends in a one-line automod::Error, never a crash. Every
// expectation about the fixtures comes from the files and cases.json (any fixture folder made by
// the same generator passes: another nz, other sizes).
#include <QtTest>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <cstring>
#include <fstream>
#include <random>
#include <utility>

#include "core/io/archive.h"
#include "core/io/pickle.h"
#include "core/io/torch_file.h"
#include "core/io/zip_reader.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;
using pickle::Value;
using pickle::ValuePtr;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes readBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// The fixture folder's cases.json (empty when there is none).
nlohmann::json readCases(const fs::path& dir) {
  std::ifstream in(dir / "cases.json");
  return in ? nlohmann::json::parse(in) : nlohmann::json::object();
}

/// Where the four pickles of a legacy file end (the magic number, the protocol, the system info,
/// the object, the storage keys): the storages start at the last.
std::vector<size_t> legacyPickleEnds(const Bytes& b) {
  std::vector<size_t> ends;
  size_t at = 0;
  pickle::UnpickleHooks hooks;
  hooks.persistent_load = [](const ValuePtr& pid) { return pid; };
  hooks.reduce = [](const Value& callable, const ValuePtr&) -> ValuePtr {
    return callable.name() == "OrderedDict" ? Value::emptyDict() : nullptr;  // SETITEMS follow
  };
  for (int i = 0; i < 5; ++i) {
    at = pickle::unpickle(b, "legacy", i == 3 ? hooks : pickle::UnpickleHooks{}, at).end;
    ends.push_back(at);
  }
  return ends;
}

// --- A little pickle writer, for inputs no torch.save would write ------------------------------------

class PickleWriter {
 public:
  PickleWriter() { op(0x80).raw({2}); }
  PickleWriter& op(uint8_t c) { return raw({c}); }
  PickleWriter& raw(std::initializer_list<uint8_t> b) {
    bytes_.insert(bytes_.end(), b);
    return *this;
  }
  PickleWriter& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  PickleWriter& str(const std::string& s) {
    op('X').le(s.size(), 4);
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  PickleWriter& py2str(const std::string& s) {  // SHORT_BINSTRING, Python 2's str
    op('U').le(s.size(), 1);
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  PickleWriter& integer(int32_t v) { return op('J').le(static_cast<uint32_t>(v), 4); }
  PickleWriter& global(const std::string& module, const std::string& name) {
    op('c');
    for (char c : module + "\n" + name + "\n") bytes_.push_back(static_cast<uint8_t>(c));
    return *this;
  }
  PickleWriter& ints(const std::vector<int32_t>& v) {
    op('(');
    for (int32_t x : v) integer(x);
    return op('t');
  }
  /// _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) of a cpu storage; a
  /// legacy persistent id when `view` holds (view key, offset, size).
  PickleWriter& tensor(const std::string& cls, const std::string& key, int32_t numel, int32_t offset,
                       const std::vector<int32_t>& size, const std::vector<int32_t>& stride,
                       const std::string& view_key = "", int32_t view_offset = 0, int32_t view_size = 0) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", cls).str(key).str("cpu").integer(numel);
    if (!view_key.empty()) op('(').str(view_key).integer(view_offset).integer(view_size).op('t');
    op('t').op('Q');
    integer(offset).ints(size).ints(stride).op(0x89).global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  Bytes done() {
    op('.');
    return bytes_;
  }

 private:
  Bytes bytes_;
};

/// {'w': tensor} as torch.save's data.pkl would hold it.
Bytes oneTensorPickle(const std::string& cls, const std::string& key, int32_t numel, int32_t offset,
                      const std::vector<int32_t>& size, const std::vector<int32_t>& stride) {
  PickleWriter w;
  w.op('}').op('(').str("w").tensor(cls, key, numel, offset, size, stride).op('u');
  return w.done();
}

Bytes floats(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// --- A little zip writer (stored entries, no ZIP64) --------------------------------------------------

void put(Bytes& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

Bytes storedZip(const std::vector<std::pair<std::string, Bytes>>& entries, uint16_t method = 0) {
  Bytes out, central;
  for (const auto& [name, data] : entries) {
    const uint32_t crc = crc32(data.data(), data.size());
    const size_t offset = out.size();
    for (Bytes* h : {&out, &central}) {
      const bool c = h == &central;
      put(*h, c ? 0x02014b50 : 0x04034b50, 4);
      if (c) put(*h, 20, 2);  // version made by
      put(*h, 20, 2);         // version needed
      put(*h, 0, 2);          // flags
      put(*h, method, 2);
      put(*h, 0, 4);  // time, date
      put(*h, crc, 4);
      put(*h, data.size(), 4);
      put(*h, data.size(), 4);
      put(*h, name.size(), 2);
      put(*h, 0, 2);  // extra
      if (c) {
        put(*h, 0, 2);  // comment
        put(*h, 0, 2);  // disk
        put(*h, 0, 2);  // internal attributes
        put(*h, 0, 4);  // external attributes
        put(*h, offset, 4);
      }
      h->insert(h->end(), name.begin(), name.end());
    }
    out.insert(out.end(), data.begin(), data.end());
  }
  const size_t cdOffset = out.size();
  out.insert(out.end(), central.begin(), central.end());
  put(out, 0x06054b50, 4);
  put(out, 0, 4);
  put(out, entries.size(), 2);
  put(out, entries.size(), 2);
  put(out, central.size(), 4);
  put(out, cdOffset, 4);
  put(out, 0, 2);
  return out;
}

/// A torch.save zip: archive/data.pkl, archive/data/<key> for each storage, archive/version.
Bytes torchZip(const Bytes& pkl, const std::vector<std::pair<std::string, Bytes>>& storages, uint16_t method = 0) {
  std::vector<std::pair<std::string, Bytes>> entries{{"archive/data.pkl", pkl}};
  for (const auto& [key, data] : storages) entries.emplace_back("archive/data/" + key, data);
  entries.emplace_back("archive/version", Bytes{'3', '\n'});
  return storedZip(entries, method);
}

/// A legacy torch.save file: magic, protocol, system info, `object`, the storage keys, the storages.
Bytes legacyFile(const Bytes& object, const std::vector<std::pair<std::string, Bytes>>& float_storages,
                 bool little_endian = true) {
  Bytes out{0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
  const Bytes protocol = PickleWriter().op('M').le(1001, 2).done();
  const Bytes sysInfo =
      PickleWriter().op('}').str("little_endian").op(little_endian ? 0x88 : 0x89).op('s').done();
  PickleWriter keys;
  keys.op(']').op('(');
  for (const auto& [key, data] : float_storages) keys.str(key);
  const Bytes keyList = keys.op('e').done();
  for (const Bytes* b : {&protocol, &sysInfo, &object, &keyList}) out.insert(out.end(), b->begin(), b->end());
  for (const auto& [key, data] : float_storages) {
    put(out, data.size() / 4, 8);
    out.insert(out.end(), data.begin(), data.end());
  }
  return out;
}

/// The message of the automod::Error reading `bytes` throws ("" when it reads, "other: …" for any
/// other exception).
std::string readError(const Bytes& bytes, const std::string& source = "input.pth") {
  try {
    readTorchBytes(bytes, source);
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("other: ") + e.what();
  }
  return {};
}

/// Same key structure, same scalars and bit-identical tensors (dtype, shape and bytes).
void expectSameTree(const ValuePtr& a, const ValuePtr& b, const std::string& path, int* tensors) {
  QVERIFY2(a->kind() == b->kind(), (path + ": " + a->describe() + " vs " + b->describe()).c_str());
  switch (a->kind()) {
    case Value::Kind::Dict: {
      QVERIFY2(a->size() == b->size(), path.c_str());
      for (size_t i = 0; i < a->size(); ++i) {
        const auto& [ka, va] = a->items()[i];
        const auto& [kb, vb] = b->items()[i];
        QVERIFY2(ka->describe() == kb->describe(), (path + ": key " + ka->describe()).c_str());
        expectSameTree(va, vb, path + "/" + (ka->isString() ? ka->asString() : ka->describe()), tensors);
        if (QTest::currentTestFailed()) return;
      }
      break;
    }
    case Value::Kind::Tuple:
    case Value::Kind::List:
      QVERIFY2(a->size() == b->size(), path.c_str());
      for (size_t i = 0; i < a->size(); ++i) {
        expectSameTree(a->at(i), b->at(i), path + "[" + std::to_string(i) + "]", tensors);
        if (QTest::currentTestFailed()) return;
      }
      break;
    case Value::Kind::Tensor: {
      const auto& ta = a->tensor();
      const auto& tb = b->tensor();
      QVERIFY2(ta.scalar_type() == tb.scalar_type() && ta.sizes() == tb.sizes(), path.c_str());
      QVERIFY2(ta.device().is_cpu() && tb.device().is_cpu() && ta.is_contiguous(), path.c_str());
      QVERIFY2(std::memcmp(ta.data_ptr(), tb.data_ptr(), ta.nbytes()) == 0, (path + ": tensor bytes differ").c_str());
      ++*tensors;
      break;
    }
    case Value::Kind::Float: QVERIFY2(a->asDouble() == b->asDouble(), path.c_str()); break;
    case Value::Kind::Int: QVERIFY2(a->asInt() == b->asInt(), path.c_str()); break;
    case Value::Kind::String: QVERIFY2(a->asString() == b->asString(), path.c_str()); break;
    default: QVERIFY2(a->describe() == b->describe(), (path + ": " + a->describe() + " vs " + b->describe()).c_str());
  }
}

const std::vector<std::string> kReferenceKeys = {
    "G_state_dict", "G_running_state_dict", "D_state_dict", "optimizerG", "optimizerD", "optimizerA",
    "iteration", "phase", "alpha", "SNU", "adaptive_loss_0", "adaptive_loss_1", "adaptive_loss_2",
    "adaptive_loss_3", "adaptive_loss_4", "adaptive_loss_5", "adaptive_loss_6", "adaptive_loss_7",
    "adaptive_loss_8"};

}  // namespace

class TestTorchFile : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void zipLegacyAndGpuSavedFilesReadToIdenticalTensors();
  void checkpointHasTheReferenceTopLevelKeys();
  void tensorShapesFollowTheArchitecture();
  void scalarsListsAndTuplesReadAsSaved();
  void tensorsSharingAStorageAreEqualButOwnTheirMemory();
  void tensorsOutliveTheFileBuffer();
  void streamedReadsGiveTheSameTensors();
  void streamedReadsCheckEachStorageWhenRead();
  void writtenFilesReadBackAsWritten();
  void zipReaderReadsTheFixtureDirectory();
  void picklesBuildDictsAndObjectsWithoutRunningCode();
  void legacyStorageViewsReadTheirSlice();
  void python2OrderedDictsReadAsDicts();
  void missingOrUnreadableFileGivesClearError();
  void craftedZipReadsStridedAndHalfTensors();
  void badInputGivesOneLineError_data();
  void badInputGivesOneLineError();
  void truncatedZipGivesClearError_data();
  void truncatedZipGivesClearError();
  void truncatedLegacyFileGivesClearError_data();
  void truncatedLegacyFileGivesClearError();
  void deepNestingIsRefusedWhileBuilding();
  void randomlyMutatedFilesFailOnlyWithAutomodError();

 private:
  fs::path ref_;
  bool have_ref_ = false;
};

void TestTorchFile::initTestCase() {
  ref_ = test::referenceDir();
  have_ref_ = fs::exists(ref_ / "ffhq-style.pth");
}

#define REQUIRE_REFERENCE()                                                                               \
  if (!have_ref_)                                                                                         \
    QSKIP(qPrintable("reference checkpoints not found in " + QString::fromStdString(ref_.string()) +       \
                     " (set AMOD_REFERENCE_DIR)"))

void TestTorchFile::zipLegacyAndGpuSavedFilesReadToIdenticalTensors() {
  REQUIRE_REFERENCE();
  const TorchFile zip = readTorchFile(ref_ / "ffhq-style.pth");
  const TorchFile legacy = readTorchFile(ref_ / "ffhq-style-legacy.pth");
  const TorchFile gpu = readTorchFile(ref_ / "ffhq-style-gpu-saved.pth");
  QCOMPARE(zip.format, std::string("zip"));
  QCOMPARE(zip.archive_name, std::string("ffhq-style"));
  QCOMPARE(legacy.format, std::string("legacy"));
  QCOMPARE(gpu.format, std::string("zip"));
  QCOMPARE(zip.storage_types, std::vector<std::string>{"torch.FloatStorage"});
  QCOMPARE(gpu.storage_types, std::vector<std::string>{"torch.cuda.FloatStorage"});
  QCOMPARE(zip.locations, std::vector<std::string>{"cpu"});
  QCOMPARE(legacy.locations, std::vector<std::string>{"cpu"});
  QCOMPARE(gpu.locations, std::vector<std::string>{"cuda:0"});
  QCOMPARE(legacy.storage_count, zip.storage_count);
  QCOMPARE(legacy.storage_bytes, zip.storage_bytes);
  int tensors = 0;
  expectSameTree(zip.root, legacy.root, "legacy", &tensors);
  if (QTest::currentTestFailed()) return;
  expectSameTree(zip.root, gpu.root, "gpu-saved", &tensors);
  if (QTest::currentTestFailed()) return;
  QCOMPARE(tensors, 2 * static_cast<int>(zip.tensor_count));
  QVERIFY(zip.tensor_count > 300);
}

void TestTorchFile::checkpointHasTheReferenceTopLevelKeys() {
  REQUIRE_REFERENCE();
  for (const char* name : {"ffhq-style.pth", "small-arch.pth", "train-step-m0-before.pth"}) {
    const TorchFile f = readTorchFile(ref_ / name);
    QVERIFY2(f.root->isDict(), name);
    auto keys = f.root->keys();
    std::sort(keys.begin(), keys.end());
    auto expected = kReferenceKeys;
    std::sort(expected.begin(), expected.end());
    QCOMPARE(keys, expected);
    for (const char* sd : {"G_state_dict", "G_running_state_dict", "D_state_dict"})
      for (const auto& [k, v] : f.root->at(sd)->items()) {
        QVERIFY2(k->asString().rfind("module.", 0) == 0, k->asString().c_str());  // DataParallel's prefix
        QVERIFY2(v->isTensor(), k->asString().c_str());
      }
  }
}

void TestTorchFile::tensorShapesFollowTheArchitecture() {
  REQUIRE_REFERENCE();
  const int64_t nz = readCases(ref_).value("nz", 0);
  if (nz <= 0) QSKIP("no nz in the fixture folder's cases.json");
  const TorchFile f = readTorchFile(ref_ / "ffhq-style.pth");
  const auto& g = f.root->at("G_running_state_dict");
  const torch::Tensor rgb = g->at("module.to_rgb.0.weight")->tensor();
  QCOMPARE(rgb.sizes().vec(), (std::vector<int64_t>{3, nz, 1, 1}));
  QCOMPARE(rgb.scalar_type(), torch::kFloat32);
  QCOMPARE(g->at("module.adanorm_blocks.0.mod.weight")->tensor().sizes().vec(), (std::vector<int64_t>{2 * nz, nz}));
  QCOMPARE(g->at("module.adanorm_blocks.0.mod.bias")->tensor().sizes().vec(), (std::vector<int64_t>{2 * nz}));
  QVERIFY(rgb.abs().sum().item<double>() > 0);  // real numbers, not zeros
  QVERIFY(torch::isfinite(rgb).all().item<bool>());
}

void TestTorchFile::scalarsListsAndTuplesReadAsSaved() {
  REQUIRE_REFERENCE();
  const auto cases = readCases(ref_);
  const TorchFile f = readTorchFile(ref_ / "ffhq-style.pth");
  const auto& r = f.root;
  QVERIFY(r->at("iteration")->isInt() && r->at("iteration")->asInt() > 0);
  if (cases.contains("models")) {
    for (const auto& m : cases["models"])
      if (m.at("files").at("zip") == "ffhq-style.pth") {
        QCOMPARE(r->at("phase")->asInt(), m.at("phase").get<int64_t>());
        QCOMPARE(r->at("alpha")->asDouble(), m.at("alpha").get<double>());
      }
  }
  // One spectral-norm vector per encoder convolution (two per block, one block per fromRGB), each
  // [out, 1] for its layer: block 0's first convolution has as many outputs as block 1's fromRGB.
  const auto& d = r->at("D_state_dict");
  int blocks = 0;
  while (d->contains("module.from_rgb." + std::to_string(blocks) + ".weight")) ++blocks;
  const auto& snu = r->at("SNU");
  QVERIFY(snu->isList());
  QCOMPARE(snu->size(), size_t(2 * blocks));
  QCOMPARE(snu->at(0)->tensor().sizes().vec(),
           (std::vector<int64_t>{d->at("module.from_rgb.1.weight")->tensor().size(0), 1}));
  for (int i = 0; i <= 8; ++i) {
    const auto& al = r->at("adaptive_loss_" + std::to_string(i));
    QVERIFY(al->isTuple());
    QCOMPARE(al->size(), size_t{1});
    QVERIFY(al->at(0)->isDict());
    QCOMPARE(al->at(0)->keys(), (std::vector<std::string>{"latent_alpha", "latent_scale"}));
  }
  // Robust-loss parameters per element of a 4×4 RGB image.
  QCOMPARE(r->at("adaptive_loss_0")->at(0)->at("latent_alpha")->tensor().sizes().vec(), (std::vector<int64_t>{1, 3 * 4 * 4}));
  // Optimizer state dicts: empty 'state' (no Adam moments saved) and one param group of hyper-parameters.
  const auto& opt = r->at("optimizerG");
  QVERIFY(opt->at("state")->isDict());
  QCOMPARE(opt->at("param_groups")->size(), size_t{1});
  const auto& group = opt->at("param_groups")->at(0);
  QCOMPARE(group->at("lr")->asDouble(), 0.001);
  QCOMPARE(group->at("betas")->at(1)->asDouble(), 0.99);
  QVERIFY(group->at("params")->isList());
  const TorchFile step = readTorchFile(ref_ / "train-step-m0-before.pth");
  std::ifstream in(ref_ / "train-step-m0.json");
  QVERIFY(in.good());
  QCOMPARE(step.root->at("phase")->asInt(), nlohmann::json::parse(in).at("phase").get<int64_t>());
  QVERIFY(step.root->at("iteration")->asInt() > 0);
}

void TestTorchFile::tensorsSharingAStorageAreEqualButOwnTheirMemory() {
  REQUIRE_REFERENCE();
  for (const char* name : {"ffhq-style.pth", "ffhq-style-legacy.pth"}) {
    const TorchFile f = readTorchFile(ref_ / name);
    const auto& g = f.root->at("G_state_dict");
    const auto a = g->at("module.adanorm_blocks.0.mod.weight")->tensor();
    const auto b = g->at("module.progression.0.conv.3.mod.weight")->tensor();
    QVERIFY2(torch::equal(a, b), name);
    QVERIFY2(a.data_ptr() != b.data_ptr(), name);  // clones: changing one leaves the other
  }
}

void TestTorchFile::tensorsOutliveTheFileBuffer() {
  REQUIRE_REFERENCE();
  Bytes bytes = readBytes(ref_ / "ffhq-style.pth");
  const TorchFile f = readTorchBytes(bytes, "in memory");
  const torch::Tensor w = f.root->at("G_running_state_dict")->at("module.to_rgb.0.weight")->tensor();
  const torch::Tensor copy = w.clone();
  std::fill(bytes.begin(), bytes.end(), uint8_t{0xff});
  Bytes().swap(bytes);
  QVERIFY(torch::equal(w, copy));
  const auto* p = static_cast<const uint8_t*>(w.data_ptr());
  QVERIFY(w.storage().nbytes() == w.nbytes());  // its own storage, not the file's
  QVERIFY(p != nullptr);
}

void TestTorchFile::streamedReadsGiveTheSameTensors() {
  REQUIRE_REFERENCE();
  // Every placeholder of a streamed read holds what the whole read holds, in all three forms; a
  // destination of another type or layout gets the same values; nothing is read until asked.
  for (const char* name : {"ffhq-style.pth", "ffhq-style-legacy.pth", "ffhq-style-gpu-saved.pth"}) {
    const TorchFile whole = readTorchFile(ref_ / name);
    const TorchFile streamed = readTorchFile(ref_ / name, TorchRead::Streamed);
    QVERIFY(!whole.tensors);
    QVERIFY(streamed.tensors);
    QCOMPARE(streamed.tensors->bytesRead(), int64_t{0});
    QCOMPARE(streamed.storage_bytes, whole.storage_bytes);
    QCOMPARE(streamed.tensor_count, whole.tensor_count);
    int64_t bytes = 0;
    int compared = 0;
    std::function<void(const ValuePtr&, const ValuePtr&)> walk = [&](const ValuePtr& a, const ValuePtr& b) {
      QCOMPARE(a->kind(), b->kind());
      if (a->isDict()) {
        for (size_t i = 0; i < a->size(); ++i) walk(a->items()[i].second, b->items()[i].second);
      } else if (a->isTuple() || a->isList()) {
        for (size_t i = 0; i < a->size(); ++i) walk(a->at(i), b->at(i));
      } else if (a->isTensor()) {
        const auto& p = b->tensor();
        QVERIFY(p.is_meta() && streamed.tensors->holds(p));
        QCOMPARE(p.sizes(), a->tensor().sizes());
        const auto t = streamed.tensors->load(p);
        QVERIFY(torch::equal(t, a->tensor()));
        bytes += int64_t(t.nbytes());
        ++compared;
        // A zip file's tensors can also be views of its mapping (what the importer adopts); a legacy
        // file's storages lie at any offset and are read instead.
        const auto v = streamed.tensors->view(p);
        QCOMPARE(v.defined(), streamed.format == "zip" && t.numel() > 0);
        if (v.defined()) QVERIFY(torch::equal(v, a->tensor()));
      }
    };
    walk(whole.root, streamed.root);
    if (QTest::currentTestFailed()) return;
    QCOMPARE(compared, int(whole.tensor_count));
    // Views read each storage once (its CRC-32), loads every time: both are counted.
    if (streamed.format != "zip") QCOMPARE(streamed.tensors->bytesRead(), bytes);
    QVERIFY(streamed.tensors->bytesRead() >= bytes);
    // Into a transposed double destination.
    const auto& p = streamed.root->at("G_running_state_dict")->at("module.progression.2.conv.1.conv.weight_orig")->tensor();
    auto dst = torch::zeros({p.size(1), p.size(0), p.size(2), p.size(3)}, torch::kFloat64).transpose(0, 1);
    streamed.tensors->readInto(p, dst);
    QVERIFY(torch::equal(dst.to(torch::kFloat32),
                         whole.root->at("G_running_state_dict")->at("module.progression.2.conv.1.conv.weight_orig")->tensor()));
    // A tensor that is not one of the file's placeholders.
    QVERIFY(!streamed.tensors->holds(dst));
    QVERIFY_THROWS_EXCEPTION(Error, streamed.tensors->load(dst));
    QVERIFY_THROWS_EXCEPTION(Error, streamed.tensors->view(dst));
  }
  // A view outlives the file it was read from, and writing to it changes neither the file nor a
  // later read of it (the mapping is private, copy-on-write).
  const fs::path zip = ref_ / "ffhq-style.pth";
  const char* key = "module.progression.2.conv.1.conv.weight_orig";
  torch::Tensor view;
  {
    const TorchFile f = readTorchFile(zip, TorchRead::Streamed);
    view = f.tensors->view(f.root->at("G_running_state_dict")->at(key)->tensor());
  }
  QVERIFY(view.defined());
  const auto original = readTorchFile(zip).root->at("G_running_state_dict")->at(key)->tensor();
  QVERIFY(torch::equal(view, original));
  view.add_(1.0);
  QVERIFY(torch::equal(view, original + 1.0));
  QVERIFY(torch::equal(readTorchFile(zip).root->at("G_running_state_dict")->at(key)->tensor(), original));
}

void TestTorchFile::streamedReadsCheckEachStorageWhenRead() {
  // A corrupt storage: a streamed read of the structure succeeds, reading the tensor says what is wrong.
  const Bytes six = floats({0, 1, 2, 3, 4, 5});
  PickleWriter w;
  w.op('}').op('(').str("a").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
  w.str("b").tensor("FloatStorage", "1", 6, 0, {3}, {2}).op('u');  // strided: read whole, then viewed
  const Bytes pickled = w.done();
  Bytes corrupt = torchZip(pickled, {{"0", six}, {"1", six}});
  const auto at = ZipReader(corrupt, "c").locate("archive/data/0");
  corrupt[at.offset + 5] ^= 0x40;
  QTemporaryDir dir;
  const fs::path path = fs::path(dir.path().toStdString()) / "corrupt.pth";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(corrupt.data()), std::streamsize(corrupt.size()));
  const TorchFile f = readTorchFile(path, TorchRead::Streamed);
  try {
    f.tensors->load(f.root->at("a")->tensor());
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(std::string(e.what()).find("storage '0' is corrupt: CRC-32 mismatch") != std::string::npos, e.what());
    QVERIFY2(std::string(e.what()).rfind(path.string(), 0) == 0, e.what());
  }
  // A view of it is checked as well, and says the same.
  try {
    f.tensors->view(f.root->at("a")->tensor());
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(std::string(e.what()).find("storage '0' is corrupt: CRC-32 mismatch") != std::string::npos, e.what());
  }
  QVERIFY(torch::equal(f.tensors->load(f.root->at("b")->tensor()), torch::tensor({0.f, 2.f, 4.f})));
  // A file cut short after its structure was read: a view says so instead of faulting on the pages
  // that are gone.
  {
    const Bytes good = torchZip(pickled, {{"0", six}, {"1", six}});
    const fs::path cut = fs::path(dir.path().toStdString()) / "cut.pth";
    std::ofstream(cut, std::ios::binary).write(reinterpret_cast<const char*>(good.data()), std::streamsize(good.size()));
    const TorchFile g = readTorchFile(cut, TorchRead::Streamed);
    fs::resize_file(cut, ZipReader(good, "g").locate("archive/data/0").offset + 4);
    try {
      g.tensors->view(g.root->at("a")->tensor());
      QFAIL("no error");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("truncated") != std::string::npos, e.what());
    }
  }
  // The whole read refuses the file outright.
  QVERIFY(readError(corrupt).find("CRC-32 mismatch") != std::string::npos);
}

void TestTorchFile::writtenFilesReadBackAsWritten() {
  // A tree with every kind the writer writes; tensors sharing a storage share it in the file (as
  // torch.save writes tied weights), a view keeps its offset and strides.
  const auto base = torch::arange(24, torch::kFloat32).reshape({4, 6});
  const auto view = base.narrow(1, 2, 3);  // strided, offset 2
  const auto half = torch::tensor({1.5f, -2.f}).to(torch::kFloat16);
  const auto root = Value::dict(
      {{Value::string("w"), Value::tensor(base)},
       {Value::string("tied"), Value::tensor(base)},
       {Value::string("view"), Value::tensor(view)},
       {Value::string("half"), Value::tensor(half)},
       {Value::string("ints"), Value::list({Value::integer(0), Value::integer(300), Value::integer(70000),
                                           Value::integer(-5), Value::integer(int64_t{1} << 40)})},
       {Value::string("pair"), Value::tuple({Value::real(0.25), Value::boolean(true), Value::none()})},
       {Value::string("empty"), Value::dict({})},
       {Value::integer(3), Value::string("three")}});
  QTemporaryDir dir;
  for (const char* format : {"zip", "legacy"})
    for (const char* location : {"cpu", "cuda:0"}) {
      const fs::path path = fs::path(dir.path().toStdString()) / (std::string(format) + "-" + location + ".pth");
      TorchWriteOptions o;
      o.format = format;
      o.location = location;
      o.archive_name = "written";
      writeTorchFile(path, root, o);
      for (TorchRead mode : {TorchRead::Whole, TorchRead::Streamed}) {
        const TorchFile f = readTorchFile(path, mode);
        QCOMPARE(f.format, std::string(format));
        QCOMPARE(f.locations, std::vector<std::string>{location});
        QCOMPARE(f.storage_count, int64_t{2});  // base (with its tie and its view) and half
        const auto get = [&](const char* key) {
          const auto& t = f.root->at(key)->tensor();
          return f.tensors ? f.tensors->load(t) : t;
        };
        QVERIFY(torch::equal(get("w"), base));
        QVERIFY(torch::equal(get("tied"), base));
        QVERIFY(torch::equal(get("view"), view));
        QVERIFY(torch::equal(get("half"), half));
        const auto& ints = f.root->at("ints");
        QCOMPARE(ints->at(1)->asInt(), int64_t{300});
        QCOMPARE(ints->at(2)->asInt(), int64_t{70000});
        QCOMPARE(ints->at(3)->asInt(), int64_t{-5});
        QCOMPARE(ints->at(4)->asInt(), int64_t{1} << 40);
        QCOMPARE(f.root->at("pair")->at(0)->asDouble(), 0.25);
        QVERIFY(f.root->at("pair")->at(1)->asBool() && f.root->at("pair")->at(2)->isNone());
        QCOMPARE(f.root->at("empty")->size(), size_t{0});
        QCOMPARE(f.root->items().back().second->asString(), std::string("three"));
      }
    }
  // What torch.save could not write either.
  QVERIFY_THROWS_EXCEPTION(Error, writeTorchFile(fs::path(dir.path().toStdString()) / "x.pth",
                                                 Value::dict({{Value::string("g"), Value::global("os", "system")}})));

  // The authors' checkpoint, written back in both formats, reads as the original.
  if (!have_ref_) return;
  const TorchFile original = readTorchFile(ref_ / "ffhq-style.pth");
  for (const char* format : {"zip", "legacy"}) {
    const fs::path path = fs::path(dir.path().toStdString()) / (std::string("again-") + format + ".pth");
    TorchWriteOptions o;
    o.format = format;
    writeTorchFile(path, original.root, o);
    int tensors = 0;
    expectSameTree(original.root, readTorchFile(path).root, format, &tensors);
    if (QTest::currentTestFailed()) return;
    QCOMPARE(tensors, int(original.tensor_count));
  }
}

void TestTorchFile::zipReaderReadsTheFixtureDirectory() {
  REQUIRE_REFERENCE();
  const Bytes bytes = readBytes(ref_ / "ffhq-style.pth");  // has ZIP64 end records, as torch writes them
  const TorchFile f = readTorchFile(ref_ / "ffhq-style.pth");
  ZipReader zip(bytes, "ffhq-style.pth");
  const auto names = zip.names();
  // data.pkl, one entry per storage, version (and byteorder, written by newer PyTorch).
  QCOMPARE(names.size(), size_t(2 + f.storage_count + (zip.has("ffhq-style/byteorder") ? 1 : 0)));
  QCOMPARE(names.front(), std::string("ffhq-style/data.pkl"));
  QVERIFY(zip.has("ffhq-style/version"));
  QVERIFY(!zip.has("ffhq-style/nothing"));
  const auto v = zip.entry("ffhq-style/version");
  QCOMPARE(std::string(v.begin(), v.end()), std::string("3\n"));
  uint64_t storage_bytes = 0;
  for (const auto& name : names)
    if (name.rfind("ffhq-style/data/", 0) == 0) {
      QVERIFY(zip.entry(name).data() >= bytes.data() && zip.entry(name).data() < bytes.data() + bytes.size());
      QCOMPARE(zip.locate(name).size, zip.size(name));
      storage_bytes += zip.size(name);
    }
  QCOMPARE(storage_bytes, uint64_t(f.storage_bytes));
}

void TestTorchFile::picklesBuildDictsAndObjectsWithoutRunningCode() {
  // A key set again keeps its first place (True == 1, as in Python); a global call is an opaque
  // Object with its arguments and BUILD state; BUILD on a dict is ignored.
  PickleWriter w;
  w.op('}').op('(').str("a").integer(1).str("b").integer(2).op('u');
  w.str("a").integer(3).op('s').integer(1).str("one").op('s').op(0x88).str("true").op('s');
  w.str("device").global("torch", "device").str("cuda:1").op(0x85).op('R').op('}').op('b').op('s');
  w.str("od").global("collections", "OrderedDict").op(')').op('R').op('}').op('b').op('s');
  const auto v = pickle::unpickle(w.done(), "p.pkl").value;
  QCOMPARE(v->size(), size_t{5});
  QCOMPARE(v->keys(), (std::vector<std::string>{"a", "b", "device", "od"}));
  QCOMPARE(v->at("a")->asInt(), int64_t{3});
  QCOMPARE(v->items()[2].first->asInt(), int64_t{1});
  QCOMPARE(v->items()[2].second->asString(), std::string("true"));
  const auto& device = v->at("device");
  QVERIFY(device->isObject());
  QCOMPARE(device->qualifiedName(), std::string("torch.device"));
  QCOMPARE(device->args()->at(0)->asString(), std::string("cuda:1"));
  QVERIFY(device->state()->isDict());
  QVERIFY(v->at("od")->isObject());  // without a reduce hook, even OrderedDict stays an Object
  QVERIFY(!v->contains("missing"));
  try {
    v->at("missing");
    QFAIL("no error");
  } catch (const Error& e) {
    QCOMPARE(std::string(e.what()), std::string("missing key 'missing' in dict of 5 items"));
  }
  try {
    v->at("a")->asString();
    QFAIL("no error");
  } catch (const Error& e) {
    QCOMPARE(std::string(e.what()), std::string("expected a string, found int 3"));
  }
}

void TestTorchFile::legacyStorageViewsReadTheirSlice() {
  // Before 1.6, views of one storage were saved as (view key, offset, size) over a root storage.
  PickleWriter w;
  w.op('}').op('(');
  w.str("slice").tensor("FloatStorage", "root", 6, 0, {3}, {1}, "view", 2, 3);
  w.str("again").tensor("FloatStorage", "root", 6, 1, {2}, {1}, "view", 2, 3);  // same view, offset 1 in it
  w.str("whole").tensor("FloatStorage", "root", 6, 0, {2, 3}, {3, 1});
  w.op('u');
  const Bytes file = legacyFile(w.done(), {{"root", floats({0, 1, 2, 3, 4, 5})}});
  const TorchFile f = readTorchBytes(file, "views.pth");
  QCOMPARE(f.format, std::string("legacy"));
  QVERIFY(torch::equal(f.root->at("slice")->tensor(), torch::tensor({2.f, 3.f, 4.f})));
  QVERIFY(torch::equal(f.root->at("again")->tensor(), torch::tensor({3.f, 4.f})));
  QVERIFY(torch::equal(f.root->at("whole")->tensor(), torch::arange(6, torch::kFloat32).view({2, 3})));

  PickleWriter bad;
  bad.op('}').op('(').str("slice").tensor("FloatStorage", "root", 6, 0, {3}, {1}, "view", 4, 3).op('u');
  const std::string e = readError(legacyFile(bad.done(), {{"root", floats({0, 1, 2, 3, 4, 5})}}));
  QVERIFY2(e.find("lies outside storage 'root'") != std::string::npos, e.c_str());
}

void TestTorchFile::python2OrderedDictsReadAsDicts() {
  // Python 2 pickled OrderedDict([[key, value], ...]) with str keys (SHORT_BINSTRING).
  PickleWriter w;
  w.global("collections", "OrderedDict").op('(').op('(');
  w.op('(').py2str("weight").tensor("FloatStorage", "7", 2, 0, {2}, {1}).op('l');
  w.op('(').py2str("step").integer(4).op('l');
  w.op('(').py2str("weight").integer(5).op('l');  // a key given again keeps its place
  w.op('l').op('t').op('R');
  const TorchFile f = readTorchBytes(legacyFile(w.done(), {{"7", floats({1, 2})}}), "py2.pth");
  QVERIFY(f.root->isDict());
  QCOMPARE(f.root->keys(), (std::vector<std::string>{"weight", "step"}));
  QCOMPARE(f.root->at("weight")->asInt(), int64_t{5});
  QCOMPARE(f.root->at("step")->asInt(), int64_t{4});
}

void TestTorchFile::missingOrUnreadableFileGivesClearError() {
  QTemporaryDir dir;
  const fs::path missing = fs::path(dir.path().toStdString()) / "none.pth";
  for (const fs::path& p : {missing, fs::path(dir.path().toStdString())}) {
    try {
      readTorchFile(p);
      QFAIL("no error");
    } catch (const Error& e) {
      const std::string m = e.what();
      QVERIFY2(m.find(p.string()) != std::string::npos && m.find('\n') == std::string::npos, m.c_str());
      QVERIFY2(m.rfind("cannot open", 0) == 0 || m.rfind("cannot read", 0) == 0, m.c_str());
    }
  }
  const fs::path empty = fs::path(dir.path().toStdString()) / "empty.pth";
  std::ofstream(empty).close();
  try {
    readTorchFile(empty);
    QFAIL("no error");
  } catch (const Error& e) {
    QCOMPARE(std::string(e.what()), empty.string() + ": empty file, not a PyTorch checkpoint");
  }
}

void TestTorchFile::craftedZipReadsStridedAndHalfTensors() {
  // A transposed view (stride 1, 2) is read through its strides and comes back contiguous.
  PickleWriter w;
  w.op('}').op('(').str("t").tensor("FloatStorage", "0", 6, 0, {3, 2}, {1, 3});
  w.str("h").tensor("HalfStorage", "1", 2, 0, {2}, {1}).op('u');
  Bytes half(4);
  const torch::Tensor h = torch::tensor({1.5f, -2.f}).to(torch::kFloat16);
  std::memcpy(half.data(), h.data_ptr(), 4);
  const TorchFile f = readTorchBytes(torchZip(w.done(), {{"0", floats({0, 1, 2, 3, 4, 5})}, {"1", half}}), "t.pth");
  const auto t = f.root->at("t")->tensor();
  QVERIFY(t.is_contiguous());
  QVERIFY(torch::equal(t, torch::arange(6, torch::kFloat32).view({2, 3}).t()));
  QVERIFY(torch::equal(f.root->at("h")->tensor(), h));
  QCOMPARE(f.storage_types, (std::vector<std::string>{"torch.FloatStorage", "torch.HalfStorage"}));
}

void TestTorchFile::badInputGivesOneLineError_data() {
  QTest::addColumn<QByteArray>("bytes");
  QTest::addColumn<QString>("expected");
  const auto row = [](const char* name, const Bytes& b, const char* expected) {
    QTest::newRow(name) << QByteArray(reinterpret_cast<const char*>(b.data()), static_cast<int>(b.size()))
                        << QString(expected);
  };
  const Bytes six = floats({0, 1, 2, 3, 4, 5});
  const Bytes good = oneTensorPickle("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
  row("empty file", {}, "empty file, not a PyTorch checkpoint");
  row("plain text file", Bytes{'h', 'e', 'l', 'l', 'o', '\n'}, "not a PyTorch checkpoint");
  row("plain pickle", PickleWriter().op('}').done(), "not one written by torch.save (no magic number)");
  row("deflated entry", torchZip(good, {{"0", six}}, 8), "is compressed (deflate); only stored");
  row("zip without data.pkl", storedZip({{"archive/version", {'3'}}}), "has no archive/data.pkl");
  row("storage numel larger than data", torchZip(oneTensorPickle("FloatStorage", "0", 100, 0, {6}, {1}), {{"0", six}}),
      "storage '0' claims 100 elements (400 bytes) but its data has only 24 bytes");
  row("tensor view past its storage",
      torchZip(oneTensorPickle("FloatStorage", "0", 6, 1, {2, 3}, {3, 1}), {{"0", six}}),
      "reaches element 6 of storage '0', which holds 6 elements");
  row("huge stride", torchZip(oneTensorPickle("FloatStorage", "0", 6, 0, {2, 2}, {2000000000, 1}), {{"0", six}}),
      "reaches element 2000000001 of storage '0'");
  row("unknown storage class", torchZip(oneTensorPickle("ComplexFloatStorage", "0", 3, 0, {3}, {1}), {{"0", six}}),
      "unsupported storage class torch.ComplexFloatStorage");
  row("storage key without data", torchZip(good, {}), "no data for storage '0'");
  Bytes corrupt = torchZip(good, {{"0", six}});
  corrupt[corrupt.size() / 2] ^= 0x10;  // inside the storage's bytes
  row("corrupt storage bytes", corrupt, "CRC-32 mismatch");
  row("unknown opcode", torchZip(Bytes{0x80, 2, 'I', '1', '\n', '.'}, {}),
      "not a PyTorch checkpoint: pickle opcode 0x49 ('I') at byte 2 is not supported");
  Bytes huge = {0x80, 4, 0x8d};  // BINUNICODE8 claiming 2^40 bytes
  put(huge, uint64_t{1} << 40, 8);
  huge.insert(huge.end(), {'a', 'b', '.'});
  row("string claiming 2^40 bytes", torchZip(huge, {}), "needs 1099511627776 bytes, only 3 remain");
  row("memo entry never stored", torchZip(Bytes{0x80, 2, 'h', 7, '.'}, {}), "memo entry 7 was never stored");
  row("stop on an empty stack", torchZip(Bytes{0x80, 2, '.'}, {}), "stack underflow");
  row("list appended to itself", torchZip(Bytes{0x80, 2, ']', '2', 'a', '.'}, {}), "inside itself");
  row("pickle without stop", torchZip(Bytes{0x80, 2, ']'}, {}), "without a STOP opcode");
  row("big-endian legacy file", legacyFile(PickleWriter().op('N').done(), {}, false), "saved on a big-endian machine");
  row("legacy key list naming an unused storage", legacyFile(PickleWriter().op('N').done(), {{"9", six}}),
      "names storage '9', which is never used");
}

void TestTorchFile::badInputGivesOneLineError() {
  QFETCH(QByteArray, bytes);
  QFETCH(QString, expected);
  const Bytes b(bytes.begin(), bytes.end());
  const std::string e = readError(b, "bad.pth");
  QVERIFY2(!e.empty(), "no error");
  QVERIFY2(e.rfind("other:", 0) != 0, e.c_str());
  QVERIFY2(e.rfind("bad.pth", 0) == 0, e.c_str());
  QVERIFY2(e.find('\n') == std::string::npos, e.c_str());
  QVERIFY2(e.find(expected.toStdString()) != std::string::npos, e.c_str());
}

void TestTorchFile::truncatedZipGivesClearError_data() {
  QTest::addColumn<qint64>("length");
  std::error_code ec;
  const auto size = static_cast<qint64>(fs::file_size(test::referenceDir() / "ffhq-style.pth", ec));
  if (ec) {
    QTest::newRow("no fixture") << qint64{1};
    return;
  }
  // Cuts in the zip's headers, inside data.pkl, inside the storages, and in the end records.
  for (qint64 n : {qint64{1}, qint64{4}, qint64{30}, qint64{100}, size / 90, size / 2, size - 99, size - 22, size - 1})
    QTest::newRow(("first " + std::to_string(n) + " bytes").c_str()) << n;
}

void TestTorchFile::truncatedZipGivesClearError() {
  REQUIRE_REFERENCE();
  QFETCH(qint64, length);
  Bytes b = readBytes(ref_ / "ffhq-style.pth");
  QVERIFY(static_cast<qint64>(b.size()) > length);
  b.resize(static_cast<size_t>(length));
  const std::string e = readError(b, "cut.pth");
  QVERIFY2(e.rfind("cut.pth: ", 0) == 0 && e.find('\n') == std::string::npos, e.c_str());
  // Whatever is cut, the end-of-central-directory record at the very end goes with it.
  const char* expected = length == 1 ? "not a PyTorch checkpoint" : "truncated or not a zip archive";
  QVERIFY2(e.find(expected) != std::string::npos, e.c_str());
}

void TestTorchFile::truncatedLegacyFileGivesClearError_data() {
  QTest::addColumn<qint64>("length");
  QTest::addColumn<QString>("expected");
  const auto file = test::referenceDir() / "ffhq-style-legacy.pth";
  if (!fs::exists(file)) {
    QTest::newRow("no fixture") << qint64{1} << QString();
    return;
  }
  // Where the file's parts are: the magic number, the protocol, the system info, the object, the
  // storage keys (pickles, found by reading them), then the storages, each an int64 count and data.
  const Bytes b = readBytes(file);
  const auto ends = legacyPickleEnds(b);
  const auto keys = pickle::unpickle(b, "legacy", {}, ends[3]).value;
  const std::string first = keys->at(0)->asString();
  const auto mid = [&](size_t i) { return qint64((ends[i - 1] + ends[i]) / 2); };
  QTest::newRow("inside the magic number") << qint64{6} << "truncated pickle";
  QTest::newRow("after the magic number") << qint64(ends[0])
                                          << QString("truncated: a pickle should start at byte %1").arg(ends[0]);
  QTest::newRow("inside the system info") << mid(2) << "truncated pickle";
  QTest::newRow("inside the object") << mid(3) << "truncated pickle";
  QTest::newRow("inside the storage keys") << mid(4) << "truncated pickle";
  QTest::newRow("before the first storage")
      << qint64(ends[4]) << QString::fromStdString("truncated: storage '" + first + "' should start");
  // One byte into its data (it may hold a single element), and its byte count depends on its element
  // type: any fixture folder's first storage may be another.
  QTest::newRow("inside the first storage")
      << qint64(ends[4] + 8 + 1) << QString::fromStdString("truncated: storage '" + first + "' needs ");
  QTest::newRow("inside the last storage") << qint64(b.size() - 1) << "truncated: storage";
}

void TestTorchFile::truncatedLegacyFileGivesClearError() {
  REQUIRE_REFERENCE();
  QFETCH(qint64, length);
  QFETCH(QString, expected);
  Bytes b = readBytes(ref_ / "ffhq-style-legacy.pth");
  QVERIFY(static_cast<qint64>(b.size()) > length);
  b.resize(static_cast<size_t>(length));
  const std::string e = readError(b, "cut.pth");
  QVERIFY2(e.rfind("cut.pth", 0) == 0 && e.find('\n') == std::string::npos, e.c_str());
  QVERIFY2(e.find(expected.toStdString()) != std::string::npos, e.c_str());
}

void TestTorchFile::deepNestingIsRefusedWhileBuilding() {
  // 100 000 lists, each appended into the one below: refused at depth 200 while building, so nothing
  // (not even freeing the half-built tree) recurses 100 000 deep.
  const int levels = 100000;
  Bytes deep{0x80, 2};
  deep.insert(deep.end(), levels, ']');
  deep.insert(deep.end(), levels - 1, 'a');
  deep.push_back('.');
  try {
    pickle::unpickle(deep, "deep.pkl");
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(std::string(e.what()).find("containers nest deeper than 200 levels") != std::string::npos, e.what());
  }
  const std::string viaZip = readError(torchZip(deep, {}), "deep.pth");
  QVERIFY2(viaZip.find("nest deeper than 200") != std::string::npos, viaZip.c_str());

  // Nested tuples hit the same limit; 150 levels are fine.
  Bytes tuples{0x80, 2};
  tuples.insert(tuples.end(), 150, '(');
  tuples.push_back('N');
  tuples.insert(tuples.end(), 150, 't');
  tuples.push_back('.');
  const auto ok = pickle::unpickle(tuples, "t.pkl");
  QCOMPARE(ok.value->depth(), 151);
  QCOMPARE(ok.end, tuples.size());
}

void TestTorchFile::randomlyMutatedFilesFailOnlyWithAutomodError() {
  REQUIRE_REFERENCE();
  // Fixed seed and count: flip, overwrite, insert and delete bytes, truncate and splice, mostly
  // where parsing happens (data.pkl, zip headers and directory, the legacy pickles) so that most runs
  // get somewhere; data.pkl mutations are also repacked into a valid zip to reach the tensor layer.
  // Every read must succeed or throw automod::Error: anything else fails, a crash ends the test.
  const Bytes zip = readBytes(ref_ / "train-step-m0-before.pth");
  const Bytes legacy = readBytes(ref_ / "ffhq-style-legacy.pth");
  const Bytes big = readBytes(ref_ / "ffhq-style.pth");
  const ZipReader reader(zip, "train-step");
  const std::string prefix = "train-step-m0-before";
  const auto pklSpan = reader.entry(prefix + "/data.pkl");
  const Bytes pkl(pklSpan.begin(), pklSpan.end());
  std::vector<std::pair<std::string, Bytes>> storages;
  for (const auto& name : reader.names())
    if (name.rfind(prefix + "/data/", 0) == 0) {
      const auto s = reader.entry(name);
      storages.emplace_back(name.substr(prefix.size() + 6), Bytes(s.begin(), s.end()));
    }
  const size_t legacyHead = legacyPickleEnds(legacy)[4];  // the five pickles before the storages
  const auto pklAt = reader.locate(prefix + "/data.pkl");
  const size_t zipHead = pklAt.offset + pklAt.size;  // data.pkl and its header
  size_t dataEnd = 0;                                // the central directory and end records follow
  for (const auto& name : reader.names()) {
    const auto at = reader.locate(name);
    dataEnd = std::max(dataEnd, size_t(at.offset + at.size));
  }
  const size_t zipTail = zip.size() - dataEnd;

  std::mt19937_64 rng(20240611);
  const auto uniform = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
  const auto mutate = [&](Bytes& b, size_t lo, size_t hi) {
    hi = std::min(hi, b.size());
    const int edits = 1 + static_cast<int>(uniform(4));
    for (int i = 0; i < edits && lo < hi; ++i) {
      const size_t at = lo + uniform(hi - lo);
      static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, '(', '.', 'R', 'Q', 'b', 'q', 'h'};
      switch (uniform(6)) {
        case 0: b[at] ^= static_cast<uint8_t>(1u << uniform(8)); break;
        case 1: b[at] = static_cast<uint8_t>(rng()); break;
        case 2: b[at] = interesting[uniform(sizeof(interesting))]; break;
        case 3:
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), 1 + uniform(8), static_cast<uint8_t>(rng()));
          break;
        case 4: b.erase(b.begin() + static_cast<std::ptrdiff_t>(at),
                        b.begin() + static_cast<std::ptrdiff_t>(std::min(b.size(), at + 1 + uniform(16))));
                hi = std::min(hi, b.size());
                break;
        default: {  // copy a few bytes from elsewhere in the region
          const size_t from = lo + uniform(hi - lo), len = std::min({size_t{8}, hi - from, hi - at});
          std::memmove(&b[at], &b[from], len);
        }
      }
    }
  };

  const int runs = 1500;
  int accepted = 0, rejected = 0;
  const auto start = std::chrono::steady_clock::now();
  int done = 0;
  for (; done < runs; ++done) {
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(18)) break;  // slow machine: stop early
    Bytes input;
    switch (done % 6) {
      case 0:
      case 1: {  // data.pkl mutated, repacked into a valid zip with the real storages
        Bytes p = pkl;
        mutate(p, 0, p.size());
        input = torchZip(p, storages);
        break;
      }
      case 2: {  // the zip's headers and directory
        input = zip;
        if (uniform(2)) mutate(input, 0, zipHead);
        else mutate(input, input.size() - zipTail, input.size());
        break;
      }
      case 3: {  // the legacy file's pickles and its first storage headers
        input = legacy;
        mutate(input, 0, legacyHead + 64);
        break;
      }
      case 4: {  // truncation anywhere, of any fixture
        const Bytes& src = uniform(3) == 0 ? legacy : uniform(2) ? zip : big;
        input.assign(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(uniform(src.size())));
        break;
      }
      default: {  // splice: the start of one file and the end of another
        const Bytes& a = uniform(2) ? zip : legacy;
        const Bytes& b = uniform(2) ? zip : legacy;
        const size_t cut = uniform(std::min(a.size(), b.size()));
        const size_t from = cut + uniform(64) - std::min(cut, size_t{32});
        input.assign(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(cut));
        if (from < b.size()) input.insert(input.end(), b.begin() + static_cast<std::ptrdiff_t>(from), b.end());
      }
    }
    try {
      const TorchFile f = readTorchBytes(input, "mutant");
      QVERIFY(f.root != nullptr);
      ++accepted;
    } catch (const Error& e) {
      const std::string m = e.what();
      QVERIFY2(m.rfind("mutant", 0) == 0 && m.find('\n') == std::string::npos,
               ("run " + std::to_string(done) + ": " + m).c_str());
      ++rejected;
    } catch (const std::exception& e) {
      QFAIL(("run " + std::to_string(done) + " threw a non-automod exception: " + e.what()).c_str());
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  qInfo("mutation runs: %d (%d read, %d rejected with automod::Error) in %.1f s", done, accepted, rejected, seconds);
  QVERIFY(done >= 300);
  QVERIFY(rejected > 0 && accepted > 0);
}

QTEST_APPLESS_MAIN(TestTorchFile)
#include "tst_torch_file.moc"
