// The Trainer (docs/design.md §3 fault tolerance, issue 3): exact resume, NaN rollback, failed checkpoint
// writes, checkpoints that open as models, previews, pause/stop from another thread, that a short
// run on Fashion-MNIST really learns, and flip-invariance training (docs/design.md §3, issue 3).
#include <QtTest>

#include <algorithm>
#include <fstream>

#include "core/io/archive.h"
#include "core/io/model_file.h"
#include "core/util/error.h"
#include "testutil.h"
#include "training/data.h"
#include "training/trainer.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {

// Held-out PSNR gain required of the short Fashion-MNIST run.
constexpr double kLearnMarginDb = 5.0;  // measured: 3.8 dB -> 12.7 dB (+8.9 dB)

// Smooth random images (low-frequency noise upsampled), uint8 [N, 3, 16, 16].
std::shared_ptr<TensorImageDataset> smoothImages(int64_t n, int64_t held_out, uint64_t seed = 1) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto low = at::rand({n, 3, 4, 4}, gen);
  auto img = torch::nn::functional::interpolate(
      low, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{16, 16}).mode(torch::kBilinear).align_corners(false));
  return std::make_shared<TensorImageDataset>((img * 255).round().clamp(0, 255).to(torch::kUInt8), held_out);
}

TrainingPreset smallPreset() {
  TrainingPreset p;
  p.name = "unit";
  p.resolution = 8;
  p.widths = {8, 8};
  p.latent_dim = 16;
  p.phases = {{4, 0, 2e-3, 0.0}, {8, 48, 2e-3, 0.02}};
  p.batch_by_resolution = {{4, 8}, {8, 8}};
  p.fade_in_images = 32;
  p.total_images = 192;
  p.checkpoint_every = 64;
  p.preview_every = 64;
  p.log_every = 16;
  p.pool_size = 16;
  return p;
}

TrainerConfig configIn(const fs::path& dir, int64_t max_images, bool resume = false) {
  TrainerConfig c;
  c.preset = smallPreset();
  c.run_dir = dir;
  c.seed = 5;
  c.max_images = max_images;
  c.resume = resume;
  c.write_previews = false;
  return c;
}

// The first tensor of checkpoint `a` (optimiser states aside: serialised bytes, compared through the
// weights they move) that `b` lacks or holds with other values; empty when none. `compared` counts.
std::string firstDifference(const TensorArchive& a, const TensorArchive& b, int* compared = nullptr) {
  for (auto& [name, t] : a.tensors) {
    if (name.rfind("optim.", 0) == 0) continue;
    if (!b.has(name)) return name + " (missing)";
    if (!torch::equal(t, b.get(name))) return name;
    if (compared) ++*compared;
  }
  return {};
}

double psnrOfHeldOut(Automodulator& m, ImageDataset& data, int resolution) {
  std::vector<int64_t> idx(data.heldOutSize());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  auto x = data.heldOut(idx, resolution).to(torch::kFloat32).div(127.5).sub(1.0);
  auto rec = m.decode(m.encode(x));
  const double mse = (rec.clamp(-1, 1) - x).square().mean().item<double>();
  return 10.0 * std::log10(4.0 / mse);
}

}  // namespace

class TestTrainer : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() { torch::set_num_threads(1); }
  void resumeContinuesBitForBit();
  void resumeUnderANewScheduleEqualsTrainingUnderItFromTheStart();
  void aScheduleThatCannotContinueTheRunIsRefused();
  void aPhaseCycleWeightReplacesThePresetsForThatPhase();
  void nanLossRollsBackWithHalvedLearningRate();
  void failedCheckpointWriteKeepsPreviousCheckpoint();
  void checkpointOpensAsModelAndHoldsTrainingState();
  void runFolderHasConfigLogAndPreviews();
  void pauseAndStopFromAnotherThread();
  void tooFewImagesGiveAClearError();
  void previewAndCheckpointAtAPhaseBoundary();
  void shortRunImprovesHeldOutReconstruction();
  void flipInvarianceTrainsTheTinyPreset();
  void flipInvarianceStyleLinearsLearnInTheEncoderStep();
};

