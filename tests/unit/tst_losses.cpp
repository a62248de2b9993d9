// The two training steps' losses (docs/design.md §3): batch KL, the M_gap margin clamp, λ_X, the layer loss
// L_j, real-image fade-in blending, the image pool, that an encoder step learns, and the swapped
// reconstruction of flip-invariance training (paper Eqs. 10-11) on a hand-made case.
#include <QtTest>

#include <cmath>
#include <set>

#include "core/model/automodulator.h"
#include "core/model/networks.h"
#include "testutil.h"
#include "training/losses.h"

using namespace automod;

class TestLosses : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void klMatchesHandComputedValue();
  void klIsZeroForStandardBatchStatistics();
  void marginClampsTheGapTerm();
  void reconstructionWeightFollowsFadeIn();
  void layerLossIsZeroWhenCodesAgree();
  void decodeKeepingCanvasMatchesPlainDecode();
  void realImagesBlendDuringFadeIn();
  void imagePoolSwapsOnlyWhenFull();
  void encoderStepLowersItsLossOnAFixedBatch();
  void decoderStepProducesAllTerms();
  void flipInvariantReconstructionMatchesTheFormula();
  void decoderStepMixesOverTheExtraBlock();
  void emaWarmUpFollowsAShortRun();
  void plainModulationLetsTheDecoderFollowItsLatent();
  void decoderReconstructionTermLearnsOnlyWhenAsked();
};

void TestLosses::klMatchesHandComputedValue() {
  auto z = torch::tensor({{1.0, 2.0}, {3.0, 4.0}, {5.0, 0.0}}, torch::kFloat64);
  // dim 0: μ = 3, σ² = 8/3; dim 1: μ = 2, σ² = 8/3.
  auto term = [](double mu, double var) { return (var + mu * mu) / 2 - 0.5 * std::log(var) - 0.5; };
  const double expected = 0.5 * (term(3, 8.0 / 3) + term(2, 8.0 / 3));
  QVERIFY(std::abs(batchKL(z).item<double>() - expected) < 1e-12);
}

void TestLosses::klIsZeroForStandardBatchStatistics() {
  auto z = torch::tensor({{1.0, -1.0}, {-1.0, 1.0}}, torch::kFloat64);
  QVERIFY(std::abs(batchKL(z).item<double>()) < 1e-12);
  QVERIFY(batchKL(z * 3.0).item<double>() > 0.1);
}

void TestLosses::marginClampsTheGapTerm() {
  LossWeights w;
  auto t = [](double v) { return torch::tensor(v, torch::kFloat64); };
  torch::Tensor gap;
  StepContext ctx{1, 1.0, 0.05};
  // 0.1·(1 − 3) = −0.2 is clamped to −M_gap.
  encoderTotal(t(1.0), t(3.0), t(0.0), ctx, w, &gap);
  QVERIFY(std::abs(gap.item<double>() + 0.05) < 1e-12);
  ctx.m_gap = 0.5;
  encoderTotal(t(1.0), t(3.0), t(0.0), ctx, w, &gap);
  QVERIFY(std::abs(gap.item<double>() + 0.2) < 1e-12);
  ctx.m_gap = 0.0;
  auto total = encoderTotal(t(3.0), t(1.0), t(0.0), ctx, w, &gap);
  QVERIFY(std::abs(gap.item<double>() - 0.2) < 1e-12);
  QVERIFY(std::abs(total.item<double>() - (0.1 * 3.0 + 0.2)) < 1e-12);
  encoderTotal(t(1.0), t(3.0), t(0.0), ctx, w, &gap);
  QVERIFY(std::abs(gap.item<double>()) < 1e-12);
}

void TestLosses::reconstructionWeightFollowsFadeIn() {
  LossWeights w;
  auto t = [](double v) { return torch::tensor(v, torch::kFloat64); };
  const double fading = encoderTotal(t(0.0), t(0.0), t(1.0), StepContext{1, 0.5, 0.0}, w).item<double>();
  const double stable = encoderTotal(t(0.0), t(0.0), t(1.0), StepContext{1, 1.0, 0.0}, w).item<double>();
  QVERIFY(std::abs(fading - 0.2 * 1.0) < 1e-12);
  QVERIFY(std::abs(stable - 0.2 * 1.5) < 1e-12);
}

