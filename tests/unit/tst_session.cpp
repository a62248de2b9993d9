// EditSession (docs/design.md §4): incremental decoding from cached canvases, the coarse-to-fine preview, and the
// sources cache that encodes each photo once.
#include <QtTest>

#include <nlohmann/json.hpp>

#include <fstream>

#include "core/edit/plan.h"
#include "core/edit/session.h"
#include "core/io/image.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;

class TestSession : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void incrementalDecodeEqualsFullDecode();
  void fineChangeRestartsAtFineBlock();
  void unchangedPlanDecodesNothing();
  void previewIsEarlierBlockUpsampled();
  void previewThenDecodeEqualsFullDecode();
  void samePhotoIsEncodedOnce();
  void sourcesMatchDirectEncoding();
  void latentFilesAndSeedsAreSources();
  void badSourcesAreReported();
  void planForOtherModelIsRejected();
};

void TestSession::incrementalDecodeEqualsFullDecode() {
  auto m = test::tinyModel(64);
  EditSession s(*m);
  const int nb = s.numBlocks();
  auto a = m->randomLatents(2, 1), b = m->randomLatents(2, 2), c = m->randomLatents(2, 3);
  s.decode(LatentPlan::uniform(a, nb));
  // A sequence of edits at every block: each incremental result equals a decode from scratch.
  for (int k = nb - 1; k >= 0; --k) {
    auto plan = buildPlan(nb, a, {{BlockRange{k, nb - 1}, {k % 2 ? b : c}, {}}});
    auto inc = s.decode(plan);
    QCOMPARE(s.lastRestartBlock(), k);
    QVERIFY2(torch::equal(inc, s.decodeFull(plan)), qPrintable(QString("edit from block %1").arg(k)));
    QVERIFY(torch::equal(inc, m->decode(plan)));
  }
}

void TestSession::fineChangeRestartsAtFineBlock() {
  auto m = test::tinyModel(64);
  EditSession s(*m);
  const int nb = s.numBlocks();
  auto a = m->randomLatents(1, 1), b = m->randomLatents(1, 2);
  auto before = s.decode(LatentPlan::uniform(a, nb)).clone();
  auto coarse = s.canvases()[1].clone();
  auto plan = buildPlan(nb, a, {{fineRange(BlockLayout::plain(nb)), {b}, {}}});
  auto after = s.decode(plan);
  QCOMPARE(s.lastRestartBlock(), 4);
  QVERIFY(torch::equal(s.canvases()[1], coarse));
  QVERIFY(!torch::equal(before, after));
}

void TestSession::unchangedPlanDecodesNothing() {
  auto m = test::tinyModel(32);
  EditSession s(*m);
  auto a = m->randomLatents(1, 1);
  auto first = s.decode(LatentPlan::uniform(a, s.numBlocks())).clone();
  // The same values in new tensors count as unchanged.
  auto again = s.decode(LatentPlan::uniform(a.clone(), s.numBlocks()));
  QCOMPARE(s.lastRestartBlock(), s.numBlocks());
  QVERIFY(torch::equal(first, again));
}

void TestSession::previewIsEarlierBlockUpsampled() {
  auto m = test::tinyModel(64);
  EditSession s(*m);
  const int nb = s.numBlocks();
  auto plan = LatentPlan::uniform(m->randomLatents(2, 4), nb);
  s.setPlan(plan);
  auto p = s.preview(2);
  QCOMPARE(p.sizes().vec(), (std::vector<int64_t>{2, 3, 64, 64}));
  QCOMPARE(s.validCanvases(), 3);  // stopped after block 2
  torch::NoGradGuard ng;
  auto small = m->ema->toRGB(2, m->ema->runBlocks({}, plan, 0, 3));
  QCOMPARE(small.size(2), int64_t(16));
  // Nearest upsampling: every 4×4 cell is one pixel of the 16 px image.
  QVERIFY(torch::equal(p.index({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, 64, 4),
                                torch::indexing::Slice(0, 64, 4)}),
                       small));
  QVERIFY(torch::equal(p.index({0, 0, 5, 7}), small.index({0, 0, 1, 1})));
  QVERIFY(torch::equal(s.preview(nb - 1), s.decodeFull(plan)));
  QVERIFY_THROWS_EXCEPTION(Error, s.preview(nb));
}

void TestSession::previewThenDecodeEqualsFullDecode() {
  auto m = test::tinyModel(64);
  EditSession s(*m);
  const int nb = s.numBlocks();
  auto a = m->randomLatents(1, 1), b = m->randomLatents(1, 2);
  s.decode(LatentPlan::uniform(a, nb));
  auto plan = buildPlan(nb, a, {{intermediateRange(BlockLayout::plain(nb)), {b}, {}}});
  s.setPlan(plan);
  s.preview(2);
  QCOMPARE(s.lastRestartBlock(), 2);
  auto img = s.decode();
  QCOMPARE(s.lastRestartBlock(), 3);  // continued after the preview's block
  QVERIFY(torch::equal(img, s.decodeFull(plan)));
}