void TestTrainer::resumeContinuesBitForBit() {
  QTemporaryDir dir;
  auto data = smoothImages(72, 8);
  // 96 images: past the first fade-in (48 + 32), so the image pool is part of the saved state.
  {
    Trainer once(configIn(test::tmpPath(dir, "once"), 192), data);
    QCOMPARE(once.run().status, TrainingResult::Finished);
  }
  {
    Trainer first(configIn(test::tmpPath(dir, "split"), 96), data);
    auto r = first.run();
    QCOMPARE(r.status, TrainingResult::Finished);
    QCOMPARE(r.images_seen, int64_t(96));
  }
  {
    Trainer second(configIn(test::tmpPath(dir, "split"), 192, /*resume=*/true), data);
    QCOMPARE(second.imagesSeen(), int64_t(96));
    QCOMPARE(second.run().status, TrainingResult::Finished);
  }
  auto a = readArchive(test::tmpPath(dir, "once") / "latest.amod");
  auto b = readArchive(test::tmpPath(dir, "split") / "latest.amod");
  QCOMPARE(a.header["training"]["images_seen"].get<int64_t>(), int64_t(192));
  QCOMPARE(a.tensors.size(), b.tensors.size());
  int compared = 0;
  const auto differs = firstDifference(a, b, &compared);
  QVERIFY2(differs.empty(), differs.c_str());
  QVERIFY(compared > 20);
  QVERIFY(a.has("pool.images"));
}

namespace {
// smallPreset() with a learning-rate decay at 8 px from 128 images on (the same past up to there).
TrainingPreset decayingPreset() {
  auto p = smallPreset();
  p.name = "unit-decay";
  p.phases.push_back({8, 128, 5e-4, 0.02});
  return p;
}

std::vector<nlohmann::json> logLines(const fs::path& run) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(run / "log.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}
}  // namespace

void TestTrainer::resumeUnderANewScheduleEqualsTrainingUnderItFromTheStart() {
  // A run trained to 96 images under smallPreset() and continued under decayingPreset() ends exactly
  // where a run under decayingPreset() from the start ends: the new schedule takes over from the
  // checkpoint, learning rates included, and later checkpoints carry it.
  QTemporaryDir dir;
  auto data = smoothImages(72, 8);
  {
    auto c = configIn(test::tmpPath(dir, "decay"), 192);
    c.preset = decayingPreset();
    Trainer t(c, data);
    QCOMPARE(t.run().status, TrainingResult::Finished);
  }
  const auto run = test::tmpPath(dir, "continued");
  {
    Trainer first(configIn(run, 96), data);
    QCOMPARE(first.run().status, TrainingResult::Finished);
  }
  {
    // Stopped before its first step, the continued run has already saved the new preset: a later
    // --resume without it keeps it.
    auto c = configIn(run, 0, /*resume=*/true);
    c.continue_with = decayingPreset();
    Trainer stopped(c, data);
    stopped.stop();
    QCOMPARE(stopped.run().status, TrainingResult::Stopped);
    const auto saved = readArchive(run / "latest.amod").header["training"];
    QCOMPARE(saved["preset"]["name"].get<std::string>(), std::string("unit-decay"));
    QCOMPARE(saved["images_seen"].get<int64_t>(), int64_t(96));
  }
  {
    Trainer second(configIn(run, 0, /*resume=*/true), data);
    QCOMPARE(second.imagesSeen(), int64_t(96));
    auto r = second.run();
    QCOMPARE(r.status, TrainingResult::Finished);
    QCOMPARE(r.images_seen, int64_t(192));  // the new preset's length
  }
  auto a = readArchive(test::tmpPath(dir, "decay") / "latest.amod");
  auto b = readArchive(run / "latest.amod");
  int compared = 0;
  const auto differs = firstDifference(a, b, &compared);
  QVERIFY2(differs.empty(), differs.c_str());
  QVERIFY(compared > 20);
  QCOMPARE(b.header["training"]["preset"]["name"].get<std::string>(), std::string("unit-decay"));
  // The log records the change where it happened, then the decayed learning rate.
  const auto lines = logLines(run);
  auto change = std::find_if(lines.begin(), lines.end(), [](auto& l) { return l.value("event", "") == "schedule"; });
  QVERIFY(change != lines.end());
  QCOMPARE((*change)["images"].get<int64_t>(), int64_t(96));
  QCOMPARE((*change)["from"]["name"].get<std::string>(), std::string("unit"));
  QCOMPARE((*change)["to"]["name"].get<std::string>(), std::string("unit-decay"));
  QCOMPARE(lines.back().value("event", ""), std::string("checkpoint"));
  auto last_step = std::find_if(lines.rbegin(), lines.rend(), [](auto& l) { return l.contains("lr"); });
  QVERIFY(last_step != lines.rend());
  QCOMPARE((*last_step)["lr"].get<double>(), 5e-4);
  nlohmann::json cfg;
  std::ifstream(run / "config.json") >> cfg;
  QCOMPARE(cfg["preset"]["name"].get<std::string>(), std::string("unit-decay"));
}

void TestTrainer::aScheduleThatCannotContinueTheRunIsRefused() {
  QTemporaryDir dir;
  auto data = smoothImages(72, 8);
  const auto run = test::tmpPath(dir, "run");
  {
    Trainer t(configIn(run, 96), data);
    QCOMPARE(t.run().status, TrainingResult::Finished);
  }
  const auto before = readArchive(run / "latest.amod");
  auto refused = [&](TrainingPreset p, const std::string& says) {
    auto c = configIn(run, 0, /*resume=*/true);
    c.continue_with = std::move(p);
    try {
      Trainer t(c, data);
      QFAIL(("expected a refusal saying " + says).c_str());
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find(says) != std::string::npos, e.what());
    }
  };
  auto wider = decayingPreset();
  wider.widths = {16, 8};
  refused(wider, "block widths");
  auto bigger_code = decayingPreset();
  bigger_code.latent_dim = 32;
  refused(bigger_code, "latent size is 32");
  auto later_growth = decayingPreset();  // at 96 images it would still train at 4 px
  later_growth.phases = {{4, 0, 2e-3, 0.0}, {8, 120, 2e-3, 0.02}};
  refused(later_growth, "at 96 images it trains at 4 px, the run at 8 px");
  auto other_fade = decayingPreset();  // 8 px from 48 images, but fading in over 96 images
  other_fade.fade_in_images = 96;
  refused(other_fade, "fade-in");
  auto shorter = decayingPreset();
  shorter.total_images = 96;
  refused(shorter, "it ends at 96 images");
  // Nothing was written: the run resumes as before.
  const auto after = readArchive(run / "latest.amod");
  QCOMPARE(after.header.dump(), before.header.dump());
}

