// The `automod` program as a user meets it: help, exit codes, one-line reasons, seeded output.
#include <QtTest>

#include <fstream>

#include "core/io/image.h"
#include "core/io/model_file.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

class TestCli : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void helpListsCommands();
  void initThenInfoPrintsConfig();
  void sampleIsSeeded();
  void reconstructWritesPairsAndSkipsBadFiles();
  void badModelFileFailsWithOneLineReason();
  void unavailableCudaIsAClearError();
  void exportStripsTrainingStateAndKeepsTheModel();
  void infoFromTheHeaderIsTheFullToolsInfo();

 private:
  QTemporaryDir dir_;
  fs::path model_;
};

void TestCli::initTestCase() {
  model_ = test::tmpPath(dir_, "tiny.amod");
  auto r = test::runAutomod({"init", "-o", model_.string(), "--widths", "cpu-32", "--resolution", "16", "--latent",
                             "32", "--seed", "3"});
  QVERIFY2(r.code == 0, r.err.c_str());
}

void TestCli::helpListsCommands() {
  auto r = test::runAutomod({"--help"});
  QCOMPARE(r.code, 0);
  for (const char* c : {"info", "sample", "reconstruct", "bench"}) QVERIFY2(r.out.find(c) != std::string::npos, c);
  QCOMPARE(test::runAutomod({"sample", "--help"}).code, 0);
  QVERIFY(test::runAutomod({"no-such-command"}).code != 0);
}

