// The authors' checkpoints open exactly: every case of the fixture folder's cases.json (encode at
// two phases, decode, per-block mix, fade-in, the training decoder) for every file it lists (zip,
// legacy, GPU-saved; default and small architectures) reproduces what the authors' code computed,
// within 1e-4 on codes and 2e-3 on images. The folder is $AMOD_REFERENCE_DIR, by default
// ../shared/reference beside the project; the test skips, saying so, only when it is absent.
#include <QtTest>

#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <random>

#include "core/edit/plan.h"
#include "core/io/model_file.h"
#include "core/io/archive.h"
#include "core/io/reference_import.h"
#include "core/util/error.h"
#include "testutil.h"
#include "training/reference_state.h"
#include "training/trainer.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {

fs::path referenceDir() {
  if (const char* env = std::getenv("AMOD_REFERENCE_DIR"); env && *env) return env;
  return fs::path(AUTOMOD_SOURCE_DIR) / ".." / "shared" / "reference";
}

torch::Tensor readF32(const fs::path& dir, const nlohmann::json& spec) {
  const auto path = dir / spec.at("file").get<std::string>();
  const auto shape = spec.at("shape").get<std::vector<int64_t>>();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  auto t = torch::empty(shape, torch::kFloat32);
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * 4));
  if (in.gcount() != t.numel() * 4) throw Error(path.string() + " is shorter than its shape");
  return t;
}

nlohmann::json readCases(const fs::path& dir) {
  std::ifstream in(dir / "cases.json");
  return nlohmann::json::parse(in);
}

}  // namespace

class TestReference : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void everyCaseMatchesTheAuthorsCode_data();
  void everyCaseMatchesTheAuthorsCode();
  void architectureIsInferredFromShapes();
  void importedModelSurvivesSaveAndLoad();
  void mixCaseIsTheEditorsPlanOfRanges();
  void damagedCheckpointsGiveOneLineErrors_data();
  void damagedCheckpointsGiveOneLineErrors();
  void importCommandWritesAModelOrFailsInOneLine();
  void mutatedCheckpointsImportOrFailWithAutomodError();
  void trainingStateCarriesAdamMomentsAndResumes();

 private:
  fs::path dir_;
  nlohmann::json cases_;
  std::map<std::string, std::shared_ptr<Automodulator>> models_;
  std::shared_ptr<Automodulator> model(const std::string& file);
};

void TestReference::initTestCase() {
  dir_ = referenceDir();
  if (!fs::exists(dir_ / "cases.json"))
    QSKIP(qPrintable(QString("no reference fixtures at %1 (set AMOD_REFERENCE_DIR)").arg(QString::fromStdString(dir_.string()))));
  cases_ = readCases(dir_);
  torch::set_num_threads(2);
}

std::shared_ptr<Automodulator> TestReference::model(const std::string& file) {
  auto it = models_.find(file);
  if (it != models_.end()) return it->second;
  auto imported = importReferenceFile(dir_ / file);
  std::shared_ptr<Automodulator> m(std::move(imported.model));
  models_[file] = m;
  return m;
}

void TestReference::everyCaseMatchesTheAuthorsCode_data() {
  QTest::addColumn<QString>("file");
  QTest::addColumn<int>("model_index");
  QTest::addColumn<int>("case_index");
  if (!fs::exists(referenceDir() / "cases.json")) return;
  const auto cases = readCases(referenceDir());
  for (size_t m = 0; m < cases.at("models").size(); ++m) {
    const auto& model = cases["models"][m];
    for (auto& [format, file] : model.at("files").items())
      for (size_t c = 0; c < model.at("cases").size(); ++c) {
        const auto& cs = model["cases"][c];
        const std::string row = model.at("name").get<std::string>() + "/" + format + "/" + std::to_string(c) + "-" +
                                cs.at("kind").get<std::string>() + "@" + std::to_string(cs.at("step").get<int>());
        QTest::newRow(row.c_str()) << QString::fromStdString(file.get<std::string>()) << int(m) << int(c);
      }
  }
}

