// The progressive schedule and its presets (docs/design.md §3): phase lookup, fade-in endpoints, the start of
// the image pool, the shipped presets and their validation.
#include <QtTest>

#include <fstream>
#include <map>

#include "core/util/error.h"
#include "testutil.h"
#include "training/schedule.h"

using namespace automod;

namespace {

TrainingPreset threePhases() {
  TrainingPreset p;
  p.name = "test";
  p.resolution = 16;
  p.widths = {8, 8, 8};
  p.latent_dim = 16;
  p.phases = {{4, 0, 1e-3, 0.0}, {8, 1000, 1e-3, 0.0}, {8, 1800, 5e-4, 0.03}, {16, 2000, 2e-3, 0.05}};
  p.batch_by_resolution = {{4, 32}, {8, 16}, {16, 8}};
  p.fade_in_images = 400;
  p.total_images = 4000;
  return p;
}

}  // namespace

class TestSchedule : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void phaseLookup();
  void fadeInEndpoints();
  void imagePoolStartsAfterFirstFadeIn();
  void shippedPresetsLoad();
  void paperPresetHasThePapersNumbers();
  void userPresetFileLoads();
  void badPresetsAreRejected();
  void jsonRoundTrip();
};

void TestSchedule::phaseLookup() {
  auto p = threePhases();
  p.validate();
  QCOMPARE(p.at(0).resolution, 4);
  QCOMPARE(p.at(999).resolution, 4);
  QCOMPARE(p.at(999).batch, 32);
  QCOMPARE(p.at(1000).resolution, 8);
  QCOMPARE(p.at(1000).stage, 1);
  QCOMPARE(p.at(1000).batch, 16);
  QCOMPARE(p.at(1799).phase, 1);
  QCOMPARE(p.at(1800).phase, 2);
  QCOMPARE(p.at(1800).lr, 5e-4);
  QCOMPARE(p.at(1800).m_gap, 0.03);
  QCOMPARE(p.at(2000).resolution, 16);
  QCOMPARE(p.at(999999).phase, 3);
}

void TestSchedule::fadeInEndpoints() {
  auto p = threePhases();
  QCOMPARE(p.at(0).alpha, 1.0);  // the first resolution has nothing to fade from
  QCOMPARE(p.at(999).alpha, 1.0);
  QCOMPARE(p.at(1000).alpha, 0.0);
  QCOMPARE(p.at(1200).alpha, 0.5);
  QCOMPARE(p.at(1400).alpha, 1.0);
  QCOMPARE(p.at(1900).alpha, 1.0);  // a later phase at the same resolution does not fade again
  QVERIFY(p.at(1399).fading());
  QVERIFY(!p.at(1400).fading());
  QCOMPARE(p.at(2000).alpha, 0.0);
  QCOMPARE(p.at(2100).alpha, 0.25);
  QCOMPARE(p.at(2400).alpha, 1.0);
}

void TestSchedule::imagePoolStartsAfterFirstFadeIn() {
  auto p = threePhases();
  QVERIFY(!p.at(0).past_first_fade_in);
  QVERIFY(!p.at(1399).past_first_fade_in);
  QVERIFY(p.at(1400).past_first_fade_in);
  QVERIFY(p.at(2100).past_first_fade_in);
}

void TestSchedule::shippedPresetsLoad() {
  auto names = listPresets();
  for (const char* n : {"paper-ffhq256", "paper-celebahq256", "tiny", "cpu-32", "cpu-64"}) {
    QVERIFY2(std::find(names.begin(), names.end(), n) != names.end(), n);
    auto p = loadPreset(n);
    QCOMPARE(QString::fromStdString(p.name), QString(n));
    auto c = p.modelConfig(3);
    QCOMPARE(c.resolution, p.resolution);
    // New models get the reference's plain modulation layers (ModelConfig::plain_modulation).
    QVERIFY2(c.plain_modulation, n);
    QCOMPARE(p.phases.back().resolution, p.resolution);
  }
}

