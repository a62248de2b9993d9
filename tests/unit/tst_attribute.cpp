// Attribute vectors and conditional sampling (docs/design.md §1.3, §1.4, §4): mean differences of encodings
// restricted to scale ranges, saved as JSON; seeded galleries whose locked ranges stay locked.
#include <QtTest>

#include <fstream>

#include "core/edit/attribute.h"
#include "core/edit/sampling.h"
#include "core/edit/session.h"
#include "core/model/layers.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;

class TestAttribute : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void vectorIsMeanDifferenceOfEncodings();
  void fineAttributeLeavesCoarseCanvasesBitIdentical();
  void strengthMovesAlongVector();
  void saveLoadRoundTrip();
  void needsTwoPlusTwoExemplars();
  void badAttributeFilesNameTheField();
  void attributeForOtherResolutionIsRejected();
  void flipInvarianceModelsKeepTheirExtraBlock();
  void samplingIsReproducibleBySeed();
  void lockedRangesStayLocked();
  void rejectionKeepsMostConsistentCodes();
};

namespace {
struct Exemplars {
  QTemporaryDir dir;
  std::vector<SourceSpec> pos, neg;
  Exemplars() {
    for (int i = 0; i < 2; ++i) {
      auto p = test::tmpPath(dir, "pos" + std::to_string(i) + ".png"), n = test::tmpPath(dir, "neg" + std::to_string(i) + ".png");
      test::writeTestImage(p, 64, 64, 10 + i);
      test::writeTestImage(n, 64, 64, 20 + i);
      pos.push_back(SourceSpec::photo(p));
      neg.push_back(SourceSpec::photo(n));
    }
  }
};
}  // namespace

void TestAttribute::vectorIsMeanDifferenceOfEncodings() {
  Exemplars ex;
  auto m = test::tinyModel(64);
  SourceCache cache(*m, PhotoOptions{.align = false});
  auto a = buildAttribute(cache, *m, ex.pos, ex.neg, {fineRange(BlockLayout::plain(5))}, "test");
  auto z = [&](const SourceSpec& s) { return cache.latent(s)[0]; };
  auto expected = (z(ex.pos[0]) + z(ex.pos[1])) / 2 - (z(ex.neg[0]) + z(ex.neg[1])) / 2;
  QVERIFY(test::maxAbsDiff(a.vector, expected) < 1e-6);
  QCOMPARE(a.resolution, 64);
  QCOMPARE(int(a.positives.size()), 2);
  QCOMPARE(cache.encodeCount(), 4);
}

void TestAttribute::fineAttributeLeavesCoarseCanvasesBitIdentical() {
  Exemplars ex;
  auto m = test::tinyModel(64);
  EditSession s(*m, PhotoOptions{.align = false});
  auto attr = buildAttribute(s.sources(), *m, ex.pos, ex.neg, {fineRange(BlockLayout::plain(5))});
  auto plan = LatentPlan::uniform(m->randomLatents(1, 7), 5);
  auto before = s.decode(plan).clone();
  std::vector<torch::Tensor> coarse(s.canvases().begin(), s.canvases().begin() + 4);
  for (auto& c : coarse) c = c.clone();
  auto edited = applyAttribute(plan, attr, 2.0);
  for (int b = 0; b < 4; ++b) QVERIFY(edited[b].is_same(plan[b]));
  auto after = s.decode(edited);
  QCOMPARE(s.lastRestartBlock(), 4);
  // Full decode (not the incremental path) of the edited plan: coarse canvases bit-identical.
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> full(5);
  m->ema->runBlocks({}, edited, 0, 5, &full);
  for (int b = 0; b < 4; ++b) QVERIFY2(torch::equal(full[b], coarse[b]), qPrintable(QString("block %1").arg(b)));
  QVERIFY(!torch::equal(before, after));
}