void TestReference::everyCaseMatchesTheAuthorsCode() {
  QFETCH(QString, file);
  QFETCH(int, model_index);
  QFETCH(int, case_index);
  const auto& cs = cases_["models"][model_index]["cases"][case_index];
  auto m = model(file.toStdString());
  torch::NoGradGuard no_grad;
  const std::string kind = cs.at("kind");
  const int step = cs.at("step");
  const double alpha = cs.at("alpha");
  if (kind == "encode") {
    auto z = m->encoder->forward(readF32(dir_, cs.at("images")), step, alpha);
    const double diff = test::maxAbsDiff(z, readF32(dir_, cs.at("z")));
    qInfo("max |dz| = %.3g", diff);
    QVERIFY2(diff <= 1e-4, qPrintable(QString("codes differ by %1").arg(diff)));
    return;
  }
  const auto z = readF32(dir_, cs.at("z"));
  torch::Tensor images;
  if (kind == "decode") {
    images = m->ema->forward(z, step, alpha);
  } else if (kind == "decode-training-decoder") {
    images = m->decoder->forward(z, step, alpha);
  } else if (kind == "mix") {
    // blocks [begin, end) each driven by one code, as the authors' zbuilder().use(z, [begin, end]).
    std::vector<torch::Tensor> per_block(m->config().blocksAtStage(step));
    const auto ranges = cs.at("blocks");
    for (size_t i = 0; i < ranges.size(); ++i)
      for (int b = ranges[i][0].get<int>(); b < ranges[i][1].get<int>(); ++b) per_block.at(b) = z.narrow(0, i, 1);
    images = m->ema->forward(LatentPlan(per_block), step, alpha);
  } else {
    QFAIL(qPrintable(QString::fromStdString("unknown case kind " + kind)));
  }
  const double diff = test::maxAbsDiff(images, readF32(dir_, cs.at("images")));
  qInfo("max |dx| = %.3g", diff);
  QVERIFY2(diff <= 2e-3, qPrintable(QString("images differ by %1").arg(diff)));
}

void TestReference::architectureIsInferredFromShapes() {
  for (const auto& entry : cases_.at("models")) {
    const std::string file = entry.at("files").at("zip");
    auto ckpt = readReferenceCheckpoint(dir_ / file);
    auto arch = inferReferenceArchitecture(ckpt, file);
    QCOMPARE(QString::fromStdString(arch.name), QString::fromStdString(entry.at("arch").get<std::string>()));
    QCOMPARE(arch.config.latent_dim, cases_.at("nz").get<int>());
    QCOMPARE(arch.config.resolution, 4 << entry.at("phase").get<int>());
    auto m = model(file);
    QCOMPARE(m->stage(), entry.at("phase").get<int>());
    QVERIFY(!m->ema->noise());  // inference without layer noise, as the authors' editing API
    QVERIFY(m->metadata.at("provenance").at("sha256").get<std::string>().size() == 64);
    QCOMPARE(m->metadata.at("provenance").at("architecture").get<std::string>(), arch.name);
  }
}

void TestReference::importedModelSurvivesSaveAndLoad() {
  const auto& entry = cases_.at("models").at(0);
  auto m = model(entry.at("files").at("zip"));
  QTemporaryDir tmp;
  const auto path = test::tmpPath(tmp, "imported.amod");
  saveModel(path, *m);
  auto back = loadModel(path);
  QCOMPARE(back->config(), m->config());
  QCOMPARE(back->stage(), m->stage());
  QCOMPARE(back->metadata.at("alignment"), m->metadata.at("alignment"));
  for (size_t c = 0; c < entry.at("cases").size(); ++c) {
    const auto& cs = entry["cases"][c];
    if (cs.at("kind") != "decode" || cs.at("step") != m->stage()) continue;
    auto z = readF32(dir_, cs.at("z"));
    QVERIFY(test::maxAbsDiff(back->decode(z), readF32(dir_, cs.at("images"))) <= 2e-3);
    return;
  }
  QFAIL("no full-resolution decode case");
}