void TestTrainer::aPhaseCycleWeightReplacesThePresetsForThatPhase() {
  // Two presets that say the same thing in two ways (cycle weight 0.2 at 4 px and 1.0 at 8 px) train
  // the same model bit for bit; the preset's weight throughout trains another one.
  QTemporaryDir dir;
  auto data = smoothImages(72, 8);
  auto per_phase = smallPreset();
  per_phase.losses.cos = 0.2;
  per_phase.phases[1].cos = 1.0;
  auto swapped = smallPreset();
  swapped.losses.cos = 1.0;
  swapped.phases[0].cos = 0.2;
  auto plain = smallPreset();
  plain.losses.cos = 0.2;
  QCOMPARE(per_phase.lossesAt(per_phase.at(100)).cos, 1.0);
  QCOMPARE(per_phase.lossesAt(per_phase.at(10)).cos, 0.2);
  QCOMPARE(TrainingPreset::fromJson(per_phase.toJson()).lossesAt(per_phase.at(100)).cos, 1.0);
  auto train = [&](const TrainingPreset& p, const char* name) {
    auto c = configIn(test::tmpPath(dir, name), 128);
    c.preset = p;
    Trainer t(c, data);
    [&] { QCOMPARE(t.run().status, TrainingResult::Finished); }();
    return readArchive(c.run_dir / "latest.amod");
  };
  const auto a = train(per_phase, "per-phase"), b = train(swapped, "swapped"), c = train(plain, "plain");
  const auto differs = firstDifference(a, b);
  QVERIFY2(differs.empty(), differs.c_str());
  QVERIFY(!firstDifference(a, c).empty());
}