void TestLosses::layerLossIsZeroWhenCodesAgree() {
  auto model = test::tinyModel(16, 2);
  auto& dec = model->decoder;
  dec->setNoise(false);
  torch::NoGradGuard ng;
  auto za = model->randomLatents(4, 1), zb = model->randomLatents(4, 2);
  for (int j = 1; j <= 2; ++j) {
    auto canvas = decodeKeepingCanvas(dec, LatentPlan::mixed(za, zb, j, 3), 2, 1.0, j).canvas;
    QCOMPARE(layerLoss(dec, canvas, za, j).item<double>(), 0.0);
    QVERIFY(layerLoss(dec, canvas, zb, j).item<double>() > 1e-6);
  }
}

void TestLosses::decodeKeepingCanvasMatchesPlainDecode() {
  auto model = test::tinyModel(16, 4);
  auto& dec = model->decoder;
  torch::NoGradGuard ng;
  auto z = model->randomLatents(3, 5);
  auto plan = LatentPlan::uniform(z, 3);
  for (double alpha : {0.0, 0.3, 1.0}) {
    auto a = decodeKeepingCanvas(dec, plan, 2, alpha, 1).image;
    auto b = dec->forward(plan, 2, alpha);
    QVERIFY(test::maxAbsDiff(a, b) < 1e-6);
  }
}

void TestLosses::realImagesBlendDuringFadeIn() {
  auto x = torch::rand({2, 3, 8, 8}) * 2 - 1;
  QVERIFY(test::maxAbsDiff(blendRealForFadeIn(x, 1.0), x) == 0.0);
  auto coarse = upsample2(downsample2(x));
  QVERIFY(test::maxAbsDiff(blendRealForFadeIn(x, 0.0), coarse) < 1e-6);
  QVERIFY(test::maxAbsDiff(blendRealForFadeIn(x, 0.25), 0.25 * x + 0.75 * coarse) < 1e-6);
}

void TestLosses::imagePoolSwapsOnlyWhenFull() {
  torch::manual_seed(7);
  ImagePool pool(4);
  auto first = torch::arange(4, torch::kFloat32).view({4, 1, 1, 1}).expand({4, 1, 2, 2}).contiguous();
  QVERIFY(test::maxAbsDiff(pool.query(first), first) == 0.0);
  QCOMPARE(pool.count(), 4);
  int swapped = 0;
  for (int round = 0; round < 10; ++round) {
    auto fresh = torch::full({4, 1, 2, 2}, 100.0f + round);
    auto out = pool.query(fresh);
    for (int i = 0; i < 4; ++i) swapped += out[i][0][0][0].item<float>() != 100.0f + round;
  }
  // With p = 0.5 per image, 40 draws give far more than 5 and far fewer than 35 swaps.
  QVERIFY2(swapped > 5 && swapped < 35, qPrintable(QString::number(swapped)));
  auto state = pool.state();
  ImagePool copy(4);
  copy.restore(state);
  QCOMPARE(copy.count(), 4);
  QVERIFY(test::maxAbsDiff(copy.state(), state) == 0.0);
}

void TestLosses::encoderStepLowersItsLossOnAFixedBatch() {
  auto model = test::tinyModel(8, 3);
  auto& enc = model->encoder;
  auto& dec = model->decoder;
  enc->train();
  dec->setNoise(false);
  for (auto& p : dec->parameters()) p.requires_grad_(false);
  RobustLoss robust(RobustLossOptions(3, 8));
  auto params = enc->parameters();
  for (auto& p : robust->parameters()) params.push_back(p);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3).betas({0.0, 0.99}));
  torch::manual_seed(11);
  auto x = torch::rand({8, 3, 8, 8}) * 2 - 1;
  LossWeights w;
  StepContext ctx{1, 1.0, 0.0};
  auto lossAt = [&] {
    torch::manual_seed(99);  // the same generated images every time
    return encoderStep(enc, dec, robust, x, ctx, w, nullptr);
  };
  const double before = lossAt().total.item<double>();
  for (int i = 0; i < 30; ++i) {
    opt.zero_grad();
    auto l = lossAt();
    l.total.backward();
    opt.step();
  }
  const double after = lossAt().total.item<double>();
  QVERIFY2(after < before - 0.01, qPrintable(QString("%1 -> %2").arg(before).arg(after)));
  for (auto& p : dec->parameters()) QVERIFY(!p.grad().defined());
}

