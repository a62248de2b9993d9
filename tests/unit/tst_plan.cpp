// Scale ranges and plans (docs/design.md §1.2, §2, §4): parsing the paper's presets and block ranges, mixing
// several sources per range on the sphere, and the errors a user can run into.
#include <QtTest>

#include "core/edit/plan.h"
#include "core/model/ranges.h"
#include "core/model/layers.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;

class TestPlan : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void parsesScales_data();
  void namedScalesFollowResolutionsAlsoWithTheExtraBlock();
  void parsesScales();
  void rejectsBadScales_data();
  void rejectsBadScales();
  void mixKeepsCoarseCanvasOfCoarseSource();
  void oneSourceEverywhereEqualsReconstruction();
  void blendIsNormalisedWeightedSum();
  void blendRejectsBadWeights();
  void laterAssignmentsWin();
  void planForOtherResolutionIsRejected();
  void rowsOfAPlanKeepTheirStyleOffsets();
};

void TestPlan::parsesScales_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<int>("blocks");
  QTest::addColumn<int>("first");
  QTest::addColumn<int>("last");
  QTest::newRow("coarse@64") << "coarse" << 5 << 0 << 1;
  QTest::newRow("intermediate@64") << "intermediate" << 5 << 2 << 3;
  QTest::newRow("fine@64") << "fine" << 5 << 4 << 4;
  QTest::newRow("fine@256") << "fine" << 7 << 4 << 6;
  QTest::newRow("Fine with spaces") << " Fine " << 7 << 4 << 6;
  QTest::newRow("intermediate clipped@16") << "intermediate" << 3 << 2 << 2;
  QTest::newRow("single block") << "3" << 5 << 3 << 3;
  QTest::newRow("range") << "1-3" << 5 << 1 << 3;
}

void TestPlan::parsesScales() {
  QFETCH(QString, text);
  QFETCH(int, blocks);
  QFETCH(int, first);
  QFETCH(int, last);
  auto r = parseBlockRange(text.toStdString(), BlockLayout::plain(blocks));
  QCOMPARE(r.first, first);
  QCOMPARE(r.last, last);
  QCOMPARE(parseBlockRange(r.toString(), BlockLayout::plain(blocks)), r);
}

void TestPlan::rejectsBadScales_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<int>("blocks");
  QTest::addColumn<QString>("message");
  QTest::newRow("block past the end") << "5" << 5 << "out of range";
  QTest::newRow("range past the end") << "2-9" << 5 << "out of range";
  QTest::newRow("reversed") << "3-1" << 5 << "reversed";
  QTest::newRow("fine on 32 px") << "fine" << 4 << "needs a block at 64 px or more";
  QTest::newRow("word") << "medium" << 5 << "bad scale";
  QTest::newRow("negative") << "-1" << 5 << "bad scale";
  QTest::newRow("empty list") << "," << 5 << "no scale";
}

void TestPlan::rejectsBadScales() {
  QFETCH(QString, text);
  QFETCH(int, blocks);
  QFETCH(QString, message);
  try {
    parseBlockRanges(text.toStdString(), BlockLayout::plain(blocks));
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains(message), e.what());
  }
}

void TestPlan::mixKeepsCoarseCanvasOfCoarseSource() {
  auto m = test::tinyModel(64);
  const int nb = m->numBlocks();
  auto a = m->randomLatents(1, 1), b = m->randomLatents(1, 2), c = m->randomLatents(1, 3);
  auto plan = buildPlan(nb, c, {{coarseRange(BlockLayout::plain(nb)), {a}, {}}, {intermediateRange(BlockLayout::plain(nb)), {b}, {}}});
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> mixed(nb), alone(nb);
  m->ema->runBlocks({}, plan, 0, nb, &mixed);
  m->ema->runBlocks({}, LatentPlan::uniform(a, nb), 0, nb, &alone);
  QVERIFY(torch::equal(mixed[1], alone[1]));   // canvas after the coarse blocks: A alone
  QVERIFY(!torch::equal(mixed[2], alone[2]));  // intermediate comes from B
  QVERIFY(plan[4].is_same(c));                 // fine: the base
}

void TestPlan::oneSourceEverywhereEqualsReconstruction() {
  auto m = test::tinyModel(64);
  auto z = m->encode(torch::rand({1, 3, 64, 64}) * 2 - 1);
  const int nb = m->numBlocks();
  auto plan = buildPlan(nb, z, {{coarseRange(BlockLayout::plain(nb)), {z}, {}}, {intermediateRange(BlockLayout::plain(nb)), {z, z}, {0.3, 0.7}},
                                {fineRange(BlockLayout::plain(nb)), {z}, {}}});
  QVERIFY(test::maxAbsDiff(m->decode(plan), m->decode(z)) < 1e-5);
}

void TestPlan::blendIsNormalisedWeightedSum() {
  auto m = test::tinyModel(16);
  auto a = m->randomLatents(1, 1), b = m->randomLatents(1, 2);
  auto z = blendLatents({a, b}, {1.0, 3.0});
  QVERIFY(std::abs(z.norm().item<double>() - 1.0) < 1e-5);
  QVERIFY(test::maxAbsDiff(z, normaliseLatent(a + 3 * b)) < 1e-6);
  // Only the ratio of weights matters.
  QVERIFY(test::maxAbsDiff(z, blendLatents({a, b}, {0.25, 0.75})) < 1e-6);
  QVERIFY(test::maxAbsDiff(blendLatents({a, b}, {1.0, 0.0}), a) < 1e-6);
}

