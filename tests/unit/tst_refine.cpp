// Refinement of a photo's codes (core/edit/refine.h, docs/refinement.md): it brings the reconstruction
// closer, keeps every code on the unit sphere, repeats bit for bit, can be cancelled, gives a photo the
// same codes in a batch as alone, and its per-block codes travel through latent files, inline code
// sources and the source cache.
#include <QtTest>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/edit/plan.h"
#include "core/edit/refine.h"
#include "core/edit/sources.h"
#include "core/io/image.h"
#include "core/metrics/image_quality.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

class TestRefine : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void improvesReconstruction();
  void codesStayOnTheSphere();
  void sameSeedSameCodes();
  void progressCancels();
  void batchEqualsOneByOne();
  void offGivesTheEncoderCode();
  void lossResolutionKeepsFinerBlocks();
  void optionsJsonRoundTripAndErrors();
  void msSsimIsOneForIdenticalImagesAndFallsWithNoise();
  void sourceCacheRefinesOncePerOptions();
  void latentFileKeepsPerBlockCodes();
  void blockMixPlanBlendsPerBlock();
  void styleOffsetsReachWhatCodesCannot();
  void styleOffsetsTravelWithTheCodes();

 private:
  QTemporaryDir dir_;
  std::unique_ptr<Automodulator> model_;
  // Images the model can make exactly (a different code per block) and their encoder codes.
  torch::Tensor images_, z_;
  RefineOptions options(int steps) const {
    RefineOptions o;
    o.steps = steps;
    return o;
  }
};

void TestRefine::initTestCase() {
  torch::set_num_threads(1);
  model_ = test::tinyModel(16, 3);
  test::makeExpressive(*model_, 4.0);
  const int nb = model_->numBlocks();
  std::vector<torch::Tensor> codes;
  for (int b = 0; b < nb; ++b) codes.push_back(model_->randomLatents(3, 100 + b));
  images_ = model_->decode(LatentPlan(codes)).clamp(-1, 1);
  z_ = model_->encode(images_);
}

void TestRefine::improvesReconstruction() {
  auto r = refineCodes(*model_, images_, z_, options(40));
  QCOMPARE(r.steps_run, 40);
  QVERIFY(!r.cancelled);
  QCOMPARE(int(r.psnr_before.size()), 3);
  for (int i = 0; i < 3; ++i) {
    qInfo("photo %d: %.2f -> %.2f dB", i, r.psnr_before[i], r.psnr_after[i]);
    QVERIFY(r.psnr_after[i] > r.psnr_before[i] + 1.0);
  }
  // The reported figures are those of the returned codes.
  auto recon = model_->decode(r.codes).clamp(-1, 1);
  QVERIFY(std::abs(psnr(recon, images_) -
                   (r.psnr_after[0] + r.psnr_after[1] + r.psnr_after[2]) / 3.0) < 1e-3);
}

void TestRefine::codesStayOnTheSphere() {
  auto r = refineCodes(*model_, images_, z_, options(10));
  QCOMPARE(r.codes.size(), model_->numBlocks());
  for (auto& c : r.codes.latents) {
    QCOMPARE(c.sizes(), z_.sizes());
    QVERIFY((c.norm(2, 1) - 1).abs().max().item<double>() < 1e-5);
  }
}

void TestRefine::sameSeedSameCodes() {
  auto o = options(8);
  o.init_jitter = 0.1;
  o.seed = 5;
  auto a = refineCodes(*model_, images_, z_, o), b = refineCodes(*model_, images_, z_, o);
  for (int k = 0; k < a.codes.size(); ++k) QVERIFY(torch::equal(a.codes[k], b.codes[k]));
  o.seed = 6;
  auto c = refineCodes(*model_, images_, z_, o);
  QVERIFY(!torch::equal(a.codes[0], c.codes[0]));
}