void TestSession::samePhotoIsEncodedOnce() {
  QTemporaryDir dir;
  auto p1 = test::tmpPath(dir, "a.png"), p2 = test::tmpPath(dir, "copy.png"), p3 = test::tmpPath(dir, "b.png");
  test::writeTestImage(p1, 80, 60, 1);
  std::filesystem::copy_file(p1, p2);
  test::writeTestImage(p3, 80, 60, 2);
  auto m = test::tinyModel(32);
  EditSession s(*m, PhotoOptions{.align = false});
  auto z1 = s.sources().latent(SourceSpec::photo(p1));
  auto z2 = s.sources().latent(SourceSpec::photo(p2));
  QCOMPARE(s.sources().encodeCount(), 1);
  QVERIFY(torch::equal(z1, z2));
  auto z3 = s.sources().latent(SourceSpec::photo(p3));
  QCOMPARE(s.sources().encodeCount(), 2);
  QVERIFY(!torch::equal(z1, z3));
  s.sources().latent(SourceSpec::photo(p1));
  QCOMPARE(s.sources().encodeCount(), 2);
}

void TestSession::sourcesMatchDirectEncoding() {
  QTemporaryDir dir;
  auto p = test::tmpPath(dir, "a.png");
  test::writeTestImage(p, 50, 70, 3);
  auto m = test::tinyModel(32);
  SourceCache cache(*m, PhotoOptions{.align = false});
  auto prepared = preparePhoto(p, 32, 3, PhotoOptions{.align = false});
  QVERIFY(torch::equal(cache.latent(SourceSpec::photo(p)), m->encode(toModelInput(prepared.image))));
  QVERIFY(torch::equal(cache.photoImage(SourceSpec::photo(p)), prepared.image));
}

void TestSession::latentFilesAndSeedsAreSources() {
  QTemporaryDir dir;
  auto m = test::tinyModel(32);
  SourceCache cache(*m);
  auto a = m->randomLatents(1, 5), b = m->randomLatents(1, 6);
  auto f = test::tmpPath(dir, "z.json");
  writeLatentFile(f, {{"a", a[0]}, {"b", b[0]}}, 32);
  QVERIFY(test::maxAbsDiff(cache.latent(SourceSpec::parse(f.string())), a) < 1e-6);
  QVERIFY(test::maxAbsDiff(cache.latent(SourceSpec::parse(f.string() + "#1")), b) < 1e-6);
  QVERIFY(torch::equal(cache.latent(SourceSpec::parse("seed:5")), a));
  QCOMPARE(cache.encodeCount(), 0);
  // A bare list of floats is a latent file too.
  auto bare = test::tmpPath(dir, "bare.json");
  std::vector<float> v(32, 0.f);
  v[0] = 3;
  v[1] = 4;
  std::ofstream(bare) << nlohmann::json(v).dump();
  auto z = cache.latent(SourceSpec::parse(bare.string()));
  QVERIFY(std::abs(z[0][0].item<double>() - 0.6) < 1e-6 && std::abs(z[0][1].item<double>() - 0.8) < 1e-6);
}

void TestSession::badSourcesAreReported() {
  QTemporaryDir dir;
  auto m = test::tinyModel(32);
  SourceCache cache(*m, PhotoOptions{.align = false});
  auto expect = [&](const std::string& text, const QString& needle) {
    try {
      cache.latent(SourceSpec::parse(text));
      QFAIL(qPrintable("no error for " + QString::fromStdString(text)));
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains(needle), e.what());
    }
  };
  expect((test::tmpPath(dir, "missing.png")).string(), "missing.png");
  expect((test::tmpPath(dir, "missing.json")).string(), "missing.json");
  expect("seed:x", "seed:N");
  auto wrong = test::tmpPath(dir, "wrong.json");
  std::ofstream(wrong) << "[1, 2, 3]";
  expect(wrong.string(), "3-d");
  auto bad = test::tmpPath(dir, "bad.json");
  std::ofstream(bad) << "{\"latents\": 3";
  expect(bad.string(), "not valid JSON");
  auto f = test::tmpPath(dir, "z.json");
  writeLatentFile(f, {{"a", m->randomLatents(1, 1)[0]}}, 32);
  expect(f.string() + "#4", "#4");
}

void TestSession::planForOtherModelIsRejected() {
  auto m = test::tinyModel(32);
  EditSession s(*m);
  QVERIFY_THROWS_EXCEPTION(Error, s.setPlan(LatentPlan::uniform(m->randomLatents(1, 1), 5)));
  QVERIFY_THROWS_EXCEPTION(Error, s.decode());  // no plan yet
}

QTEST_GUILESS_MAIN(TestSession)
#include "tst_session.moc"
