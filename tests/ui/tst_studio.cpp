// The editor driven without a human (offscreen): drops, the coalescing worker, undo/redo, projects,
// bad photos and the event loop's responsiveness while decoding.
#include "ui_testutil.h"

#include <QApplication>
#include <QCheckBox>
#include <QDropEvent>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonObject>
#include <QListWidget>
#include <QMimeData>
#include <QRadioButton>
#include <QSpinBox>
#include <QSignalSpy>
#include <QSlider>
#include <QTest>
#include <QTimer>
#include <QUrl>

#include <QJsonArray>
#include <QJsonDocument>
#include <QRegularExpression>

#include <iostream>
#include <sstream>

#include "core/io/model_file.h"
#include "app/studio_headless.h"
#include "ui/main_window.h"
#include "ui/attribute_tab.h"
#include "ui/mix_tab.h"
#include "ui/morph_tab.h"
#include "ui/photo_strip.h"
#include "ui/sample_tab.h"
#include "ui/studio.h"

using namespace automod;
using namespace automod::ui;

class TestStudio : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  QStringList photos_;

  /// A controller on a tiny 64 px model (5 blocks: every range) with `n` photos loaded and decoded.
  void load(StudioController& c, int n) {
    c.setModel(test::expressiveTinyModel(), "tiny");
    QSignalSpy results(c.render(), &RenderScheduler::resultReady);
    c.photos()->addPhotos(photos_.mid(0, n));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), n, 20000);
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->decodePending() && !c.worker()->isBusy() && !c.render()->result().isNull(), 20000);
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    QCoreApplication::setOrganizationName("automod-tests");  // keep the user's settings untouched
    photos_ = test::writeTestPhotos(dir_, 3, 80, 72, 10);
  }

  void headlessJobReportsEachPhotosReconstructionAgainstTheModel() {
    // `automod-studio --headless` (the bootstrap's run without a display) prints what the editor's
    // tiles show: each photo's PSNR / SSIM, and the hint when it is far below the model's own figure.
    auto model = test::expressiveTinyModel();
    model->metadata["evaluation"] = {{"psnr_db", 60.0}};
    model->metadata["preset"] = "faces-64";
    const QString path = dir_.filePath("cartoon.amod");
    saveModel(path.toStdString(), *model);
    std::ostringstream captured, errors;
    HeadlessOptions options;
    options.model = path.toStdString();
    options.out = dir_.filePath("headless").toStdString();
    for (const auto& p : photos_.mid(0, 2)) options.photos.push_back(p.toStdString());
    options.refine_steps = 3;
    const int rc = runStudioHeadless(options, captured, errors);
    const QString out = QString::fromStdString(captured.str());
    QVERIFY2(rc == 0, errors.str().c_str());
    // Before and after the refinement, for each photo.
    QCOMPARE(out.count(QRegularExpression("reconstructed .*: PSNR [0-9.]+ dB, SSIM [-0-9.]+; refined \\(3 steps\\): "
                                          "PSNR [0-9.]+ dB, SSIM [-0-9.]+\n")),
             2);
    QCOMPARE(out.count("synthetic cartoon faces"), 2);
    QVERIFY2(out.contains("far below the 60.0 dB"), qPrintable(out));
    QVERIFY(QFile::exists(dir_.filePath("headless/mix_coarse_fine.png")));
  }

  void droppingFilesOnTheStripAddsSources() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    test::dropFiles(w.photoStrip()->viewport(), photos_.mid(0, 2));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 20000);
    QCOMPARE(w.photoStrip()->count(), 2);
    const auto& s = c.document()->sources()[1];
    QCOMPARE(s.aligned.size(), QSize(64, 64));
    QCOMPARE(s.reconstruction.size(), QSize(64, 64));
    QCOMPARE(s.latent.size(), 32);
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->result().isNull(), 20000);
  }

  void droppingAFileOnARangePanelAssignsThatRange() {
    StudioController c;
    load(c, 1);
    MainWindow w(&c);
    test::dropFiles(w.mixTab()->panel(Range::Fine), photos_.mid(1, 1));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 20000);
    QCOMPARE(c.document()->rangeWeight(Range::Fine, 1), 1.0);
    QCOMPARE(c.document()->rangeWeight(Range::Fine, 0), 0.0);
    QCOMPARE(c.document()->rangeWeight(Range::Coarse, 0), 1.0);
    QCOMPARE(c.document()->rangeWeight(Range::Coarse, 1), 0.0);
  }

  void rangesAbsentFromTheModelAreGreyedOut() {
    // A 32 px model (a run stopped before its 64 px stage) has no fine blocks: the fine panel says so
    // and takes no drops, the Sample tab cannot lock it, the Attributes and Morph tabs cannot choose
    // it; a 64 px model shows all three.
    StudioController c;
    std::shared_ptr<Automodulator> small(test::tinyModel(32, 3));
    c.setModel(small, "32 px");
    MainWindow w(&c);
    auto* fine = w.mixTab()->panel(Range::Fine);
    QVERIFY(!fine->isEnabled());
    QVERIFY(fine->toolTip().contains("not in this model"));
    QVERIFY(w.mixTab()->panel(Range::Intermediate)->isEnabled());
    QVERIFY(!w.sampleTab()->lockCheck(Range::Fine)->isEnabled());
    QVERIFY(w.sampleTab()->lockCheck(Range::Coarse)->isEnabled());
    QVERIFY(!w.attributeTab()->rangeCheck(Range::Fine)->isEnabled());
    QVERIFY(w.attributeTab()->rangeCheck(Range::Intermediate)->isEnabled());
    w.morphTab()->perRangeButton()->setChecked(true);
    QVERIFY(w.morphTab()->rangeCheck(Range::Coarse)->isEnabled());
    QVERIFY(!w.morphTab()->rangeCheck(Range::Fine)->isEnabled());
    c.setModel(test::expressiveTinyModel(), "tiny");
    QVERIFY(w.attributeTab()->rangeCheck(Range::Fine)->isEnabled());
    QVERIFY(w.morphTab()->rangeCheck(Range::Fine)->isEnabled());
    QVERIFY(fine->isEnabled());
    QVERIFY(w.sampleTab()->lockCheck(Range::Fine)->isEnabled());
    QVERIFY(!fine->toolTip().contains("not in this model"));
  }

  void sliderDragIsOneCoalescedDecodeAndOneUndoStep() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    const QImage before = c.render()->result();
    const int undo_steps = c.document()->undoStack()->count();
    QSignalSpy started(c.worker(), &InferenceWorker::decodeStarted);
    QSignalSpy results(c.render(), &RenderScheduler::resultReady);
    QSlider* slider = w.mixTab()->panel(Range::Fine)->slider(1);
    QVERIFY(slider);
    slider->setSliderDown(true);  // a drag: many values, one gesture
    for (int v = 10; v <= 100; v += 10) slider->setValue(v);
    slider->setSliderDown(false);
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 1, 20000);
    QTest::qWait(200);  // nothing else may follow
    QCOMPARE(started.count(), 1);
    QCOMPARE(results.count(), 1);
    QCOMPARE(c.document()->undoStack()->count(), undo_steps + 1);
    QCOMPARE(c.document()->rangeWeight(Range::Fine, 1), 1.0);
    QVERIFY(c.render()->result() != before);
    QVERIFY(w.mixTab()->resultView()->pixmap().isNull() == false);
  }

  void untickingPerBlockMixesByRangesAgain() {
    // A per-block choice inside a range shows the advanced view; unticking it goes back to mixing by
    // ranges (each range's blocks take its first block's weights) as one undo step, so that no
    // per-block choice stays active behind panels that show only a range's first block.
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    auto* doc = c.document();
    auto* advanced = w.mixTab()->advancedBox();
    QVERIFY(!advanced->isChecked());
    Range wide = Range::Coarse;
    for (Range r : allScales())
      if (rangeBlocks(r, doc->layout()).second > rangeBlocks(r, doc->layout()).first) wide = r;
    const auto [first, last] = rangeBlocks(wide, doc->layout());
    QVERIFY2(last > first, "the test model needs a range of two blocks or more");
    doc->setBlockSource(last, 1);  // the advanced view's choice for one block
    QVERIFY(doc->mixedPerBlock());
    QVERIFY(advanced->isChecked());
    const int steps = doc->undoStack()->count();
    advanced->setChecked(false);
    QVERIFY(!doc->mixedPerBlock());
    QCOMPARE(doc->undoStack()->count(), steps + 1);
    for (int b = first; b <= last; ++b) QCOMPARE(doc->mix().weights[b], doc->mix().weights[first]);
    QCOMPARE(doc->rangeWeight(wide, 1), 0.0);
    doc->undoStack()->undo();
    QVERIFY(doc->mixedPerBlock());
    QVERIFY(advanced->isChecked());
  }

  void aCoarseChangeSharpensStageByStageBeforeTheResult() {
    StudioController c;
    load(c, 2);
    QStringList order;
    connect(c.render(), &RenderScheduler::previewReady, this, [&] { order << "preview"; });
    connect(c.render(), &RenderScheduler::resultReady, this, [&] { order << "result"; });
    c.document()->assignRange(Range::Coarse, 1);
    QTRY_VERIFY_WITH_TIMEOUT(order.contains("result"), 20000);
    // Every stage recomputed from 16 px up sharpens on screen before the result: 16 and 32 px here.
    QCOMPARE(order, QStringList({"preview", "preview", "result"}));
    QCOMPARE(c.render()->preview().size(), c.render()->result().size());
    // A change of the fine block alone recomputes only the last block: no stage to show first.
    order.clear();
    c.document()->assignRange(Range::Fine, 1);
    QTRY_VERIFY_WITH_TIMEOUT(order.contains("result"), 20000);
    QCOMPARE(order, QStringList({"result"}));
  }

  void undoRedoRestoresTheImageBitForBit() {
    StudioController c;
    load(c, 2);
    const QImage a = c.render()->result();
    QSignalSpy results(c.render(), &RenderScheduler::resultReady);
    c.document()->assignRange(Range::Intermediate, 1);
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 1, 20000);
    const QImage b = c.render()->result();
    QVERIFY(a != b);
    c.document()->undoStack()->undo();
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 2, 20000);
    QCOMPARE(c.render()->result(), a);
    c.document()->undoStack()->redo();
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 3, 20000);
    QCOMPARE(c.render()->result(), b);
  }

  void projectSaveOpenRoundTrip() {
    auto model = test::expressiveTinyModel();
    StudioController c;
    load(c, 3);
    c.document()->assignRange(Range::Coarse, 2);
    c.document()->setRangeWeight(Range::Fine, 1, 0.5);
    QTRY_VERIFY_WITH_TIMEOUT(c.idle() && !c.render()->decodePending(), 20000);
    const QImage expected = c.render()->result();
    const QString path = dir_.filePath("project.json");
    QString error;
    QVERIFY2(c.project()->save(path, &error), qPrintable(error));

    StudioController d;
    d.setModel(test::expressiveTinyModel(), "tiny");
    QSignalSpy results(d.render(), &RenderScheduler::resultReady);
    QVERIFY2(d.project()->open(path, &error), qPrintable(error));
    QCOMPARE(d.document()->sources().size(), 3);
    for (int i = 0; i < 3; ++i) {
      QCOMPARE(d.document()->sources()[i].latent, c.document()->sources()[i].latent);
      QCOMPARE(d.document()->sources()[i].path, c.document()->sources()[i].path);
      QCOMPARE(d.document()->sources()[i].reconstruction, c.document()->sources()[i].reconstruction);
    }
    QCOMPARE(d.document()->mix(), c.document()->mix());
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 1, 20000);
    QCOMPARE(d.render()->result(), expected);

    QFile bad(dir_.filePath("bad.json"));
    QVERIFY(bad.open(QIODevice::WriteOnly));
    bad.write("{ not json");
    bad.close();
    QVERIFY(!d.project()->open(bad.fileName(), &error));
    QVERIFY(!error.isEmpty());
    QCOMPARE(d.document()->sources().size(), 3);  // the session is kept
  }

  void projectReplaysThroughAutomodApplyPixelForPixel() {
    // File → Save writes a recipe: `automod apply --recipe` re-encodes the photos, mixes them and
    // applies the attribute edit exactly as the editor did.
    const auto model_file = test::tmpPath(dir_, "replay.amod");
    saveModel(model_file, *test::expressiveTinyModel());
    StudioController c;
    QString error;
    QVERIFY2(c.openModel(QString::fromStdString(model_file.string()), &error), qPrintable(error));
    c.photos()->addPhotos(photos_.mid(0, 3));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 3, 20000);
    c.document()->assignRange(Range::Coarse, 2);
    c.document()->setRangeWeight(Range::Fine, 0, 0.3);
    c.document()->setRangeWeight(Range::Fine, 1, 0.7);
    AttributeEdit attribute;
    attribute.name = "test";
    attribute.resolution = 64;
    attribute.blocks = 5;
    attribute.scales = "2-3";
    attribute.vector = c.document()->sources()[1].latent;
    for (int i = 0; i < attribute.vector.size(); ++i) attribute.vector[i] -= c.document()->sources()[0].latent[i];
    attribute.strength = 0.8;
    c.document()->setAttribute(attribute, "attribute");
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->decodePending() && c.idle() && !c.render()->result().isNull(), 20000);
    const QImage expected = c.render()->result().convertToFormat(QImage::Format_RGB888);
    const QString project = dir_.filePath("replay-project.json");
    QVERIFY2(c.project()->save(project, &error), qPrintable(error));

    const auto out = test::tmpPath(dir_, "replayed.png");
    auto r = test::runAutomod({"apply", "--recipe", project.toStdString(), "-o", out.string(), "--threads", "1"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const QImage replayed = QImage(QString::fromStdString(out.string())).convertToFormat(QImage::Format_RGB888);
    QCOMPARE(replayed.size(), expected.size());
    QCOMPARE(replayed, expected);

    // The same project opens in the editor again, with its morph settings.
    MorphSettings morph;
    morph.a = 2;
    morph.b = 0;
    morph.moving = RangeFlag::Fine;
    morph.t = 0.25;
    c.document()->setMorph(morph);
    QVERIFY2(c.project()->save(project, &error), qPrintable(error));
    StudioController d;
    QVERIFY2(d.openModel(QString::fromStdString(model_file.string()), &error), qPrintable(error));
    QVERIFY2(d.project()->open(project, &error), qPrintable(error));
    QCOMPARE(d.document()->mix(), c.document()->mix());
    QCOMPARE(d.document()->attribute(), c.document()->attribute());
    QCOMPARE(d.document()->morph(), morph);
  }

  void aFirstFormatProjectStillOpens() {
    // Projects saved before projects were recipes: {"format": "automod-studio-project", ...}.
    StudioController c;
    load(c, 2);
    // Written by hand: the editor no longer writes this format.
    QJsonArray sources;
    for (const auto& src : c.document()->sources()) {
      QJsonArray latent;
      for (float v : src.latent) latent.append(double(v));
      sources.append(QJsonObject{{"path", src.path}, {"name", src.name}, {"from_photo", true}, {"face", src.face},
                                 {"latent", latent}});
    }
    QJsonArray blocks;
    for (const auto& row : c.document()->mix().weights) {
      QJsonArray r;
      for (double w : row) r.append(w);
      blocks.append(r);
    }
    const QJsonObject state{{"format", "automod-studio-project"}, {"version", 1}, {"sources", sources},
                            {"mix", QJsonObject{{"block_weights", blocks}}}};
    const QString path = dir_.filePath("old-project.json");
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QJsonDocument(state).toJson());
    f.close();
    StudioController d;
    d.setModel(test::expressiveTinyModel(), "tiny");
    QString error;
    QVERIFY2(d.project()->open(path, &error), qPrintable(error));
    QCOMPARE(d.document()->sources().size(), 2);
    QCOMPARE(d.document()->mix(), c.document()->mix());
    // Its photos are encoded by this model again: the same codes as when they were added.
    QTRY_VERIFY_WITH_TIMEOUT(d.idle(), 20000);
    for (int i = 0; i < 2; ++i) QCOMPARE(d.document()->sources()[i].latent, c.document()->sources()[i].latent);
  }

  void aBadPhotoShowsAnErrorAndKeepsTheSession() {
    StudioController c;
    load(c, 1);
    MainWindow w(&c);
    const QString bad = dir_.filePath("broken.jpg");
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("this is not a JPEG");
    f.close();
    QSignalSpy failed(c.photos(), &PhotoIntake::photoFailed);
    test::dropFiles(w.photoStrip()->viewport(), {bad});
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 20000);
    QCOMPARE(failed.at(0).at(0).toString(), bad);
    QVERIFY(!failed.at(0).at(1).toString().isEmpty());
    QVERIFY2(w.lastMessage().startsWith("Cannot load broken.jpg: "), qPrintable(w.lastMessage()));
    QCOMPARE(c.document()->sources().size(), 1);
    QVERIFY(!c.render()->result().isNull());
  }

  void sampleGalleryIsSeededAndKeepAddsASource() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    auto* tab = w.sampleTab();
    QSignalSpy ready(c.render(), &RenderScheduler::samplesReady);
    tab->seedSpin()->setValue(5);
    tab->generate();
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 20000);
    const auto first = c.render()->samples();
    QCOMPARE(first.size(), 8);
    QCOMPARE(tab->gallery()->count(), 8);
    QVERIFY(first[0] != first[1]);  // the unlocked ranges differ between samples
    tab->generate();
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 2, 20000);
    QVERIFY(c.render()->samples() == first);  // same seed, same gallery
    tab->reroll();
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 3, 20000);
    QCOMPARE(tab->seedSpin()->value(), 6);
    QVERIFY(c.render()->samples() != first);
    tab->gallery()->setCurrentRow(2);
    tab->keepSelected();
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 3, 20000);
    // Named for what it is (the gallery's seed and number), not after a temporary file.
    QCOMPARE(c.document()->sources()[2].name, QString("sample seed 6 · #2"));
  }

  void exportWritesThePng() {
    StudioController c;
    load(c, 1);
    const QString out = dir_.filePath("result.png");
    QString error;
    QVERIFY2(c.exporter()->exportResult(out, &error), qPrintable(error));
    QCOMPARE(QImage(out).convertToFormat(QImage::Format_RGB888), c.render()->result().convertToFormat(QImage::Format_RGB888));
  }

  void eventLoopNeverStallsOver100msWhileDecoding() {
    // A model with real widths, so each decode takes a noticeable time on the worker.
    torch::manual_seed(0);
    auto model = std::make_shared<Automodulator>(ModelConfig::fromTable("cpu-64", 64));
    StudioController c;
    c.setModel(model, "cpu-64");
    MainWindow w(&c);
    w.show();
    c.photos()->addPhotos(photos_.mid(0, 2));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 30000);
    QTRY_VERIFY_WITH_TIMEOUT(!c.worker()->isBusy(), 30000);

    QElapsedTimer clock;
    clock.start();
    qint64 last = 0, worst = 0;
    QTimer probe;
    probe.setInterval(5);
    connect(&probe, &QTimer::timeout, this, [&] {
      const qint64 now = clock.elapsed();
      worst = std::max(worst, now - last);
      last = now;
    });
    QSlider* slider = w.mixTab()->panel(Range::Coarse)->slider(1);
    QSignalSpy results(c.render(), &RenderScheduler::resultReady);
    const int decodes_before = c.worker()->decodesStarted();
    probe.start();
    last = clock.elapsed();
    slider->setSliderDown(true);
    for (int v = 0; v <= 100; v += 5) {  // a drag over about a second
      slider->setValue(v);
      QTest::qWait(40);
    }
    slider->setSliderDown(false);
    QTRY_VERIFY_WITH_TIMEOUT(!c.worker()->isBusy() && results.count() > 0, 30000);
    probe.stop();
    QVERIFY(c.worker()->decodesStarted() > decodes_before);
    qInfo("longest event-loop gap while dragging: %lld ms", static_cast<long long>(worst));
    // The editor's budget is 100 ms. The AddressSanitizer build runs the same GUI-thread work (image
    // conversion, painting) 2-3x slower: 36-63 ms gaps alone against 14-19 ms uninstrumented, 102 ms
    // beside another test on 2 cores. It gets three times the budget, as it gets three times the time.
#if defined(__SANITIZE_ADDRESS__)
    constexpr qint64 budget_ms = 300;
#else
    constexpr qint64 budget_ms = 100;
#endif
    QVERIFY2(worst < budget_ms, qPrintable(QString("the event loop stalled for %1 ms").arg(worst)));
  }
};

QTEST_MAIN(TestStudio)
#include "tst_studio.moc"