void TestRefine::progressCancels() {
  int calls = 0;
  auto r = refineCodes(*model_, images_, z_, options(50), [&](int step, int steps) {
    ++calls;
    if (steps != 50 || step != calls) return true;  // checked below
    return step < 3;
  });
  QCOMPARE(calls, 3);
  QVERIFY(r.cancelled);
  QCOMPARE(r.steps_run, 3);
  for (auto& c : r.codes.latents) QVERIFY((c.norm(2, 1) - 1).abs().max().item<double>() < 1e-5);
  // The codes reached so far are kept: at least as close as the encoder's.
  for (int i = 0; i < 3; ++i) QVERIFY(r.psnr_after[i] >= r.psnr_before[i] - 1e-6);
}

void TestRefine::batchEqualsOneByOne() {
  auto o = options(10);
  o.early_stop = 0.01;  // per photo: a photo's stop must not depend on the others
  o.early_stop_window = 3;
  auto batch = refineCodes(*model_, images_, z_, o);
  for (int i = 0; i < 3; ++i) {
    auto one = refineCodes(*model_, images_.narrow(0, i, 1), z_.narrow(0, i, 1), o);
    for (int k = 0; k < batch.codes.size(); ++k) {
      const double d = test::maxAbsDiff(batch.codes[k].narrow(0, i, 1), one.codes[k]);
      QVERIFY2(d < 1e-4, qPrintable(QString("photo %1 block %2 differs by %3").arg(i).arg(k).arg(d)));
    }
    QVERIFY(std::abs(batch.psnr_after[i] - one.psnr_after[0]) < 1e-2);
  }
}

void TestRefine::offGivesTheEncoderCode() {
  auto r = refineCodes(*model_, images_, z_, options(0));
  QCOMPARE(r.steps_run, 0);
  for (auto& c : r.codes.latents) QVERIFY(test::maxAbsDiff(c, z_) < 1e-6);
  QVERIFY(r.psnr_before == r.psnr_after);
}

void TestRefine::lossResolutionKeepsFinerBlocks() {
  auto o = options(10);
  o.loss_resolution = 8;  // blocks 0 (4 px) and 1 (8 px) of the 16 px model
  auto r = refineCodes(*model_, images_, z_, o);
  QVERIFY(test::maxAbsDiff(r.codes[0], z_) > 1e-3);
  QVERIFY(test::maxAbsDiff(r.codes[2], z_) < 1e-6);
  o.loss_resolution = 32;
  QVERIFY_THROWS_EXCEPTION(Error, refineCodes(*model_, images_, z_, o));
  o.loss_resolution = 12;
  QVERIFY_THROWS_EXCEPTION(Error, refineCodes(*model_, images_, z_, o));
}