void TestReference::mixCaseIsTheEditorsPlanOfRanges() {
  // The editor's plan builder, given the case's three ranges as inclusive block ranges, makes the
  // same images: the per-block mixing API is the authors' zbuilder.
  for (const auto& entry : cases_.at("models")) {
    auto m = model(entry.at("files").at("zip"));
    for (const auto& cs : entry.at("cases")) {
      if (cs.at("kind") != "mix") continue;
      const auto z = readF32(dir_, cs.at("z"));
      std::vector<RangeAssignment> assignments;
      for (size_t i = 0; i < cs.at("blocks").size(); ++i) {
        const int begin = cs["blocks"][i][0], end = cs["blocks"][i][1];
        assignments.push_back({BlockRange{begin, end - 1}, {z.narrow(0, i, 1)}, {}});
      }
      auto plan = buildPlan(m->numBlocks(), z.narrow(0, 0, 1), assignments);
      QVERIFY(test::maxAbsDiff(m->decode(plan), readF32(dir_, cs.at("images"))) <= 2e-3);
    }
  }
}

namespace {
using Damage = std::function<void(ReferenceCheckpoint&)>;
void eraseEntry(ReferenceCheckpoint::StateDict& d, const std::string& name) {
  d.erase(std::remove_if(d.begin(), d.end(), [&](auto& e) { return e.first == name; }), d.end());
}
torch::Tensor& entry(ReferenceCheckpoint::StateDict& d, const std::string& name) {
  for (auto& [k, t] : d)
    if (k == name) return t;
  throw std::logic_error("no " + name);
}
}  // namespace
Q_DECLARE_METATYPE(Damage)

void TestReference::damagedCheckpointsGiveOneLineErrors_data() {
  QTest::addColumn<Damage>("damage");
  QTest::addColumn<QString>("expected");
  QTest::newRow("missing conv") << Damage([](auto& c) { eraseEntry(c.ema_decoder, "progression.2.conv.1.conv.weight_orig"); })
                                << "G_running_state_dict has no 'progression.2.conv.1.conv.weight_orig'";
  QTest::newRow("missing gain") << Damage([](auto& c) { eraseEntry(c.decoder, "progression.4.conv.0.0.conv.weight_gain"); })
                                << "G_state_dict has no 'progression.4.conv.0.0.conv.weight_gain'";
  QTest::newRow("misshapen conv") << Damage([](auto& c) {
    entry(c.ema_decoder, "progression.3.conv.1.conv.weight_orig") = torch::zeros({32, 31, 3, 3});
  }) << "has shape [32, 31, 3, 3] where the architecture";
  QTest::newRow("widths disagree") << Damage([](auto& c) {
    entry(c.ema_decoder, "to_rgb.2.weight") = torch::zeros({3, 31, 1, 1});
  }) << "shape";
  QTest::newRow("nan weight") << Damage([](auto& c) {
    entry(c.encoder, "progression.6.conv.0.conv.weight_orig")[0][0][0][0] = std::nan("");
  }) << "NaN or infinite";
  QTest::newRow("short SNU") << Damage([](auto& c) { c.snu.pop_back(); }) << "spectral-norm vectors";
  QTest::newRow("wrong u") << Damage([](auto& c) { c.snu[12] = torch::ones({5, 1}); }) << "SNU[12] has 5 elements";
  QTest::newRow("phase too high") << Damage([](auto& c) { c.phase = 12; }) << "phase 12 is outside";
  QTest::newRow("no decoder") << Damage([](auto& c) { c.ema_decoder.clear(); }) << "has no to_rgb layers";
  QTest::newRow("integer weights") << Damage([](auto& c) {
    entry(c.decoder, "to_rgb.1.bias") = torch::zeros({3}, torch::kLong);
  }) << "not a floating-point tensor";
}

void TestReference::damagedCheckpointsGiveOneLineErrors() {
  QFETCH(Damage, damage);
  QFETCH(QString, expected);
  auto ckpt = readReferenceCheckpoint(dir_ / "ffhq-style.pth");
  damage(ckpt);
  try {
    importReference(ckpt, "damaged.pth", "0");
    QFAIL("imported a damaged checkpoint");
  } catch (const Error& e) {
    const QString msg = e.what();
    QVERIFY2(msg.contains(expected), qPrintable(msg));
    QVERIFY2(!msg.contains('\n'), qPrintable(msg));
    QVERIFY2(msg.startsWith("damaged.pth"), qPrintable(msg));
  }
}

