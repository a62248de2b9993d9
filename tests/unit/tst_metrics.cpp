// Metrics (docs/design.md §6): PSNR, SSIM and the sliced Wasserstein distance on hand-computable cases, and
// `automod eval` end to end on a tiny model.
#include <QtTest>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/metrics/image_quality.h"
#include "core/metrics/quality_reference.h"
#include "core/metrics/swd.h"
#include "testutil.h"

using namespace automod;

namespace {

// Smooth random images (low-frequency content, like photos): 4×4 random colours upsampled.
torch::Tensor smoothImages(int64_t n, int size, uint64_t seed) {
  torch::manual_seed(seed);
  auto small = torch::rand({n, 3, 4, 4}) * 2 - 1;
  return torch::nn::functional::interpolate(small, torch::nn::functional::InterpolateFuncOptions()
                                                       .size(std::vector<int64_t>{size, size})
                                                       .mode(torch::kBilinear)
                                                       .align_corners(false));
}

torch::Tensor noiseImages(int64_t n, int size, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::rand({n, 3, size, size}) * 2 - 1;
}

}  // namespace

class TestMetrics : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void identicalImagesScorePerfectly();
  void psnrMatchesKnownNoiseLevel();
  void ssimOfFlatImagesIsTheLuminanceTerm();
  void ssimFallsAsNoiseGrows();
  void swdLevelsRunFromFullResolutionDownTo16();
  void swdOfASetWithItselfIsNearZero();
  void swdRanksRealHalvesBelowRealVsNoise();
  void swdIsDeterministicForASeed();
  void evalCommandReportsEveryMetric();
  void evalCommandNeedsADataSource();
  void qualityReferenceComesFromTheModelOrItsEvalFile();
  void qualityHintOnlyForPhotosFarBelowTheHeldOutFigure();
};

void TestMetrics::identicalImagesScorePerfectly() {
  auto a = smoothImages(3, 16, 1);
  QVERIFY(std::isinf(psnr(a, a)));
  QCOMPARE(ssim(a, a), 1.0);
  auto u8 = ((a + 1) * 127.5).round().to(torch::kUInt8);
  QVERIFY(std::isinf(psnr(u8, u8)));
  QVERIFY(std::abs(ssim(u8, u8) - 1.0) < 1e-12);
}

void TestMetrics::psnrMatchesKnownNoiseLevel() {
  // uint8: every pixel off by exactly 10 → MSE 100 → 20·log10(255/10) dB.
  torch::manual_seed(2);
  auto a = torch::randint(20, 200, {2, 3, 12, 12}, torch::kUInt8);
  auto b = a + 10;
  QVERIFY(std::abs(psnr(a, b) - 20 * std::log10(255.0 / 10.0)) < 1e-9);
  // [−1, 1] floats: ±d noise with random signs → MSE d² → 10·log10(2² / d²).
  auto x = smoothImages(2, 16, 3) * 0.5;
  const double d = 0.05;
  auto sign = torch::randint(0, 2, x.sizes()).to(torch::kFloat32) * 2 - 1;
  QVERIFY(std::abs(psnr(x, x + sign * d) - 10 * std::log10(4.0 / (d * d))) < 1e-3);
  // Per-image values: the noisier image has the lower PSNR.
  auto y = x.clone();
  y[1] += 2 * d;
  auto per = psnrPerImage(x, y);
  QVERIFY(std::isinf(per[0].item<double>()));
  QVERIFY(std::abs(per[1].item<double>() - 10 * std::log10(4.0 / (4 * d * d))) < 1e-3);
}

void TestMetrics::ssimOfFlatImagesIsTheLuminanceTerm() {
  // σ = 0 in both images: SSIM = (2·μa·μb + C1) / (μa² + μb² + C1) with C1 = (0.01·255)².
  auto a = torch::full({1, 3, 16, 16}, 100, torch::kUInt8);
  auto b = torch::full({1, 3, 16, 16}, 150, torch::kUInt8);
  const double c1 = std::pow(0.01 * 255, 2);
  const double expected = (2 * 100.0 * 150.0 + c1) / (100.0 * 100.0 + 150.0 * 150.0 + c1);
  QVERIFY(std::abs(ssim(a, b) - expected) < 1e-9);
  // Small images use a smaller window but the same formula.
  QVERIFY(std::abs(ssim(a.narrow(2, 0, 8).narrow(3, 0, 8), b.narrow(2, 0, 8).narrow(3, 0, 8)) - expected) < 1e-9);
}

void TestMetrics::ssimFallsAsNoiseGrows() {
  auto a = smoothImages(4, 32, 4);
  torch::manual_seed(5);
  auto n = torch::randn(a.sizes());
  double last = 1.0;
  for (double level : {0.02, 0.1, 0.3}) {
    const double s = ssim(a, a + level * n);
    QVERIFY2(s < last, qPrintable(QString("SSIM %1 at noise %2 not below %3").arg(s).arg(level).arg(last)));
    last = s;
  }
  QVERIFY(last < 0.5);
}