void TestPlan::blendRejectsBadWeights() {
  auto m = test::tinyModel(16);
  auto a = m->randomLatents(1, 1);
  QVERIFY_THROWS_EXCEPTION(Error, blendLatents({}, {}));
  QVERIFY_THROWS_EXCEPTION(Error, blendLatents({a, a}, {1.0}));
  QVERIFY_THROWS_EXCEPTION(Error, blendLatents({a, a}, {0.0, 0.0}));
  QVERIFY_THROWS_EXCEPTION(Error, blendLatents({a, a}, {-1.0, 2.0}));
  QVERIFY_THROWS_EXCEPTION(Error, blendLatents({a, -a}, {1.0, 1.0}));
  QVERIFY_THROWS_EXCEPTION(Error, buildPlan(3, a, {{BlockRange{0, 0}, {}, {}}}));
  QVERIFY_THROWS_EXCEPTION(Error, buildPlan(3, a, {{BlockRange{2, 3}, {a}, {}}}));
}

void TestPlan::laterAssignmentsWin() {
  auto m = test::tinyModel(64);
  auto a = m->randomLatents(1, 1), b = m->randomLatents(1, 2), c = m->randomLatents(1, 3);
  auto plan = buildPlan(5, c, {{BlockRange{0, 3}, {a}, {}}, {BlockRange{2, 2}, {b}, {}}});
  QVERIFY(plan[0].is_same(a) && plan[1].is_same(a) && plan[3].is_same(a));
  QVERIFY(plan[2].is_same(b));
  QVERIFY(plan[4].is_same(c));
}

void TestPlan::planForOtherResolutionIsRejected() {
  auto a = test::tinyModel(64)->randomLatents(1, 1);
  try {
    checkPlanFits(LatentPlan::uniform(a, 4), 5);
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("32 px") && QString(e.what()).contains("64 px"), e.what());
  }
}

void TestPlan::namedScalesFollowResolutionsAlsoWithTheExtraBlock() {
  // A flip-invariance model's extra 8×8 block (decoder block 2) is coarse; every later block moves by one.
  ModelConfig c = ModelConfig::fromTable("cpu-32", 64, 3, 16);
  c.extra_8x8_block = true;
  const auto flip = BlockLayout::of(c, c.numBlocks() - 1);
  QCOMPARE(flip.resolutions, (std::vector<int>{4, 8, 8, 16, 32, 64}));
  QCOMPARE(coarseRange(flip), (BlockRange{0, 2}));
  QCOMPARE(intermediateRange(flip), (BlockRange{3, 4}));
  QCOMPARE(fineRange(flip), (BlockRange{5, 5}));
  QCOMPARE(parseBlockRange("fine", flip), (BlockRange{5, 5}));
  QCOMPARE(BlockLayout::forResolution(64, true), flip);
  // The plain model: the paper's Fig. 4 blocks; at 32 px there is no fine scale.
  const auto plain = BlockLayout::of(ModelConfig::fromTable("cpu-32", 64, 3, 16), 4);
  QCOMPARE(coarseRange(plain), (BlockRange{0, 1}));
  QCOMPARE(intermediateRange(plain), (BlockRange{2, 3}));
  QCOMPARE(fineRange(plain), (BlockRange{4, 4}));
  const auto small = BlockLayout::plain(4);
  QCOMPARE(namedRanges(small).size(), size_t(2));
  QVERIFY(!hasScale(Scale::Fine, small));
  QVERIFY_THROWS_EXCEPTION(Error, fineRange(small));
  // A model mid-way through training uses the blocks of its stage.
  QCOMPARE(BlockLayout::of(c, 1).resolutions, (std::vector<int>{4, 8, 8}));
}

void TestPlan::rowsOfAPlanKeepTheirStyleOffsets() {
  // Chunked decoding, evaluation subsets and batches joined after refinement all keep each row's
  // style offsets with its codes.
  auto z = torch::randn({4, 8});
  LatentPlan p = LatentPlan::uniform(z, 3);
  p.setOffset(1, torch::arange(4 * 6, torch::kFloat32).reshape({4, 6}));
  auto part = p.narrow(1, 2);
  QCOMPARE(part.batch(), int64_t(2));
  QVERIFY(!part.offset(0).defined());
  QVERIFY(torch::equal(part.offset(1), p.offset(1).narrow(0, 1, 2)));
  auto picked = p.indexSelect(torch::tensor({3, 0}));
  QVERIFY(torch::equal(picked.offset(1)[0], p.offset(1)[3]));
  QVERIFY(torch::equal(picked[2][1], z[0]));
  // Joining a plan with offsets and one without gives zeros for the latter's rows.
  auto joined = LatentPlan::cat({p.narrow(0, 1), LatentPlan::uniform(z.narrow(0, 0, 2), 3)});
  QCOMPARE(joined.batch(), int64_t(3));
  QVERIFY(torch::equal(joined.offset(1)[0], p.offset(1)[0]));
  QCOMPARE(joined.offset(1).narrow(0, 1, 2).abs().sum().item<double>(), 0.0);
  QVERIFY(torch::equal(joined.clone().offset(1), joined.offset(1)));
  QCOMPARE(p.firstDifferentBlock(p.clone()), 3);
}

QTEST_GUILESS_MAIN(TestPlan)
#include "tst_plan.moc"
