// Interpolation (docs/design.md §1.5, §4): slerp endpoints and unit norm, per-range morphs, video export and
// the `automod interpolate` command.
#include <QtTest>

#include <fstream>
#include <iterator>

#include "core/edit/interpolate.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/io/video.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;

class TestInterpolate : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void slerpEndpointsEqualSourcesAndStayUnitNorm();
  void slerpFollowsTheGreatCircle();
  void pathThroughSeveralSources();
  void perRangeMorphKeepsOtherBlocks();
  void badInterpolationsAreRejected();
  void videoIsWrittenAndReadable();
  void aVideoTakesThePlaceOfItsFileOnlyWhenFinished();
  void cliWritesGridAndVideo();
};

void TestInterpolate::slerpEndpointsEqualSourcesAndStayUnitNorm() {
  auto m = test::tinyModel(16);
  auto a = m->randomLatents(1, 1), b = m->randomLatents(1, 2);
  QVERIFY(torch::equal(slerp(a, b, 0.0), a));
  QVERIFY(torch::equal(slerp(a, b, 1.0), b));
  for (double t : {0.1, 0.25, 0.5, 0.9}) QVERIFY(std::abs(slerp(a, b, t).norm().item<double>() - 1) < 1e-5);
  // Nearly identical latents fall back to a finite lerp.
  auto c = slerp(a, a, 0.5);
  QVERIFY(torch::isfinite(c).all().item<bool>());
  QVERIFY(test::maxAbsDiff(c, a) < 1e-5);
}

void TestInterpolate::slerpFollowsTheGreatCircle() {
  auto m = test::tinyModel(16);
  auto a = m->randomLatents(1, 3), b = m->randomLatents(1, 4);
  const double omega = std::acos((a * b).sum().item<double>());
  // The angle to a grows linearly with t.
  for (double t : {0.2, 0.5, 0.8}) {
    const double angle = std::acos(std::clamp((a * slerp(a, b, t)).sum().item<double>(), -1.0, 1.0));
    QVERIFY2(std::abs(angle - t * omega) < 1e-3, qPrintable(QString::number(t)));
  }
}

void TestInterpolate::pathThroughSeveralSources() {
  auto m = test::tinyModel(64);
  std::vector<torch::Tensor> keys{m->randomLatents(1, 1), m->randomLatents(1, 2), m->randomLatents(1, 3)};
  auto plan = interpolationPlan(keys, 5, 5);
  QCOMPARE(plan.batch(), int64_t(5));
  QVERIFY(torch::equal(plan[0][0], keys[0][0]));
  QVERIFY(torch::equal(plan[0][2], keys[1][0]));  // the middle step passes through the middle key
  QVERIFY(torch::equal(plan[0][4], keys[2][0]));
  auto norms = plan[3].norm(2, 1);
  QVERIFY(test::maxAbsDiff(norms, torch::ones_like(norms)) < 1e-5);
}

void TestInterpolate::perRangeMorphKeepsOtherBlocks() {
  auto m = test::tinyModel(64);
  auto a = m->randomLatents(1, 1), b = m->randomLatents(1, 2);
  auto plan = interpolationPlan({a, b}, 4, 5, {fineRange(BlockLayout::plain(5))});
  for (int b2 = 0; b2 < 4; ++b2)
    for (int i = 0; i < 4; ++i) QVERIFY(torch::equal(plan[b2][i], a[0]));
  QVERIFY(torch::equal(plan[4][3], b[0]));
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> c(5);
  m->ema->runBlocks({}, plan, 0, 5, &c);
  QVERIFY(torch::equal(c[3][0], c[3][3]));    // coarse and intermediate canvases fixed
  QVERIFY(!torch::equal(c[4][0], c[4][3]));   // fine ones morph
}

void TestInterpolate::badInterpolationsAreRejected() {
  auto a = test::tinyModel(16)->randomLatents(1, 1);
  QVERIFY_THROWS_EXCEPTION(Error, interpolationPlan({a}, 5, 3));
  QVERIFY_THROWS_EXCEPTION(Error, interpolationPlan({a, a}, 1, 3));
  QVERIFY_THROWS_EXCEPTION(Error, interpolationPlan({a, a}, 4, 3, {BlockRange{2, 4}}));
}