void TestAttribute::strengthMovesAlongVector() {
  auto m = test::tinyModel(64);
  AttributeVector a;
  a.resolution = 64;
  a.latent_dim = 32;
  a.ranges = {BlockRange{0, 1}};
  a.vector = m->randomLatents(1, 3)[0] - m->randomLatents(1, 4)[0];
  auto z = m->randomLatents(1, 5);
  auto plan = LatentPlan::uniform(z, 5);
  auto e = applyAttribute(plan, a, 0.5);
  QVERIFY(test::maxAbsDiff(e[0], normaliseLatent(z + 0.5 * a.vector)) < 1e-6);
  QVERIFY(std::abs(e[1].norm().item<double>() - 1) < 1e-5);
  QVERIFY(e[2].is_same(z));
  QVERIFY(torch::equal(applyAttribute(plan, a, 0.0)[0], z));
  // Moving further along v increases the projection on v.
  auto proj = [&](const torch::Tensor& t) { return (t[0] * a.vector).sum().item<double>(); };
  QVERIFY(proj(applyAttribute(plan, a, 1.0)[0]) > proj(e[0]));
  QVERIFY(proj(applyAttribute(plan, a, -1.0)[0]) < proj(z));
}

void TestAttribute::saveLoadRoundTrip() {
  Exemplars ex;
  auto m = test::tinyModel(64);
  SourceCache cache(*m, PhotoOptions{.align = false});
  auto a = buildAttribute(cache, *m, ex.pos, ex.neg, {BlockRange{0, 1}, BlockRange{4, 4}}, "smile");
  auto path = test::tmpPath(ex.dir, "attr.json");
  a.save(path);
  auto b = AttributeVector::load(path);
  QCOMPARE(b.name, std::string("smile"));
  QVERIFY(b.ranges == a.ranges);
  QVERIFY(b.positives == a.positives && b.negatives == a.negatives);
  QCOMPARE(b.resolution, 64);
  QVERIFY(torch::equal(a.vector, b.vector));
  auto plan = LatentPlan::uniform(m->randomLatents(1, 1), 5);
  QVERIFY(torch::equal(m->decode(applyAttribute(plan, a, 1.5)), m->decode(applyAttribute(plan, b, 1.5))));
}

void TestAttribute::needsTwoPlusTwoExemplars() {
  Exemplars ex;
  auto m = test::tinyModel(64);
  SourceCache cache(*m, PhotoOptions{.align = false});
  QVERIFY_THROWS_EXCEPTION(Error, buildAttribute(cache, *m, {ex.pos[0]}, ex.neg, {fineRange(BlockLayout::plain(5))}));
  QVERIFY_THROWS_EXCEPTION(Error, buildAttribute(cache, *m, ex.pos, {ex.neg[0]}, {fineRange(BlockLayout::plain(5))}));
  QVERIFY_THROWS_EXCEPTION(Error, buildAttribute(cache, *m, ex.pos, ex.neg, {}));
  QVERIFY_THROWS_EXCEPTION(Error, buildAttribute(cache, *m, ex.pos, ex.neg, {BlockRange{3, 6}}));
}

void TestAttribute::badAttributeFilesNameTheField() {
  QTemporaryDir dir;
  auto expect = [&](const std::string& text, const QString& needle) {
    auto p = test::tmpPath(dir, "a.json");
    std::ofstream(p) << text;
    try {
      AttributeVector::load(p);
      QFAIL(qPrintable("no error for " + QString::fromStdString(text)));
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains(needle), e.what());
    }
  };
  expect(R"({"resolution": 64, "scales": "fine"})", "'vector'");
  expect(R"({"resolution": "64", "scales": "fine", "vector": [1, 2]})", "'resolution'");
  expect(R"({"resolution": 64, "scales": "fine", "vector": [1, "x"]})", "'vector'");
  expect(R"({"resolution": 64, "scales": "9", "vector": [1, 2]})", "'scales'");
  expect("not json", "not valid JSON");
  QVERIFY_THROWS_EXCEPTION(Error, AttributeVector::load(test::tmpPath(dir, "missing.json")));
}

void TestAttribute::attributeForOtherResolutionIsRejected() {
  AttributeVector a;
  a.resolution = 32;
  a.latent_dim = 32;
  a.ranges = {BlockRange{0, 1}};
  a.vector = torch::ones({32});
  auto plan = LatentPlan::uniform(test::tinyModel(64)->randomLatents(1, 1), 5);
  try {
    applyAttribute(plan, a, 1.0);
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("32 px"), e.what());
  }
}