void TestSchedule::paperPresetHasThePapersNumbers() {
  // The authors' schedules (their code's phase table, in images): phase starts, margins, learning
  // rates, batch sizes, pool sizes, and where each run ends (the released checkpoints' iterations).
  struct Row {
    const char* preset;
    std::vector<int64_t> starts;
    std::vector<double> m_gap;
    int64_t total;
    const char* widths;
  };
  const std::vector<int64_t> ffhq{0, 2400000, 4800000, 7200000, 9600000, 20040000, 30680000, 35700000};
  const std::vector<double> gaps{0, 0, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05};
  const std::vector<Row> rows{
      {"paper-ffhq256", {ffhq.begin(), ffhq.begin() + 7}, {gaps.begin(), gaps.begin() + 7}, 34740000, "reference"},
      {"paper-ffhq512", ffhq, gaps, 42420000, "reference"},
      {"paper-celebahq256", {0, 2400000, 4800000, 7200000, 9600000, 20040000, 27500000},
       {0, 0, 0.05, 0.05, 0.05, 0.02, 0.04}, 31877148, "reference-small"},
      {"paper-lsun256", {ffhq.begin(), ffhq.begin() + 7}, {gaps.begin(), gaps.begin() + 7}, 32057140, "reference"},
  };
  const std::map<int, int> batch{{4, 128}, {8, 128}, {16, 128}, {32, 64}, {64, 32}, {128, 32}, {256, 16}, {512, 4}};
  for (const auto& row : rows) {
    const auto p = loadPreset(row.preset);
    QCOMPARE(p.phases.size(), row.starts.size());
    for (size_t i = 0; i < row.starts.size(); ++i) {
      QCOMPARE(p.phases[i].resolution, 4 << i);
      QCOMPARE(p.phases[i].images_at_start, row.starts[i]);
      QCOMPARE(p.phases[i].m_gap, row.m_gap[i]);
      QCOMPARE(p.phases[i].lr, i < 4 ? 5e-4 : 1e-3);
      QCOMPARE(p.batchFor(4 << i), batch.at(4 << i));
      QCOMPARE(p.at(row.starts[i]).pool_size, (4 << i) >= 256 ? 100 : 200);
    }
    QCOMPARE(p.total_images, row.total);
    QCOMPARE(p.fade_in_images, int64_t(1200000));
    QCOMPARE(QString::fromStdString(p.width_table), QString(row.widths));
    QCOMPARE(p.modelConfig(3), ModelConfig::fromTable(row.widths, p.resolution, 3, 512));
    // The authors' code, where it differs from the paper's text (docs/training-fidelity.md).
    QVERIFY(p.losses.gap_clamp == LossWeights::GapClamp::Reference);
    QVERIFY(p.losses.cycle == LossWeights::Cycle::Reference);
    QCOMPARE(p.losses.cos, 100.0);
    QVERIFY(p.losses.separate_encoder_passes);
    QVERIFY(p.pool_from == TrainingPreset::PoolFrom::Stable);
    QVERIFY(p.lambda_x_schedule == TrainingPreset::LambdaXSchedule::StageStart);
    QVERIFY(p.freeze_previous_to_rgb);
    QVERIFY(!p.ema_warmup);
    QCOMPARE(p.ema_decay, 0.999);
    QCOMPARE(p.encoder_lr_factor, 1.0);
    QCOMPARE(p.losses.decoder_rec, 0.0);
    // The robust loss per image element at every resolution, grown as the authors' code grows it.
    QCOMPARE(p.losses.rec_max_resolution, 0);
    QVERIFY(p.losses.robust_growth == RobustGrowth::Flat);
    // λ_X: 1.0 in the first half of every stage (4 px included), 1.5 after.
    QCOMPARE(p.lambdaX(p.at(0)), 1.0);
    QCOMPARE(p.lambdaX(p.at(1199999)), 1.0);
    QCOMPARE(p.lambdaX(p.at(1200000)), 1.5);
    QCOMPARE(p.lambdaX(p.at(row.starts[5] + 100)), 1.0);
    QCOMPARE(p.lambdaX(p.at(row.starts[5] + 1200000)), 1.5);
    QCOMPARE(p.at(row.starts[5] + 600000).alpha, 0.5);
  }
  // The CPU presets keep the hinge, the cosine cycle term and one encoder pass: what measured better
  // at their budgets (docs/training-at-cpu-budgets.md).
  for (const char* n : {"cpu-32", "cpu-64", "faces-64", "tiny"}) {
    const auto p = loadPreset(n);
    QVERIFY2(p.losses.gap_clamp == LossWeights::GapClamp::Hinge, n);
    QVERIFY2(p.losses.cycle == LossWeights::Cycle::Cosine, n);
    QVERIFY2(p.lambda_x_schedule == TrainingPreset::LambdaXSchedule::FadeIn, n);
  }
}