void TestInterpolate::videoIsWrittenAndReadable() {
  if (!videoAvailable()) QSKIP("this build has no OpenCV");
  QTemporaryDir dir;
  auto path = test::tmpPath(dir, "clip.mp4");
  auto frames = (torch::rand({6, 32, 32, 3}) * 255).to(torch::kUInt8);
  writeVideo(path, frames, 10);
  QVERIFY(std::filesystem::file_size(path) > 0);
  QCOMPARE(countVideoFrames(path), 6);
}

void TestInterpolate::aVideoTakesThePlaceOfItsFileOnlyWhenFinished() {
  if (!videoAvailable()) QSKIP("this build has no OpenCV");
  QTemporaryDir dir;
  const auto path = test::tmpPath(dir, "morph.mp4");
  {
    std::ofstream old(path, std::ios::binary);
    old << "the video from before";
  }
  auto frames = (torch::rand({5, 32, 32, 3}) * 255).to(torch::kUInt8);
  auto fileText = [&] {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto entries = [&] {
    int n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path().toStdString())) ++n;
    return n;
  };
  {
    // Stopped half way (an export cancelled, an error): the old file stays and nothing is left beside it.
    VideoWriter writer(path, 10);
    writer.add(frames.slice(0, 0, 2));
    QCOMPARE(writer.frames(), 2);
    QCOMPARE(entries(), 2);  // the old file and the one being written
  }
  QCOMPARE(fileText(), std::string("the video from before"));
  QCOMPARE(entries(), 1);
  {
    VideoWriter writer(path, 10);
    writer.add(frames[0]);  // one frame [H, W, C]
    writer.add(frames.slice(0, 1));
    QVERIFY_THROWS_EXCEPTION(Error, writer.add(torch::zeros({16, 16, 3}, torch::kUInt8)));  // another size
    QCOMPARE(fileText(), std::string("the video from before"));
    writer.finish();
  }
  QCOMPARE(countVideoFrames(path), 5);
  QCOMPARE(entries(), 1);
  // A video without frames is an error, not an empty file.
  VideoWriter empty(test::tmpPath(dir, "empty.mp4"), 10);
  QVERIFY_THROWS_EXCEPTION(Error, empty.finish());
}

void TestInterpolate::cliWritesGridAndVideo() {
  QTemporaryDir dir;
  auto model = test::tmpPath(dir, "m.amod");
  saveModel(model, *test::tinyModel(64));
  auto a = test::tmpPath(dir, "a.png"), b = test::tmpPath(dir, "b.png");
  test::writeTestImage(a, 70, 90, 1);
  test::writeTestImage(b, 90, 70, 2);
  auto grid = test::tmpPath(dir, "morph.png");
  auto r = test::runAutomod({"interpolate", model.string(), a.string(), b.string(), "--steps", "5", "--scale", "fine",
                             "--no-align", "--cols", "5", "-o", grid.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  auto img = readImage(grid);
  QCOMPARE(img.size(1), int64_t(5 * 64 + 6 * 2));  // pad 2 around every image
  // Random seeds work as sources too; an unknown scale fails with a reason.
  r = test::runAutomod({"interpolate", model.string(), "seed:1", "seed:2", "--steps", "3", "--scale", "9", "-o",
                        grid.string()});
  QVERIFY(r.code != 0);
  QVERIFY2(QString::fromStdString(r.err).contains("out of range"), r.err.c_str());
  if (videoAvailable()) {
    auto mp4 = test::tmpPath(dir, "morph.mp4");
    r = test::runAutomod({"interpolate", model.string(), "seed:1", "seed:2", "--steps", "7", "-o", mp4.string()});
    QVERIFY2(r.code == 0, r.err.c_str());
    QCOMPARE(countVideoFrames(mp4), 7);
  }
}

QTEST_GUILESS_MAIN(TestInterpolate)
#include "tst_interpolate.moc"