void TestReference::importCommandWritesAModelOrFailsInOneLine() {
  QTemporaryDir tmp;
  const auto out = test::tmpPath(tmp, "m.amod");
  auto ok = test::runAutomod({"import", (dir_ / "small-arch.pth").string(), "-o", out.string(), "--alignment", "celebahq"});
  QVERIFY2(ok.code == 0, ok.err.c_str());
  QVERIFY(QString::fromStdString(ok.err).contains("small architecture"));
  auto info = test::runAutomod({"info", out.string()});
  QCOMPARE(info.code, 0);
  auto j = nlohmann::json::parse(info.out);
  QCOMPARE(j.at("metadata").at("alignment").get<std::string>(), std::string("celebahq"));
  QCOMPARE(j.at("metadata").at("provenance").at("file").get<std::string>(), std::string("small-arch.pth"));
  QCOMPARE(j.at("metadata").at("provenance").at("sha256").get<std::string>().size(), size_t(64));

  // A truncated file, a file that is not a torch file, and a model file instead of a checkpoint.
  std::ifstream in(dir_ / "small-arch.pth", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const auto truncated = test::tmpPath(tmp, "truncated.pth");
  std::ofstream(truncated, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  for (const auto& bad : {truncated, out, fs::path(AUTOMOD_SOURCE_DIR) / "README.md"}) {
    auto r = test::runAutomod({"import", bad.string(), "-o", test::tmpPath(tmp, "bad.amod").string()});
    QVERIFY2(r.code != 0, bad.c_str());
    QVERIFY2(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err.c_str());
    QVERIFY(!fs::exists(test::tmpPath(tmp, "bad.amod")));
  }
}

void TestReference::mutatedCheckpointsImportOrFailWithAutomodError() {
  // Seeded byte mutations of a whole checkpoint (mostly in its pickle and zip headers, where they
  // change the structure, some in the tensor data, where they make NaNs or odd values): every import
  // either succeeds or throws automod::Error. The reader's own fuzzing is in tst_torch_file.
  std::ifstream in(dir_ / "small-arch.pth", std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)), {});
  const size_t pkl = original.find("data.pkl");
  QVERIFY(pkl != std::string::npos);
  std::mt19937_64 rng(20201207);
  QTemporaryDir tmp;
  const auto path = test::tmpPath(tmp, "mutant.pth");
  int imported = 0, refused = 0;
  for (int run = 0; run < 60; ++run) {
    std::string bytes = original;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t region = rng() % 3;
      size_t at = region == 0 ? pkl + rng() % 20000                    // the pickle
                  : region == 1 ? bytes.size() - 1 - rng() % 4096       // the central directory
                                : rng() % bytes.size();                 // anywhere (mostly tensor data)
      at = std::min(at, bytes.size() - 1);
      switch (rng() % 4) {
        case 0: bytes[at] = char(rng()); break;
        case 1: bytes[at] ^= char(1 << (rng() % 8)); break;
        case 2: bytes.erase(at, 1 + rng() % 8); break;
        default: bytes.insert(at, std::string(1 + rng() % 8, char(rng()))); break;
      }
    }
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    try {
      importReferenceFile(path);
      ++imported;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      QFAIL(qPrintable(QString("run %1: not an automod::Error: %2").arg(run).arg(e.what())));
    }
  }
  qInfo("60 mutants: %d imported, %d refused with a message", imported, refused);
  QVERIFY(refused > 0);
}