// A flip-invariance model has an extra 8×8 block: a 32 px one has 5 blocks, as many as a plain
// 64 px model. Its attributes must save, load and apply on all 5 (the last block was once rejected
// as "outside the model" on load and the edit refused as made "for a 32 px model but this one is 64").
void TestAttribute::flipInvarianceModelsKeepTheirExtraBlock() {
  QTemporaryDir dir;
  AttributeVector a;
  a.name = "glasses";
  a.resolution = 32;
  a.blocks = 5;
  a.latent_dim = 32;
  a.ranges = {BlockRange{3, 4}};
  a.vector = torch::randn({32});
  const auto path = test::tmpPath(dir, "flip.json");
  a.save(path);
  auto b = AttributeVector::load(path);
  QCOMPARE(b.blocks, 5);
  QVERIFY(b.ranges == a.ranges);
  auto z = test::tinyModel(64)->randomLatents(2, 1);
  auto edited = applyAttribute(LatentPlan::uniform(z, 5), b, 1.0);
  QVERIFY(torch::equal(edited[2], z));
  QVERIFY(!torch::equal(edited[4], z));
  QVERIFY_THROWS_EXCEPTION(Error, applyAttribute(LatentPlan::uniform(z, 4), b, 1.0));
  // Older files (no "blocks") mean the plain model; an impossible count names the field.
  std::ofstream(test::tmpPath(dir, "bad.json")) << R"({"resolution": 32, "blocks": 7, "scales": "0", "vector": [1]})";
  try {
    AttributeVector::load(test::tmpPath(dir, "bad.json"));
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("'blocks'"), e.what());
  }
  std::ofstream(test::tmpPath(dir, "old.json")) << R"({"resolution": 32, "scales": "3", "vector": [1]})";
  QCOMPARE(AttributeVector::load(test::tmpPath(dir, "old.json")).numBlocks(), 4);
}

void TestAttribute::samplingIsReproducibleBySeed() {
  auto m = test::tinyModel(64);
  auto lock = std::vector<RangeAssignment>{{coarseRange(BlockLayout::plain(5)), {m->randomLatents(1, 99)}, {}}};
  auto a = m->decode(conditionalPlan(*m, lock, {.count = 4, .seed = 3}));
  auto b = m->decode(conditionalPlan(*m, lock, {.count = 4, .seed = 3}));
  auto c = m->decode(conditionalPlan(*m, lock, {.count = 4, .seed = 4}));
  QCOMPARE(a.size(0), int64_t(4));
  QVERIFY(torch::equal(a, b));
  QVERIFY(!torch::equal(a, c));
  // Each sample differs from the others.
  QVERIFY(!torch::equal(a[0], a[1]));
}

void TestAttribute::lockedRangesStayLocked() {
  auto m = test::tinyModel(64);
  auto locked = m->randomLatents(1, 99);
  auto plan = conditionalPlan(*m, {{coarseRange(BlockLayout::plain(5)), {locked}, {}}}, {.count = 3, .seed = 1});
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> canvases(5), ref(5);
  m->ema->runBlocks({}, plan, 0, 5, &canvases);
  m->ema->runBlocks({}, LatentPlan::uniform(locked.expand({3, 32}), 5), 0, 5, &ref);
  QVERIFY(torch::equal(canvases[1], ref[1]));  // coarse: the locked photo in every sample
  // Every sample holds the same coarse canvas. Not bit for bit: a convolution kernel may round batch
  // rows differently (seen on an AVX-512 machine: the third of three rows off by 2.1e-6), so up to
  // float rounding.
  for (int i = 1; i < 3; ++i) {
    const double diff = (canvases[1][0] - canvases[1][i]).abs().max().item<double>();
    QVERIFY2(diff < 1e-5, qPrintable(QStringLiteral("sample %1 differs by %2").arg(i).arg(diff)));
  }
  QVERIFY(!torch::equal(canvases[4][0], canvases[4][1]));  // the rest varies
}

void TestAttribute::rejectionKeepsMostConsistentCodes() {
  auto m = test::tinyModel(32);
  auto all = m->randomLatents(12, 5);
  auto scores = cycleConsistency(*m, all);
  auto kept = sampleCodes(*m, {.count = 3, .seed = 5, .candidates = 4});
  QCOMPARE(kept.size(0), int64_t(3));
  auto kept_scores = cycleConsistency(*m, kept);
  auto threshold = std::get<0>(scores.sort(true, 0, true))[2].item<double>();
  for (int i = 0; i < 3; ++i) QVERIFY(kept_scores[i].item<double>() >= threshold - 1e-6);
}

QTEST_GUILESS_MAIN(TestAttribute)
#include "tst_attribute.moc"
