// Barron's adaptive robust loss (docs/design.md §3): our numerically integrated log Z(α) against closed forms,
// the NLL's normalisation, the differentiability of log Z in α, and 2×2 replication on growth.
#include <QtTest>

#include <cmath>

#include "testutil.h"
#include "training/robust_loss.h"

using namespace automod;

class TestRobustLoss : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void logPartitionMatchesClosedForms();
  void parametersStopGrowingAtTheElementCap();
  void interpolatedLogPartitionMatchesIntegral();
  void nllIntegratesToOne_data();
  void nllIntegratesToOne();
  void logPartitionIsDifferentiableInAlpha();
  void startsAtAlphaOneScaleOne();
  void growReplicatesEachElementOverItsBlock();
  void flatGrowthIsTheAuthorsInterleave();
  void lossGradientReachesAlphaAndScale();
};

void TestRobustLoss::logPartitionMatchesClosedForms() {
  // α = 0: Cauchy-like, Z = π√2. α = 2: Gaussian, Z = √(2π). α = 1: Z = 2e·K₁(1).
  QVERIFY(std::abs(integrateLogPartition(0.0) - std::log(M_PI * std::sqrt(2.0))) < 1e-7);
  QVERIFY(std::abs(integrateLogPartition(2.0) - std::log(std::sqrt(2.0 * M_PI))) < 1e-9);
  const double k1_of_1 = 0.6019072301972346;
  QVERIFY(std::abs(integrateLogPartition(1.0) - std::log(2.0 * M_E * k1_of_1)) < 1e-7);
}

void TestRobustLoss::interpolatedLogPartitionMatchesIntegral() {
  // The steepest part of log Z is next to α = 0; 2e-5 is far below what the loss can notice.
  auto alphas = torch::tensor({0.0, 0.001, 0.0123, 0.3, 0.77, 1.0, 1.4142, 1.999, 2.0}, torch::kFloat64);
  auto table = logPartition(alphas);
  for (int64_t i = 0; i < alphas.size(0); ++i) {
    const double a = alphas[i].item<double>();
    const double err = std::abs(table[i].item<double>() - integrateLogPartition(a));
    if (err > 2e-5) QFAIL(qPrintable(QString("alpha %1: interpolation error %2").arg(a).arg(err)));
  }
}

void TestRobustLoss::nllIntegratesToOne_data() {
  QTest::addColumn<double>("alpha");
  QTest::addColumn<double>("scale");
  QTest::newRow("alpha 0.5, c 0.7") << 0.5 << 0.7;
  QTest::newRow("alpha 1, c 1") << 1.0 << 1.0;
  QTest::newRow("alpha 1.5, c 1.3") << 1.5 << 1.3;
  QTest::newRow("alpha 1.99, c 0.2") << 1.99 << 0.2;
}

void TestRobustLoss::nllIntegratesToOne() {
  QFETCH(double, alpha);
  QFETCH(double, scale);
  // ∫ exp(−NLL(x)) dx with x = c·sinh(u): dense near 0, reaching ±c·8e4 in the tails.
  const double h = 5e-4;
  auto u = torch::arange(-12.0, 12.0 + h / 2, h, torch::kFloat64);
  auto x = scale * torch::sinh(u);
  auto dx = scale * torch::cosh(u);
  auto a = torch::full_like(x, alpha);
  auto c = torch::full_like(x, scale);
  auto density = torch::exp(-robustNll(x, a, c)) * dx;
  const double integral = (density.sum().item<double>() - 0.5 * (density[0] + density[-1]).item<double>()) * h;
  QVERIFY2(std::abs(integral - 1.0) < 1e-4, qPrintable(QString("integral %1").arg(integral, 0, 'g', 10)));
}

void TestRobustLoss::logPartitionIsDifferentiableInAlpha() {
  for (double a0 : {0.05, 0.7, 1.3, 1.9}) {
    auto a = torch::tensor({a0}, torch::kFloat64).requires_grad_(true);
    logPartition(a).sum().backward();
    const double h = 1e-4;
    const double fd = (integrateLogPartition(a0 + h) - integrateLogPartition(a0 - h)) / (2 * h);
    const double g = a.grad().item<double>();
    QVERIFY2(std::abs(g - fd) < 2e-3 * std::max(1.0, std::abs(fd)),
             qPrintable(QString("alpha %1: grad %2 vs finite difference %3").arg(a0).arg(g).arg(fd)));
  }
}

void TestRobustLoss::startsAtAlphaOneScaleOne() {
  RobustLoss rl(RobustLossOptions(3, 16));
  for (int r : {4, 8, 16}) {
    QVERIFY(test::maxAbsDiff(rl->alpha(r), torch::ones({3, r, r})) < 1e-6);
    QVERIFY(test::maxAbsDiff(rl->scale(r), torch::ones({3, r, r})) < 1e-6);
  }
  QCOMPARE(rl->parameters().size(), size_t(6));
}