void TestMetrics::swdLevelsRunFromFullResolutionDownTo16() {
  auto r64 = slicedWassersteinDistance(smoothImages(2, 64, 1), smoothImages(2, 64, 2));
  QCOMPARE(r64.resolutions, (std::vector<int>{64, 32, 16}));
  QCOMPARE(r64.per_level.size(), size_t{3});
  double mean = 0;
  for (double v : r64.per_level) mean += v / 3;
  QVERIFY(std::abs(mean - r64.average) < 1e-9);
  // Below 16 px: one level, the image itself.
  auto r8 = slicedWassersteinDistance(smoothImages(2, 8, 1), smoothImages(2, 8, 2));
  QCOMPARE(r8.resolutions, (std::vector<int>{8}));
  // The pyramid's band-pass levels and residual add back up to the image.
  auto x = smoothImages(1, 32, 7) + 0.1 * noiseImages(1, 32, 8);
  auto pyr = laplacianPyramid(x, 16);
  QCOMPARE(pyr.size(), size_t{2});
  QVERIFY(pyr[0].abs().mean().item<double>() < x.abs().mean().item<double>());  // band-pass: small values
}

void TestMetrics::swdOfASetWithItselfIsNearZero() {
  // Both sides sample their own random patches, so even a set against itself keeps some sampling
  // noise; with 64 images it is well below the distance to noise (deterministic for the seeds).
  auto a = smoothImages(64, 32, 10) + 0.05 * noiseImages(64, 32, 11);
  auto self = slicedWassersteinDistance(a, a).average;
  auto other = slicedWassersteinDistance(a, noiseImages(64, 32, 12)).average;
  QVERIFY2(self < 0.25 * other, qPrintable(QString("self %1 vs noise %2").arg(self).arg(other)));
  // Identical descriptor sets give exactly zero.
  auto d = torch::randn({200, 147});
  QCOMPARE(slicedWasserstein(d, d, 128, 4, 0), 0.0);
}

void TestMetrics::swdRanksRealHalvesBelowRealVsNoise() {
  auto real = smoothImages(128, 32, 20);
  auto half_a = real.narrow(0, 0, 64), half_b = real.narrow(0, 64, 64);
  const double floor = slicedWassersteinDistance(half_a, half_b, {.seed = 3}).average;
  const double noise = slicedWassersteinDistance(half_a, noiseImages(64, 32, 21), {.seed = 3}).average;
  QVERIFY2(floor < 0.5 * noise, qPrintable(QString("real halves %1, real vs noise %2").arg(floor).arg(noise)));
  QVERIFY(noise > 0);
  // A shifted distribution (brighter images) is clearly farther than the floor but closer than noise.
  const double shifted = slicedWassersteinDistance(half_a, (half_b * 0.3 + 0.6), {.seed = 3}).average;
  QVERIFY2(shifted > floor, qPrintable(QString("shifted %1, floor %2").arg(shifted).arg(floor)));
}

void TestMetrics::swdIsDeterministicForASeed() {
  auto a = smoothImages(4, 32, 30), b = noiseImages(4, 32, 31);
  QCOMPARE(slicedWassersteinDistance(a, b, {.seed = 9}).average, slicedWassersteinDistance(a, b, {.seed = 9}).average);
  QVERIFY(slicedWassersteinDistance(a, b, {.seed = 9}).average != slicedWassersteinDistance(a, b, {.seed = 10}).average);
}

void TestMetrics::evalCommandReportsEveryMetric() {
  QTemporaryDir dir;
  const auto data = test::tmpPath(dir, "images");
  std::filesystem::create_directories(data);
  for (int i = 0; i < 24; ++i)
    test::writeTestImage(data / (std::to_string(i) + ".png"), 20 + i % 5, 16 + i % 3, static_cast<uint64_t>(i));
  auto model = test::tinyModel(16, 3);
  const auto model_path = test::tmpPath(dir, "tiny.amod");
  saveModel(model_path, *model);
  const auto report_path = test::tmpPath(dir, "report.json");
  auto r = test::runAutomod({"eval", model_path.string(), "--data", data.string(), "--count", "6", "--held-out-fraction",
                             "0.25", "--cache-dir", test::tmpPath(dir, "cache").string(), "-o", report_path.string(),
                             "--threads", "1"});
  QVERIFY2(r.code == 0, r.err.c_str());
  auto j = nlohmann::json::parse(r.out);
  QCOMPARE(j["held_out_images"].get<int>(), 6);
  QCOMPARE(j["resolution"].get<int>(), 16);
  const double p = j["reconstruction"]["psnr_db"].get<double>();
  QVERIFY(p > 0 && p < 60);
  const double s = j["reconstruction"]["ssim"].get<double>();
  QVERIFY(s > -1 && s < 1);
  const double cyc = j["cycle_consistency_cos"].get<double>();
  QVERIFY(cyc >= -1 && cyc <= 1);
  QCOMPARE(j["layer_entanglement"]["per_split"].size(), size_t{2});  // 16 px: 3 blocks, j = 1, 2
  QVERIFY(j["layer_entanglement"]["mean"].get<double>() >= 0);
  for (const char* key : {"real_floor", "samples"}) {
    QVERIFY2(j["swd_x1e3"].contains(key), key);
    QVERIFY(j["swd_x1e3"][key]["average"].get<double>() > 0);
  }
  // 3 blocks: coarse (0–1) and intermediate (2); no fine scale at 16 px.
  QVERIFY(j["swd_x1e3"]["mixes"].contains("coarse"));
  QVERIFY(j["swd_x1e3"]["mixes"].contains("intermediate"));
  QVERIFY(!j["swd_x1e3"]["mixes"].contains("fine"));
  // An untrained model's samples are far from the images: above the real-vs-real floor.
  QVERIFY(j["swd_x1e3"]["samples"]["average"].get<double>() > j["swd_x1e3"]["real_floor"]["average"].get<double>());
  std::ifstream in(report_path);
  QVERIFY(in.good());
  QCOMPARE(nlohmann::json::parse(in)["held_out_images"].get<int>(), 6);
}