void TestLosses::decoderStepProducesAllTerms() {
  auto model = test::tinyModel(16, 6);
  model->encoder->train();
  for (auto& p : model->encoder->parameters()) p.requires_grad_(false);
  torch::manual_seed(1);
  LossWeights w;
  auto l = decoderStep(model->encoder, model->decoder, 8, StepContext{2, 1.0, 0.0}, w);
  QVERIFY(l.split >= 1 && l.split <= 2);
  QVERIFY(l.layer.item<double>() > 0.0);
  QVERIFY(l.cos.item<double>() > 0.0 && l.cos.item<double>() <= 2.0);
  const double expected = 0.1 * l.kl_fake.item<double>() + 0.2 * l.cos.item<double>() + l.layer.item<double>();
  QVERIFY(std::abs(l.total.item<double>() - expected) < 1e-5);
  l.total.backward();
  QVERIFY(model->decoder->blocks[0]->as<DecoderBlock>()->conv1->weight.grad().defined());
  // At stage 0 nothing can be mixed.
  auto l0 = decoderStep(model->encoder, model->decoder, 8, StepContext{0, 1.0, 0.0}, w);
  QCOMPARE(l0.split, 0);
  QCOMPARE(l0.layer.item<double>(), 0.0);
}

namespace {
std::unique_ptr<Automodulator> extraBlockModel(int resolution, uint64_t seed) {
  auto c = test::tinyModel(resolution, seed)->config();
  c.extra_8x8_block = true;
  torch::manual_seed(seed);
  auto m = std::make_unique<Automodulator>(c);
  test::makeExpressive(*m);
  return m;
}
}  // namespace

void TestLosses::flipInvariantReconstructionMatchesTheFormula() {
  auto model = extraBlockModel(16, 7);
  auto& enc = model->encoder;
  auto& dec = model->decoder;
  enc->eval();  // no power iteration: the same codes in the step and below
  dec->setNoise(false);
  for (auto& p : dec->parameters()) p.requires_grad_(false);
  const int nb = dec->blocksAtStage(2);
  QCOMPARE(nb, 4);
  // Two pairs: rows (0, 1) and (2, 3) are an image and its mirror image.
  torch::manual_seed(3);
  auto x1 = torch::rand({2, 3, 16, 16}) * 2 - 1;
  auto x = torch::stack({x1, x1.flip({3})}, 1).flatten(0, 1);
  RobustLoss robust(RobustLossOptions(3, 16));
  {
    torch::NoGradGuard ng;  // a non-trivial shape and scale per element
    robust->alphaLatent(16).copy_(torch::randn({3, 16, 16}));
    robust->scaleLatent(16).copy_(torch::randn({3, 16, 16}) * 0.5);
  }
  LossWeights w;
  StepContext ctx{2, 1.0, 0.0, /*flip_invariance=*/true};
  auto l = encoderStep(enc, dec, robust, x, ctx, w, nullptr);

  // By hand: z₁ = φ(x₁), z₂ = φ(x₂); θ_{2:N}(θ_{0:2}(ξ⁽⁰⁾, z₂), z₁) should give x₂ and vice versa.
  torch::NoGradGuard ng;
  auto z = enc->forward(x, 2, 1.0);
  auto rows = [](const torch::Tensor& t, int first) {
    return t.index({torch::indexing::Slice(first, torch::indexing::None, 2)});
  };
  auto z1 = rows(z, 0), z2 = rows(z, 1);
  auto theta = [&](const torch::Tensor& coarse, const torch::Tensor& fine) {
    auto h = dec->runBlocks({}, LatentPlan::uniform(coarse, nb), 0, 2);
    return dec->toRGB(nb - 1, dec->runBlocks(h, LatentPlan::uniform(fine, nb), 2, nb));
  };
  auto l_inv = robust->forward(rows(x, 1) - theta(z2, z1));    // Eq. 10
  auto l_inv2 = robust->forward(rows(x, 0) - theta(z1, z2));   // Eq. 11
  const double expected = 0.5 * (l_inv.item<double>() + l_inv2.item<double>());
  QVERIFY2(std::abs(l.rec.item<double>() - expected) < 1e-5 * std::max(1.0, std::abs(expected)),
           qPrintable(QString("rec %1, formula %2").arg(l.rec.item<double>()).arg(expected)));
  // It differs from the plain reconstruction (the codes really are swapped) ...
  auto plain = robust->forward(dec->forward(z, 2, 1.0) - x).item<double>();
  QVERIFY(std::abs(plain - expected) > 1e-3);
  // ... and equals it for identical codes in a pair (z₁ = z₂), as the paper notes.
  auto same = torch::stack({z1, z1}, 1).flatten(0, 1);
  QVERIFY(torch::equal(dec->forward(flipInvariantPlan(same, nb), 2, 1.0), dec->forward(same, 2, 1.0)));
  // At 4 px there is nothing to swap.
  auto p0 = flipInvariantPlan(z, 1);
  QCOMPARE(p0.size(), 1);
  QVERIFY(torch::equal(p0[0], z));
}