void TestRobustLoss::growReplicatesEachElementOverItsBlock() {
  torch::manual_seed(3);
  RobustLoss rl(RobustLossOptions(3, 16));
  {
    torch::NoGradGuard ng;
    rl->alphaLatent(8).copy_(torch::randn({3, 8, 8}));
    rl->scaleLatent(8).copy_(torch::randn({3, 8, 8}));
  }
  rl->growTo(16);
  auto a8 = rl->alpha(8), a16 = rl->alpha(16), c8 = rl->scale(8), c16 = rl->scale(16);
  for (int ch = 0; ch < 3; ++ch)
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        QCOMPARE(a16[ch][i][j].item<float>(), a8[ch][i / 2][j / 2].item<float>());
        QCOMPARE(c16[ch][i][j].item<float>(), c8[ch][i / 2][j / 2].item<float>());
      }
  // Not the reference code's flat interleave: neighbours along a row of the old grid stay apart.
  QVERIFY(a16[0][0][2].item<float>() != a16[0][0][1].item<float>() || a8[0][0][1].item<float>() == a8[0][0][0].item<float>());
}

void TestRobustLoss::flatGrowthIsTheAuthorsInterleave() {
  // Session.prepareAdaptiveLossForNewPhase: latent[0][k::4] = old_latent[0] for k = 0..3, on the
  // flattened C·H·W vectors.
  torch::manual_seed(4);
  RobustLoss rl(RobustLossOptions(3, 16));
  {
    torch::NoGradGuard ng;
    rl->alphaLatent(8).copy_(torch::randn({3, 8, 8}));
    rl->scaleLatent(8).copy_(torch::randn({3, 8, 8}));
  }
  rl->growTo(16, RobustGrowth::Flat);
  const auto a8 = rl->alphaLatent(8).flatten(), a16 = rl->alphaLatent(16).flatten();
  const auto c8 = rl->scaleLatent(8).flatten(), c16 = rl->scaleLatent(16).flatten();
  QCOMPARE(a16.numel(), 4 * a8.numel());
  for (int64_t i = 0; i < a8.numel(); ++i)
    for (int k = 0; k < 4; ++k) {
      QCOMPARE(a16[4 * i + k].item<float>(), a8[i].item<float>());
      QCOMPARE(c16[4 * i + k].item<float>(), c8[i].item<float>());
    }
  // Not the spatial replication: element (0, 1, 0) of the new grid holds old (0, 0, 4), not (0, 0, 0).
  QCOMPARE(rl->alphaLatent(16)[0][1][0].item<float>(), rl->alphaLatent(8)[0][0][4].item<float>());
}

void TestRobustLoss::lossGradientReachesAlphaAndScale() {
  RobustLoss rl(RobustLossOptions(1, 8));
  auto diff = torch::randn({2, 1, 8, 8}) * 0.3;
  rl->forward(diff).backward();
  QVERIFY(rl->alphaLatent(8).grad().defined() && rl->alphaLatent(8).grad().abs().sum().item<double>() > 0);
  QVERIFY(rl->scaleLatent(8).grad().defined() && rl->scaleLatent(8).grad().abs().sum().item<double>() > 0);
  QVERIFY(!rl->alphaLatent(4).grad().defined());
}

void TestRobustLoss::parametersStopGrowingAtTheElementCap() {
  // losses.rec_max_resolution (no preset uses it; it saves memory from 128 px on): each resolution
  // keeps at most cap×cap×C parameters and the loss is taken on images pooled to the cap (here in
  // miniature: cap 8, resolutions to 32).
  RobustLoss loss(RobustLossOptions(3, 32).max_element_resolution(8));
  QCOMPARE(loss->alphaLatent(4).sizes(), (at::IntArrayRef{3, 4, 4}));
  QCOMPARE(loss->alphaLatent(16).sizes(), (at::IntArrayRef{3, 8, 8}));
  QCOMPARE(loss->scaleLatent(32).sizes(), (at::IntArrayRef{3, 8, 8}));
  {
    torch::NoGradGuard no_grad;
    loss->alphaLatent(8).normal_();
  }
  loss->growTo(16);  // same size: copied, not replicated
  QVERIFY(torch::equal(loss->alphaLatent(16), loss->alphaLatent(8)));
  auto diff = torch::randn({2, 3, 8, 8});
  const double at16 = loss->forward(diff, 16).item<double>();
  QCOMPARE(at16, loss->forward(diff, 8).item<double>());  // equal parameters, equal loss
  QVERIFY_THROWS_EXCEPTION(c10::Error, loss->forward(torch::randn({2, 3, 16, 16}), 16));
}

QTEST_GUILESS_MAIN(TestRobustLoss)
#include "tst_robust_loss.moc"