void TestTrainer::nanLossRollsBackWithHalvedLearningRate() {
  QTemporaryDir dir;
  auto run = test::tmpPath(dir, "nan");
  Trainer t(configIn(run, 128), smoothImages(72, 8));
  bool fired = false;
  t.setFaultInjector([&](int64_t iteration) {
    if (iteration == 10 && !fired) return fired = true;
    return false;
  });
  std::vector<std::string> messages;
  t.onMessage([&](const std::string& m) { messages.push_back(m); });
  auto r = t.run();
  QCOMPARE(r.status, TrainingResult::Finished);
  QCOMPARE(r.rollbacks, 1);
  QVERIFY(fired);
  auto a = readArchive(run / "latest.amod");
  QCOMPARE(a.header["training"]["lr_scale"].get<double>(), 0.5);
  for (auto& [name, tensor] : a.tensors)
    if (tensor.is_floating_point()) QVERIFY2(torch::isfinite(tensor).all().item<bool>(), name.c_str());
  std::ifstream log(run / "log.jsonl");
  std::string line, all;
  while (std::getline(log, line)) all += line + "\n";
  QVERIFY(all.find("\"rollback\"") != std::string::npos);
  bool said = false;
  for (auto& m : messages) said |= m.find("rolled back") != std::string::npos;
  QVERIFY(said);
}

void TestTrainer::failedCheckpointWriteKeepsPreviousCheckpoint() {
  QTemporaryDir dir;
  auto run = test::tmpPath(dir, "full");
  fs::create_directories(run / "checkpoint-000000064.amod");  // the numbered checkpoint cannot be written
  Trainer t(configIn(run, 128), smoothImages(72, 8));
  auto r = t.run();
  QCOMPARE(r.status, TrainingResult::Failed);
  QVERIFY2(r.error.find("intact") != std::string::npos, r.error.c_str());
  auto model = loadModel(run / "latest.amod");  // the previous checkpoint still opens
  QVERIFY(readArchive(run / "latest.amod").header["training"]["images_seen"].get<int64_t>() < 64);
}

void TestTrainer::checkpointOpensAsModelAndHoldsTrainingState() {
  QTemporaryDir dir;
  auto run = test::tmpPath(dir, "ckpt");
  Trainer t(configIn(run, 64), smoothImages(72, 8));
  QCOMPARE(t.run().status, TrainingResult::Finished);
  QVERIFY(fs::exists(run / "checkpoint-000000064.amod"));
  auto model = loadModel(run / "latest.amod");
  // At 64 images the 8 px block is still fading in (from 48 to 80 images), so the model a user opens
  // from this checkpoint is the fully grown 4 px one.
  QCOMPARE(model->resolution(), 4);
  QCOMPARE(model->metadata["images_seen"].get<int64_t>(), int64_t(64));
  auto a = readArchive(run / "latest.amod");
  QCOMPARE(a.header["kind"].get<std::string>(), std::string("checkpoint"));
  for (const char* name : {"optim.encoder", "optim.decoder", "rng.cpu", "robust.alpha_8", "robust.scale_4"})
    QVERIFY2(a.has(name), name);
  QCOMPARE(a.header["training"]["stage"].get<int>(), 1);
}

void TestTrainer::runFolderHasConfigLogAndPreviews() {
  QTemporaryDir dir;
  auto run = test::tmpPath(dir, "folder");
  auto c = configIn(run, 128);
  c.write_previews = true;
  Trainer t(c, smoothImages(72, 8));
  int previews = 0, progress = 0;
  TrainingProgress last;
  t.onPreview([&](const TrainingPreview& p) {
    ++previews;
    QVERIFY(p.samples.defined() && p.reconstructions.defined() && p.mixes.defined());
    QCOMPARE(p.samples.dim(), int64_t(3));
  });
  t.onProgress([&](const TrainingProgress& p) {
    ++progress;
    last = p;
  });
  QCOMPARE(t.run().status, TrainingResult::Finished);
  QVERIFY(previews >= 2);
  QCOMPARE(progress, 16);
  QCOMPARE(last.images_seen, int64_t(128));
  QCOMPARE(last.resolution, 8);
  QVERIFY(last.images_per_second > 0);
  QVERIFY(std::isfinite(last.losses.encoder_total) && std::isfinite(last.losses.decoder_total));
  QVERIFY(fs::exists(run / "config.json"));
  QVERIFY(fs::exists(run / "previews" / "samples-000000064.png"));
  QVERIFY(fs::exists(run / "previews" / "mixes-000000128.png"));
  std::ifstream log(run / "log.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("losses")) {
      ++lines;
      QVERIFY(j.contains("alpha") && j.contains("lr") && j.contains("images_per_second") && j.contains("phase"));
    }
  }
  QCOMPARE(lines, 8);
}