void TestLosses::decoderStepMixesOverTheExtraBlock() {
  auto model = extraBlockModel(16, 8);
  model->encoder->train();
  for (auto& p : model->encoder->parameters()) p.requires_grad_(false);
  LossWeights w;
  std::set<int> splits;
  for (int seed = 0; seed < 40; ++seed) {
    torch::manual_seed(seed);
    auto l = decoderStep(model->encoder, model->decoder, 4, StepContext{2, 1.0, 0.0, true}, w);
    QVERIFY(std::isfinite(l.total.item<double>()));
    splits.insert(l.split);
  }
  // j ~ U{1..3} over the 4 decoder blocks, the extra one included.
  QCOMPARE(splits, (std::set<int>{1, 2, 3}));
  // At the very start of the 8 px fade-in (α = 0) a split after block 1 still has its canvas.
  auto z = model->randomLatents(2, 3);
  for (double alpha : {0.0, 0.5, 1.0}) {
    auto d = decodeKeepingCanvas(model->decoder, LatentPlan::uniform(z, 3), 1, alpha, 2);
    QVERIFY(d.canvas.defined());
    QCOMPARE(d.canvas.sizes(), (std::vector<int64_t>{2, 16, 8, 8}));
    QCOMPARE(d.image.sizes(), (std::vector<int64_t>{2, 3, 8, 8}));
  }
}

void TestLosses::emaWarmUpFollowsAShortRun() {
  QCOMPARE(emaDecayAt(0.999, 0), 0.1);
  QCOMPARE(emaDecayAt(0.999, 90), 0.91);
  QCOMPARE(emaDecayAt(0.999, 8991), 0.999);
  QCOMPARE(emaDecayAt(0.999, 1000000), 0.999);
  QCOMPARE(emaDecayAt(0.9, 500), 0.9);
  // A decoder that moved away from its random start (here: every weight +1) at the start of a run
  // of 700 steps: the EMA with warm-up sits on the new weights, the plain 0.999 is still halfway.
  auto run = [](bool warm_up) {
    auto model = test::tinyModel(8, 3);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->decoder->parameters()) p.add_(1.0);
    }
    for (int64_t step = 0; step < 700; ++step)
      updateEma(model->ema, model->decoder, warm_up ? emaDecayAt(0.999, step) : 0.999);
    double worst = 0;
    auto src = model->decoder->parameters(), dst = model->ema->parameters();
    for (size_t i = 0; i < src.size(); ++i) worst = std::max(worst, (src[i] - dst[i]).abs().max().item<double>());
    return worst;  // the initial offset was 1
  };
  const double with = run(true), without = run(false);
  qInfo("EMA after 700 steps, distance to the decoder: %.4f with warm-up, %.4f without", with, without);
  QVERIFY(with < 0.02);
  QVERIFY(without > 0.45);
}