void TestReference::trainingStateCarriesAdamMomentsAndResumes() {
  // The recorded-iteration checkpoint (phase 3, 32 px) with Adam moments filled in as a released
  // file would have them: they reach our optimisers on the right parameters, and the run resumes.
  const auto file = dir_ / "train-step-m0-before.pth";
  if (!fs::exists(file)) QSKIP("no train-step-m0-before.pth in the fixture folder");
  auto ckpt = readReferenceCheckpoint(file);
  std::vector<std::string> decoder_names;
  for (auto& [k, t] : ckpt.decoder)
    if (!(k.rfind("progression.", 0) == 0 && k.find(".mod.") != std::string::npos)) decoder_names.push_back(k);
  QCOMPARE(ckpt.optimizer_decoder.params, int64_t(decoder_names.size()));
  auto moment = [](const torch::Tensor& like, double v) { return torch::full(like.sizes(), v); };
  for (size_t i = 0; i < decoder_names.size(); ++i) {
    const auto* t = ckpt.find(ckpt.decoder, decoder_names[i]);
    ckpt.optimizer_decoder.state[int64_t(i)] = {42, moment(*t, 0.001 * double(i + 1)), moment(*t, 1e-6)};
  }
  const int64_t robust_first = static_cast<int64_t>(ckpt.encoder.size());
  QCOMPARE(ckpt.optimizer_encoder.params, robust_first + 2 * int64_t(ckpt.robust.size()));
  ckpt.optimizer_encoder.state[robust_first + 6] = {9, moment(ckpt.robust[3].first, 0.5), moment(ckpt.robust[3].first, 0.25)};

  auto imported = importReference(ckpt, file.string(), "0");
  ReferenceTrainingOptions options;
  options.preset = "paper-ffhq256";
  options.training_images = 64;
  auto state = referenceTrainingState(imported, ckpt, options);
  QCOMPARE(state.checkpoint.header.value("kind", ""), std::string("checkpoint"));
  bool says_position = false;
  for (auto& line : state.not_carried) says_position = says_position || line.find("schedule position") != std::string::npos;
  QVERIFY(says_position);  // iteration 1000 is not where paper-ffhq256 reaches 32 px

  // Our decoder Adam holds the moments given for the authors' to_rgb.3.weight (index in their order).
  auto model = modelFromArchive(state.checkpoint, "run");
  model->setStage(state.checkpoint.header["training"]["stage"].get<int>());
  TrainingModules modules(*model, 1e-3);
  {
    const auto bytes = state.checkpoint.get("optim.decoder");
    std::istringstream in(std::string(static_cast<const char*>(bytes.data_ptr()), size_t(bytes.numel())));
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    modules.decoder_opt->load(archive);
  }
  const auto it = std::find(decoder_names.begin(), decoder_names.end(), "to_rgb.3.weight");
  const double expected = 0.001 * double(it - decoder_names.begin() + 1);
  auto param = model->decoder->named_parameters(true)["to_rgb.3.weight"];
  std::ostringstream key;
  key << param.unsafeGetTensorImpl();
  bool found = false;
  for (auto& [k, s] : modules.decoder_opt->state()) {
    auto& adam = static_cast<torch::optim::AdamParamState&>(*s);
    if (adam.exp_avg().sizes() != param.sizes()) continue;
    if (std::abs(adam.exp_avg().flatten()[0].item<double>() - expected) < 1e-6) found = found || adam.step() == 42;
  }
  QVERIFY2(found, "the authors' to_rgb.3.weight moments did not reach our to_rgb.3.weight");

  // `automod train --resume` continues the run on a folder of photos.
  QTemporaryDir tmp;
  const auto run = test::tmpPath(tmp, "run");
  fs::create_directories(run);
  writeArchive(run / "latest.amod", state.checkpoint);
  const auto photos = test::tmpPath(tmp, "photos");
  fs::create_directories(photos);
  for (int i = 0; i < 140; ++i) test::writeTestImage(photos / ("p" + std::to_string(i) + ".png"), 40, 40, i);
  auto r = test::runAutomod({"train", "--resume", "--out", run.string(), "--data", photos.string(), "--threads", "1",
                             "--no-previews"});
  QVERIFY2(r.code == 0, r.err.c_str());
  auto after = readArchive(run / "latest.amod");
  QCOMPARE(after.header["training"]["images_seen"].get<int64_t>(), state.images_seen + 64);
}

QTEST_APPLESS_MAIN(TestReference)
#include "tst_reference.moc"