void TestSchedule::userPresetFileLoads() {
  QTemporaryDir dir;
  auto path = test::tmpPath(dir, "mine.json");
  std::ofstream(path) << threePhases().toJson().dump();
  auto p = loadPreset(path.string());
  QCOMPARE(p.at(2100).alpha, 0.25);
  QVERIFY_THROWS_EXCEPTION(Error, loadPreset(test::tmpPath(dir, "missing.json").string()));
  QVERIFY_THROWS_EXCEPTION(Error, loadPreset("no-such-preset"));
}

void TestSchedule::badPresetsAreRejected() {
  auto jump = threePhases();
  jump.phases[3].resolution = 32;
  jump.resolution = 32;
  jump.widths = {8, 8, 8, 8};
  jump.batch_by_resolution[32] = 8;
  QVERIFY_THROWS_EXCEPTION(Error, jump.validate());
  auto nobatch = threePhases();
  nobatch.batch_by_resolution.erase(16);
  QVERIFY_THROWS_EXCEPTION(Error, nobatch.validate());
  auto unsorted = threePhases();
  unsorted.phases[2].images_at_start = 900;
  QVERIFY_THROWS_EXCEPTION(Error, unsorted.validate());
  auto late = threePhases();
  late.phases[0].images_at_start = 5;
  QVERIFY_THROWS_EXCEPTION(Error, late.validate());
  auto frozen = threePhases();
  frozen.encoder_lr_factor = 0.0;
  QVERIFY_THROWS_EXCEPTION(Error, frozen.validate());
  auto negative = threePhases();
  negative.losses.decoder_rec = -1.0;
  QVERIFY_THROWS_EXCEPTION(Error, negative.validate());
}

void TestSchedule::jsonRoundTrip() {
  auto p = threePhases();
  p.losses.decoder_mix_fraction = 0.4;
  auto q = TrainingPreset::fromJson(p.toJson());
  QCOMPARE(q.toJson(), p.toJson());
  QCOMPARE(q.losses.decoder_mix_fraction, 0.4);
  QVERIFY(q.losses.robust);
  // Options added later: absent in a run's stored preset means the behaviour of that time.
  auto old = p.toJson();
  QVERIFY(!old["model"].contains("plain_modulation"));
  QVERIFY(!old.contains("encoder_lr_factor"));
  QVERIFY(!TrainingPreset::fromJson(old).modelConfig(3).plain_modulation);
  QCOMPARE(TrainingPreset::fromJson(old).encoder_lr_factor, 1.0);
  QVERIFY(!old["losses"].contains("decoder_rec"));
  QCOMPARE(TrainingPreset::fromJson(old).losses.decoder_rec, 0.0);
  p.losses.decoder_rec = 1.0;
  QCOMPARE(TrainingPreset::fromJson(p.toJson()).losses.decoder_rec, 1.0);
  p.plain_modulation = true;
  p.encoder_lr_factor = 0.25;
  auto r = TrainingPreset::fromJson(p.toJson());
  QVERIFY(r.modelConfig(3).plain_modulation);
  QCOMPARE(r.encoder_lr_factor, 0.25);
  // The ablation switch: plain L1 reconstruction survives the round trip; a typo is named.
  auto j = p.toJson();
  j["losses"]["reconstruction"] = "l1";
  QVERIFY(!TrainingPreset::fromJson(j).losses.robust);
  QCOMPARE(TrainingPreset::fromJson(TrainingPreset::fromJson(j).toJson()).losses.robust, false);
  j["losses"]["reconstruction"] = "L2";
  try {
    TrainingPreset::fromJson(j);
    QFAIL("an unknown reconstruction loss was accepted");
  } catch (const Error& e) {
    QVERIFY2(std::string(e.what()).find("reconstruction") != std::string::npos, e.what());
  }
}

QTEST_GUILESS_MAIN(TestSchedule)
#include "tst_schedule.moc"