void TestLosses::plainModulationLetsTheDecoderFollowItsLatent() {
  // The decoder step's cycle term against a fixed encoder, decoder-only: with the reference's plain
  // AdaIN linears and toRGB (ModelConfig::plain_modulation) the decoder learns to make φ(θ(z)) point
  // at z much faster than with equalised ones, whose weights Adam moves 1/√(fan_in/2) as fast.
  auto residual = [](bool plain) {
    torch::manual_seed(11);
    ModelConfig c;
    c.resolution = 8;
    c.latent_dim = 16;
    c.widths = {16, 16};
    c.plain_modulation = plain;
    Automodulator model(c);
    model.encoder->train();
    for (auto& p : model.encoder->parameters()) p.requires_grad_(false);
    torch::optim::Adam opt(model.decoder->parameters(), torch::optim::AdamOptions(1e-3).betas({0.0, 0.99}));
    LossWeights w;
    w.kl = 0.0;
    w.layer = 0.0;
    w.cos = 1.0;
    w.decoder_mix_fraction = 0.0;
    double last = 0;
    for (int step = 0; step < 150; ++step) {
      opt.zero_grad();
      auto l = decoderStep(model.encoder, model.decoder, 16, StepContext{1, 1.0, 0.0}, w);
      l.total.backward();
      opt.step();
      last = step >= 140 ? last + l.cos.item<double>() / 10 : 0;
    }
    return last;
  };
  const double plain = residual(true), equalised = residual(false);
  qInfo("1 - cos(z, phi(theta(z))) after 150 decoder steps: plain %.3f, equalised %.3f", plain, equalised);
  QVERIFY2(plain < equalised - 0.1, qPrintable(QString("plain %1, equalised %2").arg(plain).arg(equalised)));
}

void TestLosses::decoderReconstructionTermLearnsOnlyWhenAsked() {
  auto model = test::tinyModel(8, 9);
  model->encoder->train();
  for (auto& p : model->encoder->parameters()) p.requires_grad_(false);
  torch::manual_seed(2);
  auto x = torch::rand({8, 3, 8, 8}) * 2 - 1;
  LossWeights w;
  const StepContext ctx{1, 1.0, 0.0};
  // Off (the paper): the term is zero and the total is the paper's L_θ.
  auto off = decoderStep(model->encoder, model->decoder, 8, ctx, w, x);
  QCOMPARE(off.rec.item<double>(), 0.0);
  QVERIFY(std::abs(off.total.item<double>() - (0.1 * off.kl_fake.item<double>() + 0.2 * off.cos.item<double>() +
                                               off.layer.item<double>())) < 1e-5);
  // On: mean |θ(φ(x)) − x| joins the total with its weight, and decoder-only steps lower it.
  w.decoder_rec = 1.0;
  w.kl = w.cos = w.layer = 0.0;
  torch::optim::Adam opt(model->decoder->parameters(), torch::optim::AdamOptions(1e-2).betas({0.0, 0.99}));
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    auto l = decoderStep(model->encoder, model->decoder, 8, ctx, w, x);
    QVERIFY(std::abs(l.total.item<double>() - l.rec.item<double>()) < 1e-6);
    if (step == 0) {
      torch::NoGradGuard no_grad;
      auto expected = (model->decoder->forward(model->encoder->forward(x, 1, 1.0), 1, 1.0) - x).abs().mean();
      // (the encoder's power iteration moved once more in between; the decoder has no noise yet)
      QVERIFY(std::abs(l.rec.item<double>() - expected.item<double>()) < 1e-3);
      first = l.rec.item<double>();
    }
    last = l.rec.item<double>();
    l.total.backward();
    opt.step();
  }
  qInfo("decoder reconstruction term: %.3f -> %.3f in 60 decoder steps", first, last);
  QVERIFY(last < 0.8 * first);
}

QTEST_GUILESS_MAIN(TestLosses)
#include "tst_losses.moc"