void TestRefine::optionsJsonRoundTripAndErrors() {
  RefineOptions o;
  o.steps = 77;
  o.anchor = 0.25;
  o.loss_resolution = 64;
  o.seed = 9;
  QVERIFY(RefineOptions::fromJson(o.toJson(), "test") == o);
  // Missing fields keep the defaults.
  auto partial = RefineOptions::fromJson(nlohmann::json{{"steps", 5}}, "test");
  RefineOptions expected;
  expected.steps = 5;
  QVERIFY(partial == expected);
  auto message = [](const nlohmann::json& j) {
    try {
      RefineOptions::fromJson(j, "recipe r.json: refine");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  QVERIFY(message({{"stepz", 5}}).find("stepz: unknown key") != std::string::npos);
  QVERIFY(message({{"steps", -1}}).find("steps") != std::string::npos);
  QVERIFY(message({{"lr", 0}}).find("lr") != std::string::npos);
  QVERIFY(message({{"anchor", "much"}}).find("anchor") != std::string::npos);
  QVERIFY(message({{"loss_resolution", 48}}).find("loss_resolution") != std::string::npos);
  QVERIFY(message({{"steps", 5}}).empty());
}

void TestRefine::msSsimIsOneForIdenticalImagesAndFallsWithNoise() {
  torch::manual_seed(0);
  auto a = torch::rand({2, 3, 64, 64}) * 2 - 1;
  auto same = msSsimPerImage(a, a);
  QVERIFY((same - 1).abs().max().item<double>() < 1e-5);
  auto noise = torch::randn_like(a);
  double last = 1.0;
  for (double level : {0.05, 0.2, 0.8}) {
    const double s = msSsimPerImage(a, a + level * noise).mean().item<double>();
    QVERIFY(s < last);
    last = s;
  }
  // Differentiable: a finite gradient reaches the images.
  auto b = (a + 0.1 * noise).requires_grad_(true);
  auto g = torch::autograd::grad({msSsimPerImage(b, a).sum()}, {b})[0];
  QVERIFY(torch::isfinite(g).all().item<bool>() && g.abs().sum().item<double>() > 0);
  // One level (plain SSIM) at 16 px agrees with the float64 metric.
  auto c = a.narrow(2, 0, 16).narrow(3, 0, 16), d = c + 0.1 * noise.narrow(2, 0, 16).narrow(3, 0, 16);
  QVERIFY(test::maxAbsDiff(msSsimPerImage(c, d).to(torch::kFloat64), ssimPerImage(c, d)) < 1e-4);
}

void TestRefine::sourceCacheRefinesOncePerOptions() {
  auto photo = test::tmpPath(dir_, "p.png");
  writeImage(photo, toImage(images_[0]));
  SourceCache cache(*model_, PhotoOptions{.align = false}, options(6));
  const auto spec = SourceSpec::photo(photo);
  auto a = cache.codes(spec);
  auto b = cache.codes(spec);
  QCOMPARE(cache.refineCount(), 1);
  QCOMPARE(cache.encodeCount(), 1);
  for (int k = 0; k < a.size(); ++k) QVERIFY(torch::equal(a[k], b[k]));
  QVERIFY(cache.lastRefine() && cache.lastRefine()->psnr_after >= cache.lastRefine()->psnr_before);
  // latent() stays the encoder's code; other options refine again; off gives the code everywhere.
  auto z = cache.latent(spec);
  QVERIFY(!torch::equal(a[0], z));
  auto c = cache.codes(spec, options(3));
  QCOMPARE(cache.refineCount(), 2);
  QVERIFY(!torch::equal(a[0], c[0]));
  auto off = cache.codes(spec, RefineOptions{});
  for (auto& code : off.latents) QVERIFY(torch::equal(code, z));
  // The same codes as refineCodes on the cached image.
  auto direct = refineCodes(*model_, toModelInput(cache.photoImage(spec)), z, options(6));
  for (int k = 0; k < a.size(); ++k) QVERIFY(torch::equal(a[k], direct.codes[k]));
  // A cancelled refinement is returned but not cached.
  cache.setRefineProgress([](int step, int) { return step < 2; });
  auto cancelled = cache.codes(spec, options(9));
  QVERIFY(cache.lastRefine()->cancelled);
  cache.setRefineProgress({});
  cache.codes(spec, options(9));
  QCOMPARE(cache.refineCount(), 4);
  QVERIFY(!cache.lastRefine()->cancelled);
}

void TestRefine::latentFileKeepsPerBlockCodes() {
  const int nb = model_->numBlocks();
  auto r = refineCodes(*model_, images_.narrow(0, 0, 1), z_.narrow(0, 0, 1), options(5));
  std::vector<torch::Tensor> rows;
  for (auto& c : r.codes.latents) rows.push_back(c[0]);
  auto file = test::tmpPath(dir_, "codes.json");
  writeLatentFile(file, {{"refined", z_[0], torch::stack(rows)}, {"plain", z_[1], {}}}, 16);
  auto records = readLatentFile(file);
  QCOMPARE(int(records.size()), 2);
  QVERIFY(records[0].z_blocks.defined() && !records[1].z_blocks.defined());
  SourceCache cache(*model_);
  auto codes = cache.codes(SourceSpec::latentFile(file, 0));
  QCOMPARE(codes.size(), nb);
  for (int k = 0; k < nb; ++k) QVERIFY(test::maxAbsDiff(codes[k], r.codes[k]) < 1e-7);
  // The record's z stays the encoder's code; a record without blocks has it on every block.
  QVERIFY(test::maxAbsDiff(cache.latent(SourceSpec::latentFile(file, 0)), z_.narrow(0, 0, 1)) < 1e-6);
  auto plain = cache.codes(SourceSpec::latentFile(file, 1));
  for (auto& c : plain.latents) QVERIFY(test::maxAbsDiff(c, z_.narrow(0, 1, 1)) < 1e-6);
  // Inline code sources carry them too (recipes, projects).
  auto inline_codes = cache.codes(SourceSpec::inlineCodes(z_[0], r.codes));
  for (int k = 0; k < nb; ++k) QVERIFY(torch::equal(inline_codes[k], r.codes[k]));
  // Codes refined with a model of another number of blocks are refused.
  auto short_file = test::tmpPath(dir_, "short.json");
  writeLatentFile(short_file, {{"short", z_[0], torch::stack(rows).narrow(0, 0, nb - 1)}}, 8);
  QVERIFY_THROWS_EXCEPTION(Error, cache.codes(SourceSpec::latentFile(short_file)));
}

void TestRefine::blockMixPlanBlendsPerBlock() {
  const int nb = model_->numBlocks();
  auto a = refineCodes(*model_, images_.narrow(0, 0, 1), z_.narrow(0, 0, 1), options(5)).codes;
  auto b = LatentPlan::uniform(z_.narrow(0, 1, 1), nb);
  std::vector<std::vector<double>> weights(nb);
  weights[0] = {0.0, 1.0};  // block 0 from b
  weights[1] = {1.0, 1.0};  // block 1 half and half
  auto plan = blockMixPlan(std::vector<LatentPlan>{a, b}, weights, nb);
  QVERIFY(torch::equal(plan[0], b[0]));
  QVERIFY(test::maxAbsDiff(plan[1], blendLatents({a[1], b[1]}, {1.0, 1.0})) < 1e-7);
  for (int k = 2; k < nb; ++k) QVERIFY(torch::equal(plan[k], a[k]));  // no weights: the base's own codes
  // The [1, D]-latent overload is the per-block one with uniform plans.
  auto latents = blockMixPlan(std::vector<torch::Tensor>{z_.narrow(0, 0, 1), z_.narrow(0, 1, 1)}, weights, nb);
  auto uniform = blockMixPlan(std::vector<LatentPlan>{LatentPlan::uniform(z_.narrow(0, 0, 1), nb), b}, weights, nb);
  for (int k = 0; k < nb; ++k) QVERIFY(torch::equal(latents[k], uniform[k]));
  // Sources refined for another model are refused.
  auto short_plan = LatentPlan::uniform(z_.narrow(0, 0, 1), nb - 1);
  QVERIFY_THROWS_EXCEPTION(Error, blockMixPlan(std::vector<LatentPlan>{a, short_plan}, weights, nb));
}

void TestRefine::styleOffsetsReachWhatCodesCannot() {
  // A tint no code of this model makes: style offsets (the last layer's shifts feed toRGB) reach it,
  // per-block codes alone do not.
  auto target = images_.clone();
  target.select(1, 0).add_(0.4);
  target = target.clamp(-1, 1);
  auto codes_only = options(40);
  codes_only.offsets = false;
  auto with_offsets = options(40);
  with_offsets.offsets = true;
  auto a = refineCodes(*model_, target, z_, codes_only);
  auto b = refineCodes(*model_, target, z_, with_offsets);
  QVERIFY(!a.codes.hasOffsets());
  QVERIFY(b.codes.hasOffsets());
  const auto widths = model_->ema->styleWidths();
  for (int k = 0; k < b.codes.size(); ++k) QCOMPARE(b.codes.offset(k).sizes(), (std::vector<int64_t>{3, widths[k]}));
  for (int i = 0; i < 3; ++i)
    QVERIFY2(b.psnr_after[i] > a.psnr_after[i] + 0.5,
             qPrintable(QString("photo %1: %2 dB with offsets, %3 without").arg(i).arg(b.psnr_after[i]).arg(a.psnr_after[i])));
  // The model decodes a plan with offsets as refinement scored it.
  auto recon = model_->decode(b.codes).clamp(-1, 1);
  const auto per = psnrPerImage(recon, target);
  for (int i = 0; i < 3; ++i) QVERIFY(std::abs(per[i].item<double>() - b.psnr_after[i]) < 1e-3);
  // The decay is the dial: a high one keeps offsets small.
  auto decayed = with_offsets;
  decayed.offset_decay = 100.0;
  auto c = refineCodes(*model_, target, z_, decayed);
  auto size = [](const LatentPlan& p) {
    double s = 0;
    for (int k = 0; k < p.size(); ++k) s += p.offset(k).pow(2).sum().item<double>();
    return s;
  };
  QVERIFY(size(c.codes) < 0.5 * size(b.codes));
  // Zero offsets decode exactly as no offsets.
  auto zero = a.codes;
  for (int k = 0; k < zero.size(); ++k) zero.setOffset(k, torch::zeros({3, widths[k]}));
  QVERIFY(torch::equal(model_->decode(zero), model_->decode(a.codes)));
}

void TestRefine::styleOffsetsTravelWithTheCodes() {
  const int nb = model_->numBlocks();
  auto o = options(5);
  o.offsets = true;
  auto r = refineCodes(*model_, images_.narrow(0, 0, 1), z_.narrow(0, 0, 1), o);
  QVERIFY(r.codes.hasOffsets());
  std::vector<torch::Tensor> rows;
  for (auto& c : r.codes.latents) rows.push_back(c[0]);
  // Latent files (`automod encode --refine`).
  auto file = test::tmpPath(dir_, "offsets.json");
  LatentRecord record{"refined", z_[0], torch::stack(rows)};
  record.z_offsets = offsetValues(r.codes);
  writeLatentFile(file, {record}, 16);
  SourceCache cache(*model_);
  auto from_file = cache.codes(SourceSpec::latentFile(file, 0));
  for (int k = 0; k < nb; ++k) QVERIFY(torch::equal(from_file.offset(k), r.codes.offset(k)));
  QVERIFY(torch::equal(model_->decode(from_file), model_->decode(r.codes)));
  // Inline code sources (recipes, projects).
  auto inline_codes = cache.codes(SourceSpec::inlineCodes(z_[0], r.codes));
  for (int k = 0; k < nb; ++k) QVERIFY(torch::equal(inline_codes.offset(k), r.codes.offset(k)));
  // Mixing blends them with the codes' weights; a source without offsets counts as zeros.
  auto b = LatentPlan::uniform(z_.narrow(0, 1, 1), nb);
  std::vector<std::vector<double>> weights(nb);
  weights[0] = {0.0, 1.0};
  weights[1] = {1.0, 3.0};
  auto plan = blockMixPlan(std::vector<LatentPlan>{r.codes, b}, weights, nb);
  QVERIFY(!plan.offset(0).defined());
  QVERIFY(torch::allclose(plan.offset(1), r.codes.offset(1) * 0.25));
  for (int k = 2; k < nb; ++k) QVERIFY(torch::equal(plan.offset(k), r.codes.offset(k)));
  // An edit that changes only offsets is seen by incremental decoding.
  auto moved = r.codes;
  moved.setOffset(2, r.codes.offset(2) + 1.0);
  QCOMPARE(r.codes.firstDifferentBlock(moved), 2);
  // Offsets of another model's widths are refused with a sentence.
  auto bad = record;
  bad.z_offsets[1] = {1.0f, 2.0f};
  writeLatentFile(file, {bad}, 16);
  QVERIFY_THROWS_EXCEPTION(Error, cache.codes(SourceSpec::latentFile(file, 0)));
}

QTEST_GUILESS_MAIN(TestRefine)
#include "tst_refine.moc"