void TestMetrics::evalCommandNeedsADataSource() {
  QTemporaryDir dir;
  auto model = test::tinyModel(16, 3);
  const auto model_path = test::tmpPath(dir, "tiny.amod");
  saveModel(model_path, *model);
  auto r = test::runAutomod({"eval", model_path.string()});
  QVERIFY(r.code != 0);
  QVERIFY2(r.err.find("--data") != std::string::npos, r.err.c_str());
  r = test::runAutomod({"eval", model_path.string(), "--data", test::tmpPath(dir, "missing").string()});
  QVERIFY(r.code != 0);
  QVERIFY2(r.err.find("does not exist") != std::string::npos, r.err.c_str());
}

void TestMetrics::qualityReferenceComesFromTheModelOrItsEvalFile() {
  QTemporaryDir dir;
  const std::filesystem::path model = dir.filePath("m.amod").toStdString();
  auto writeSidecar = [&](const std::string& text) { std::ofstream(dir.filePath("m-eval.json").toStdString()) << text; };
  // Nothing known: no reference.
  QVERIFY(!qualityReference(nlohmann::json::object(), model).held_out_psnr_db);
  // `automod eval -o m-eval.json` beside the file stands in for a model without stored figures.
  writeSidecar(R"({"reconstruction": {"psnr_db": 17.25, "ssim": 0.5}})");
  QCOMPARE(qualityReference(nlohmann::json::object(), model).held_out_psnr_db.value_or(0), 17.25);
  QVERIFY(!qualityReference(nlohmann::json::object()).held_out_psnr_db);  // no file given: no sidecar
  // The figures stored in the model (`automod eval --store`) win over the sidecar.
  nlohmann::json meta = {{"evaluation", {{"psnr_db", 18.85}}}, {"preset", "faces-64"}};
  const auto r = qualityReference(meta, model);
  QCOMPARE(r.held_out_psnr_db.value_or(0), 18.85);
  QVERIFY(r.synthetic_faces);
  QVERIFY(!qualityReference({{"preset", "cpu-64"}}, model).synthetic_faces);
  // A sidecar that is not JSON, or has no number where the PSNR goes, is ignored, not fatal.
  for (const char* bad : {"{ not json", R"({"reconstruction": {"psnr_db": "high"}})", "[]"}) {
    writeSidecar(bad);
    QVERIFY2(!qualityReference(nlohmann::json::object(), model).held_out_psnr_db, bad);
  }
  QVERIFY(!qualityReference({{"evaluation", "bad"}, {"preset", 3}}, model).held_out_psnr_db);
}

void TestMetrics::qualityHintOnlyForPhotosFarBelowTheHeldOutFigure() {
  QualityReference cartoon{18.85, true};
  QVERIFY(qualityHint(cartoon, 18.9).empty());
  QVERIFY(qualityHint(cartoon, 18.85 - kQualityGapDb + 0.01).empty());
  const auto hint = qualityHint(cartoon, 12.3);
  QVERIFY2(hint.find("12.3 dB") != std::string::npos && hint.find("18.9 dB") != std::string::npos, hint.c_str());
  QVERIFY2(hint.find("synthetic cartoon faces") != std::string::npos && hint.find("Model \u2192 Library") != std::string::npos,
           hint.c_str());
  // A real-face model far off says how far, but does not send the user to the library.
  const auto plain = qualityHint(QualityReference{30.0, false}, 12.3);
  QVERIFY(!plain.empty() && plain.find("cartoon") == std::string::npos);
  // No reference or no finite PSNR: nothing to compare.
  QVERIFY(qualityHint(QualityReference{}, 5.0).empty());
  QVERIFY(qualityHint(cartoon, std::nan("")).empty());
}

QTEST_GUILESS_MAIN(TestMetrics)
#include "tst_metrics.moc"