void TestCli::initThenInfoPrintsConfig() {
  auto r = test::runAutomod({"info", model_.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  auto j = nlohmann::json::parse(r.out);
  QCOMPARE(j["resolution"].get<int>(), 16);
  QCOMPARE(j["config"]["latent_dim"].get<int>(), 32);
}

void TestCli::sampleIsSeeded() {
  const auto a = test::tmpPath(dir_, "a.png"), b = test::tmpPath(dir_, "b.png"), c = test::tmpPath(dir_, "c.png");
  for (auto& [p, seed] : std::vector<std::pair<fs::path, std::string>>{{a, "5"}, {b, "5"}, {c, "6"}}) {
    auto r = test::runAutomod({"sample", model_.string(), "-n", "4", "-o", p.string(), "--seed", seed});
    QVERIFY2(r.code == 0, r.err.c_str());
  }
  auto ia = readImage(a), ib = readImage(b), ic = readImage(c);
  QCOMPARE(ia.size(0), int64_t(2 * 16 + 3 * 2));
  QVERIFY(torch::equal(ia, ib));
  QVERIFY(!torch::equal(ia, ic));
}

void TestCli::reconstructWritesPairsAndSkipsBadFiles() {
  const auto photo = test::tmpPath(dir_, "photo.png");
  test::writeTestImage(photo, 40, 30);
  const auto bad = test::tmpPath(dir_, "bad.jpg");
  { std::ofstream(bad) << "not a jpeg"; }
  const auto out = test::tmpPath(dir_, "recon");
  auto r = test::runAutomod({"reconstruct", model_.string(), photo.string(), bad.string(), "-o", out.string(),
                             "--no-align"});
  if (r.code != 0 && r.err.find("no-align") != std::string::npos)  // before alignment options existed
    r = test::runAutomod({"reconstruct", model_.string(), photo.string(), bad.string(), "-o", out.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  QVERIFY2(r.err.find("bad.jpg") != std::string::npos, r.err.c_str());
  auto pair = readImage(out / "photo_recon.png");
  QCOMPARE(pair.size(0), int64_t(16));
  QCOMPARE(pair.size(1), int64_t(32));
  // Only bad files: a failure with the reason.
  r = test::runAutomod({"reconstruct", model_.string(), bad.string(), "-o", out.string()});
  QVERIFY(r.code != 0);
}

void TestCli::infoFromTheHeaderIsTheFullToolsInfo() {
  // `automod info MODEL` is answered by the LibTorch-free front door from the header: it must print
  // exactly what the full tool prints, for plain, reference-architecture, mid-fade-in and grayscale
  // models and for training checkpoints; anything else (errors, --verify) is the full tool's own answer.
  const std::string full = (fs::path(test::automodBin()).parent_path() / "automod-run").string();
  QVERIFY2(fs::exists(full), full.c_str());
  std::vector<fs::path> models{model_};
  auto reference = std::make_unique<Automodulator>(ModelConfig::reference(32, 16));
  reference->setStage(2, 0.25);
  models.push_back(test::tmpPath(dir_, "reference-fading.amod"));
  saveModel(models.back(), *reference);
  models.push_back(test::tmpPath(dir_, "gray.amod"));
  saveModel(models.back(), *test::tinyModel(8, 2, 1));
  // A training checkpoint: the model's tensors plus the trainer's (optimiser state) and its header.
  auto archive = modelArchive(*test::tinyModel(16, 4));
  archive.header["kind"] = "checkpoint";
  archive.header["training"] = {{"images_seen", 1234}, {"preset", "test"}};
  archive.add("optim.encoder", torch::zeros({64}));
  models.push_back(test::tmpPath(dir_, "checkpoint.amod"));
  writeArchive(models.back(), archive);
  for (const auto& m : models) {
    auto fast = test::runAutomod({"info", m.string()});
    auto slow = test::runProgram(full, {"info", m.string()});
    QVERIFY2(slow.code == 0, slow.err.c_str());
    QCOMPARE(fast.code, 0);
    QCOMPARE(fast.out, slow.out);
    // --verify loads the whole file: the same description, verified.
    auto verified = nlohmann::json::parse(test::runAutomod({"info", m.string(), "--verify"}).out);
    auto header = nlohmann::json::parse(fast.out);
    QCOMPARE(verified["integrity"].get<std::string>(), std::string("verified"));
    verified["integrity"] = header["integrity"];
    QVERIFY2(verified == header, m.string().c_str());
  }
  // A damaged or foreign file: the full tool's message and exit status.
  const auto bad = test::tmpPath(dir_, "cut.amod");
  { std::ofstream(bad) << "AMODFILE but cut"; }
  auto fast = test::runAutomod({"info", bad.string()});
  auto slow = test::runProgram(full, {"info", bad.string()});
  QVERIFY(fast.code != 0);
  QCOMPARE(fast.code, slow.code);
  QCOMPARE(fast.err, slow.err);
  QVERIFY2(fast.err.find("truncated") != std::string::npos, fast.err.c_str());
}

void TestCli::badModelFileFailsWithOneLineReason() {
  const auto bad = test::tmpPath(dir_, "bad.amod");
  { std::ofstream(bad) << "AMODFILE but cut"; }
  auto r = test::runAutomod({"sample", bad.string(), "-n", "1", "-o", test::tmpPath(dir_, "x.png").string()});
  QVERIFY(r.code != 0);
  QVERIFY2(r.err.find("truncated") != std::string::npos, r.err.c_str());
  QCOMPARE(std::count(r.err.begin(), r.err.end(), '\n'), 1L);
}

void TestCli::unavailableCudaIsAClearError() {
  if (torch::cuda::is_available()) QSKIP("this machine has CUDA");
  auto r = test::runAutomod({"sample", model_.string(), "-n", "1", "-o", test::tmpPath(dir_, "y.png").string(),
                             "--device", "cuda"});
  QVERIFY(r.code != 0);
  QVERIFY2(r.err.find("no usable CUDA") != std::string::npos, r.err.c_str());
}

void TestCli::exportStripsTrainingStateAndKeepsTheModel() {
  // A real checkpoint: a few steps of the tiny preset on a folder of 16 px images.
  const auto data = test::tmpPath(dir_, "photos"), run = test::tmpPath(dir_, "run");
  fs::create_directories(data);
  for (int i = 0; i < 40; ++i) test::writeTestImage(data / ("p" + std::to_string(i) + ".png"), 16, 16, i);
  auto t = test::runAutomod({"train", "--data", data.string(), "--preset", "tiny", "--out", run.string(),
                             "--max-images", "64", "--no-previews", "--seed", "1"});
  QVERIFY2(t.code == 0, t.err.c_str());
  const auto ckpt = run / "latest.amod", exported = test::tmpPath(dir_, "exported.amod");
  auto r = test::runAutomod({"export", ckpt.string(), exported.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  auto info = nlohmann::json::parse(test::runAutomod({"info", exported.string()}).out);
  QCOMPARE(info["kind"].get<std::string>(), std::string("model"));
  QVERIFY(!info.contains("training"));
  QCOMPARE(info["metadata"]["images_seen"], nlohmann::json::parse(test::runAutomod({"info", ckpt.string()}).out)["metadata"]["images_seen"]);
  QVERIFY(fs::file_size(exported) < fs::file_size(ckpt));
  // The same model: identical samples from the checkpoint and from the exported file.
  const auto a = test::tmpPath(dir_, "from-ckpt.png"), b = test::tmpPath(dir_, "from-export.png");
  QCOMPARE(test::runAutomod({"sample", ckpt.string(), "-n", "4", "-o", a.string(), "--seed", "2"}).code, 0);
  QCOMPARE(test::runAutomod({"sample", exported.string(), "-n", "4", "-o", b.string(), "--seed", "2"}).code, 0);
  QVERIFY(torch::equal(readImage(a), readImage(b)));
  // Refuses to overwrite its input.
  QVERIFY(test::runAutomod({"export", ckpt.string(), ckpt.string()}).code != 0);

  // eval --store records the held-out figures in a model file, and refuses a checkpoint (whose
  // training state a re-save would drop).
  auto refused = test::runAutomod({"eval", ckpt.string(), "--data", data.string(), "--count", "4", "--store"});
  QVERIFY(refused.code != 0);
  QVERIFY2(refused.err.find("training checkpoint") != std::string::npos, refused.err.c_str());
  auto stored = test::runAutomod({"eval", exported.string(), "--data", data.string(), "--count", "4", "--store"});
  QVERIFY2(stored.code == 0, stored.err.c_str());
  const auto printed = nlohmann::json::parse(stored.out);
  const auto recorded = nlohmann::json::parse(test::runAutomod({"info", exported.string()}).out)["metadata"]["evaluation"];
  QCOMPARE(recorded["psnr_db"].get<double>(), printed["reconstruction"]["psnr_db"].get<double>());
  QCOMPARE(recorded["held_out_images"], printed["held_out_images"]);
  QVERIFY(recorded["held_out_images"].get<int>() > 0);

  // Runs never overwrite runs: a new run into that folder is refused with the ways out...
  const auto before = fs::last_write_time(ckpt);
  auto again = test::runAutomod({"train", "--data", data.string(), "--preset", "tiny", "--out", run.string(),
                                 "--max-images", "32", "--no-previews"});
  QVERIFY(again.code != 0);
  QVERIFY2(again.err.find("--resume") != std::string::npos && again.err.find("--overwrite") != std::string::npos,
           again.err.c_str());
  QCOMPARE(fs::last_write_time(ckpt), before);
  // ...and --overwrite starts afresh there (the old checkpoints are gone, the new run is 32 images).
  auto fresh = test::runAutomod({"train", "--data", data.string(), "--preset", "tiny", "--out", run.string(),
                                 "--max-images", "32", "--no-previews", "--overwrite"});
  QVERIFY2(fresh.code == 0, fresh.err.c_str());
  auto restarted = nlohmann::json::parse(test::runAutomod({"info", ckpt.string()}).out);
  QCOMPARE(restarted["training"]["images_seen"].get<int64_t>(), int64_t(32));

  // --schedule continues the run under another preset (here: tiny with a lower learning rate from
  // 16 images on and 64 images in all); without --resume it is refused.
  nlohmann::json decay;
  std::ifstream(fs::path(std::getenv("AUTOMOD_SOURCE_DIR")) / "resources" / "presets" / "tiny.json") >> decay;
  decay["name"] = "tiny-decay";
  const nlohmann::json slower{{"resolution", 4}, {"images", 16}, {"lr", 5e-4}, {"m_gap", 0.0}};
  decay["phases"].insert(decay["phases"].begin() + 1, slower);
  decay["total_images"] = 64;
  const auto decay_file = test::tmpPath(dir_, "tiny-decay.json");
  std::ofstream(decay_file) << decay.dump();
  auto no_resume = test::runAutomod({"train", "--data", data.string(), "--out", test::tmpPath(dir_, "other").string(),
                                     "--schedule", decay_file.string()});
  QVERIFY(no_resume.code != 0);
  QVERIFY2(no_resume.err.find("--resume") != std::string::npos, no_resume.err.c_str());
  auto continued = test::runAutomod({"train", "--data", data.string(), "--out", run.string(), "--resume",
                                     "--schedule", decay_file.string(), "--no-previews"});
  QVERIFY2(continued.code == 0, continued.err.c_str());
  QVERIFY2(continued.err.find("preset 'tiny-decay'") != std::string::npos, continued.err.c_str());
  auto after = nlohmann::json::parse(test::runAutomod({"info", ckpt.string()}).out);
  QCOMPARE(after["training"]["images_seen"].get<int64_t>(), int64_t(64));
  QCOMPARE(after["training"]["preset"]["name"].get<std::string>(), std::string("tiny-decay"));
}

QTEST_GUILESS_MAIN(TestCli)
#include "tst_cli.moc"