void TestTrainer::pauseAndStopFromAnotherThread() {
  QTemporaryDir dir;
  auto run = test::tmpPath(dir, "thread");
  auto c = configIn(run, 1000000);
  Trainer t(c, smoothImages(72, 8));
  std::atomic<int64_t> seen{0};
  t.onProgress([&](const TrainingProgress& p) { seen = p.images_seen; });
  t.start();
  while (seen < 16) QThread::msleep(5);
  t.pause();
  QThread::msleep(100);
  const int64_t paused_at = seen;
  QThread::msleep(200);
  QVERIFY(seen - paused_at <= 8);  // at most the iteration in flight
  t.resume();
  while (seen < paused_at + 16) QThread::msleep(5);
  t.stop();
  auto r = t.wait();
  QCOMPARE(r.status, TrainingResult::Stopped);
  QCOMPARE(readArchive(run / "latest.amod").header["training"]["images_seen"].get<int64_t>(), r.images_seen);
}

void TestTrainer::tooFewImagesGiveAClearError() {
  QTemporaryDir dir;
  try {
    Trainer t(configIn(test::tmpPath(dir, "few"), 64), smoothImages(6, 1));
    QFAIL("expected an error");
  } catch (const Error& e) {
    QVERIFY(std::string(e.what()).find("fewer than one batch") != std::string::npos);
  }
  QVERIFY_THROWS_EXCEPTION(Error, Trainer(configIn(test::tmpPath(dir, "none"), 64, true), smoothImages(72, 8)));
}

void TestTrainer::previewAndCheckpointAtAPhaseBoundary() {
  // 48 images is both a preview/checkpoint point and the start of the 8 px phase.
  QTemporaryDir dir;
  auto c = configIn(test::tmpPath(dir, "boundary"), 48);
  c.write_previews = true;
  c.preset.preview_every = 16;
  c.preset.checkpoint_every = 16;
  Trainer t(c, smoothImages(72, 8));
  auto r = t.run();
  QVERIFY2(r.status == TrainingResult::Finished, r.error.c_str());
  QCOMPARE(loadModel(c.run_dir / "latest.amod")->resolution(), 4);
}

void TestTrainer::shortRunImprovesHeldOutReconstruction() {
  if (fashionMnistDir().empty())
    QSKIP("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): this end-to-end test trains on it");
  QTemporaryDir dir;
  // 2000 grey training images and 8 held-out ones (from the official test split), at 4 → 8 px.
  DataSpec spec;
  spec.kind = DataSpec::FashionMnist;
  spec.count = 2000;
  spec.held_out_fraction = 0.004;
  spec.channels = 1;
  spec.max_resolution = 8;
  spec.cache_dir = test::tmpPath(dir, "cache");
  std::shared_ptr<ImageDataset> data = openDataset(spec);
  QCOMPARE(data->channels(), 1);
  QCOMPARE(data->heldOutSize(), int64_t(8));
  auto c = configIn(test::tmpPath(dir, "learn"), 0);
  c.preset.phases = {{4, 0, 5e-3, 0.0}, {8, 1600, 5e-3, 0.0}};
  c.preset.fade_in_images = 400;
  c.preset.batch_by_resolution = {{4, 16}, {8, 16}};
  c.preset.total_images = 6400;
  c.preset.checkpoint_every = 100000;
  c.preset.preview_every = 100000;
  c.preset.ema_decay = 0.9;
  Trainer t(c, data);
  auto& m = t.model();
  m.setStage(1);
  const double before = psnrOfHeldOut(m, *data, 8);
  m.setStage(0);
  QCOMPARE(t.run().status, TrainingResult::Finished);
  auto trained = loadModel(c.run_dir / "latest.amod");
  QCOMPARE(trained->resolution(), 8);
  const double after = psnrOfHeldOut(*trained, *data, 8);
  qInfo("Fashion-MNIST 8 px, 6400 images: held-out PSNR %.2f dB -> %.2f dB", before, after);
  QVERIFY2(after > before + kLearnMarginDb, qPrintable(QString("held-out PSNR %1 dB -> %2 dB").arg(before).arg(after)));
}

void TestTrainer::flipInvarianceTrainsTheTinyPreset() {
  QTemporaryDir dir;
  auto data = smoothImages(72, 8);
  TrainerConfig c;
  c.preset = loadPreset("tiny");
  c.preset.flip_invariance = true;
  // The tiny preset with its schedule compressed so that a few steps reach 16 px: 8 px from 32
  // images, 16 px from 96, fade-ins of 32 images; 10 steps of 16 (8 images + their flips).
  c.preset.phases[1].images_at_start = 32;
  c.preset.phases[2].images_at_start = 96;
  c.preset.fade_in_images = 32;
  c.run_dir = test::tmpPath(dir, "flip");
  c.seed = 2;
  c.max_images = 160;
  c.write_previews = false;
  Trainer t(c, data);
  QVERIFY(t.model().config().extra_8x8_block);
  QCOMPARE(static_cast<int>(t.model().decoder->blocks->size()), 4);
  std::vector<TrainingLosses> losses;
  t.onProgress([&](const TrainingProgress& p) { losses.push_back(p.losses); });
  auto r = t.run();
  QVERIFY2(r.status == TrainingResult::Finished, r.error.c_str());
  QCOMPARE(losses.size(), size_t(10));
  for (const auto& l : losses) {
    QVERIFY(std::isfinite(l.encoder_total) && std::isfinite(l.decoder_total));
    QVERIFY(std::isfinite(l.reconstruction) && std::isfinite(l.layer));
  }
  // Layer noise stayed off: the noise scales (initialised to 0) never moved.
  int noise = 0;
  for (auto& p : t.model().decoder->named_parameters(true))
    if (p.key().find("noise") != std::string::npos) {
      QVERIFY2(p.value().abs().max().item<double>() == 0.0, p.key().c_str());
      ++noise;
    }
  QVERIFY(noise >= 6);
  // The checkpoint records the option and opens as a 16 px model with the extra block.
  auto a = readArchive(c.run_dir / "latest.amod");
  QVERIFY(a.header["training"]["preset"].value("flip_invariance", false));
  auto m = loadModel(c.run_dir / "latest.amod");
  QVERIFY(m->config().extra_8x8_block);
  QCOMPARE(m->resolution(), 16);
  QCOMPARE(m->numBlocks(), 4);
  auto img = m->decode(m->randomLatents(2, 1));
  QCOMPARE(img.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  QVERIFY(torch::isfinite(img).all().item<bool>());
  // It resumes; an odd batch size is refused.
  {
    auto again = c;
    again.resume = true;
    again.max_images = 192;
    Trainer resumed(again, data);
    QCOMPARE(resumed.run().status, TrainingResult::Finished);
  }
  auto odd = c;
  odd.run_dir = test::tmpPath(dir, "odd");
  odd.preset.batch_by_resolution[8] = 15;
  QVERIFY_THROWS_EXCEPTION(Error, Trainer(odd, data));
}

void TestTrainer::flipInvarianceStyleLinearsLearnInTheEncoderStep() {
  auto config = test::tinyModel(8, 4)->config();
  config.extra_8x8_block = true;
  torch::manual_seed(4);
  Automodulator model(config);
  auto style = model.decoder->styleParameters();
  QCOMPARE(static_cast<int>(style.size()), 2 * (1 + 2 + 2));  // weight + bias of 5 AdaINs (blocks 0, 1, extra)
  auto inEncoderAdam = [](TrainingModules& m, const torch::Tensor& p) {
    return m.encoder_opt->state().count(c10::guts::to_string(p.unsafeGetTensorImpl())) > 0;
  };
  torch::manual_seed(1);
  auto x1 = torch::rand({4, 3, 8, 8}) * 2 - 1;
  auto x = torch::stack({x1, x1.flip({3})}, 1).flatten(0, 1);
  LossWeights w;
  {
    TrainingModules plain(model, 1e-3);
    auto r = trainIteration(plain, x, StepContext{1, 1.0, 0.0}, w, nullptr, 0.99);
    QVERIFY(r.finite);
    for (auto& p : style) QVERIFY(!inEncoderAdam(plain, p));
  }
  TrainingModules flip(model, 1e-3, /*style_in_encoder_step=*/true);
  auto r = trainIteration(flip, x, StepContext{1, 1.0, 0.0, true}, w, nullptr, 0.99);
  QVERIFY(r.finite);
  // The encoder step's Adam stepped every style linear (and the decoder's Adam did too).
  for (auto& p : style) QVERIFY(inEncoderAdam(flip, p));
  QVERIFY(!model.decoder->noise());
}

QTEST_GUILESS_MAIN(TestTrainer)
#include "tst_trainer.moc"
