// What survives a model change in the editor (core's EditState rebound to the new model): the mix
// weights, the attribute (rebuilt from its exemplars), the project's name and file; the sample
// gallery is never the old model's; a kept sample keeps its codes bit for bit; a project opens the
// model it was made with; refinement runs in the background, undoably, and a project keeps its result.
#include <torch/torch.h>

#include <QListWidget>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include "core/io/model_file.h"
#include "core/edit/edit_state.h"
#include "core/model/automodulator.h"
#include "ui/main_window.h"
#include "ui/sample_tab.h"
#include "ui/studio.h"
#include "ui_testutil.h"

using namespace automod;
using namespace automod::ui;

class TestModelChange : public QObject {
  Q_OBJECT
  QTemporaryDir dir_;
  QStringList photos_;
  QString model_a_, model_b_;

  static void settle(StudioController& c) {
    QTRY_VERIFY_WITH_TIMEOUT(c.idle() && c.photos()->pendingPhotos() == 0 && !c.render()->decodePending(), 30000);
  }

  /// Model A (from its file), `n` photos, settled.
  void load(StudioController& c, int n) {
    QString error;
    QVERIFY2(c.openModel(model_a_, &error), qPrintable(error));
    c.photos()->setFaceMode(PhotoIntake::FaceMode::Largest);
    c.photos()->addPhotos(photos_.mid(0, n));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), n, 30000);
    settle(c);
  }

  static AttributeEdit attributeFrom(StudioController& c, const QStringList& pos, const QStringList& neg) {
    QVector<QVector<float>> p, n;
    QSignalSpy encoded(c.photos(), &PhotoIntake::exemplarEncoded);
    c.photos()->encodeExemplars(pos, 0);
    c.photos()->encodeExemplars(neg, 1);
    [&] { QTRY_COMPARE_WITH_TIMEOUT(encoded.count(), pos.size() + neg.size(), 30000); }();
    for (const auto& args : encoded) {
      const auto s = args.at(1).value<Source>();
      (args.at(0).toInt() == 0 ? p : n) << s.latent;
    }
    QString error;
    auto a = c.attributes()->build(p, n, "2-3", "test attribute", &error);
    [&] { QVERIFY2(a.has_value(), qPrintable(error)); }();
    a->positives = pos;
    a->negatives = neg;
    a->strength = 1.5;
    return *a;
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    QStandardPaths::setTestModeEnabled(true);  // the model library's folder, recent files: not the user's
    QCoreApplication::setOrganizationName("automod-tests");
    photos_ = test::writeTestPhotos(dir_, 6, 80, 72, 40);
    auto a = test::expressiveTinyModel();
    std::shared_ptr<Automodulator> b(test::tinyModel(64, 9));
    test::makeExpressive(*b);
    model_a_ = dir_.filePath("model-a.amod");
    model_b_ = dir_.filePath("model-b.amod");
    saveModel(model_a_.toStdString(), *a);
    saveModel(model_b_.toStdString(), *b);
  }

  void aModelChangeKeepsTheMixTheAttributeAndTheProject() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    auto* doc = c.document();
    doc->assignRange(Range::Fine, 1);
    doc->setRangeWeight(Range::Coarse, 1, 0.4);
    const AttributeEdit attribute = attributeFrom(c, photos_.mid(2, 2), photos_.mid(4, 2));
    doc->setAttribute(attribute, "attribute");
    settle(c);
    const QString project = dir_.filePath("kept.json");
    QVERIFY(w.saveProject(project));
    const MixSettings mix = doc->mix();
    const QVector<float> old_code = doc->sources()[0].latent;
    const QImage old_result = c.render()->result();

    QSignalSpy finished(&c, &StudioController::reencodeFinished);
    QVERIFY(w.openModelFile(model_b_));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 30000);
    settle(c);
    QCOMPARE(finished.at(0).at(0).toInt(), 2);  // both photos back, none dropped
    QCOMPARE(finished.at(0).at(1).toInt(), 0);
    QCOMPARE(doc->sources().size(), 2);
    QVERIFY(doc->sources()[0].latent != old_code);  // encoded by the new model
    QCOMPARE(doc->mix(), mix);
    const auto& rebuilt = doc->attribute();
    QVERIFY(!rebuilt.isNull());
    QCOMPARE(rebuilt.name, attribute.name);
    QCOMPARE(rebuilt.strength, attribute.strength);
    QCOMPARE(rebuilt.scales, attribute.scales);
    QCOMPARE(rebuilt.positives, attribute.positives);
    QVERIFY(rebuilt.vector != attribute.vector);  // the new model's direction
    QCOMPARE(doc->filePath(), project);
    QVERIFY(w.windowTitle().startsWith("kept.json"));
    QVERIFY(doc->isModified());
    QVERIFY(!c.render()->result().isNull());
    QVERIFY(c.render()->result() != old_result);
  }

  void theGalleryIsNeverTheOldModels() {
    StudioController c;
    load(c, 2);
    QSignalSpy ready(c.render(), &RenderScheduler::samplesReady);
    QSignalSpy cleared(c.render(), &RenderScheduler::samplesCleared);
    c.render()->requestSamples(RangeFlag::Coarse, 11, 4);
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 30000);
    const auto old_gallery = c.render()->samples();
    QString error;
    QVERIFY2(c.openModel(model_b_, &error), qPrintable(error));
    // At once: no sample of the old model is shown or can be kept.
    QCOMPARE(cleared.count(), 1);
    QVERIFY(c.render()->samples().isEmpty());
    QVERIFY(!c.render()->keepSample(0, "stale"));
    // Then the same gallery settings, drawn by the new model.
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 2, 30000);
    QCOMPARE(ready.at(1).at(1).value<quint64>(), quint64(11));
    QCOMPARE(c.render()->samples().size(), 4);
    QVERIFY(c.render()->samples()[0] != old_gallery[0]);
  }

  void keepAsSourceKeepsTheSamplesCodesBitForBit() {
    StudioController c;
    load(c, 1);
    MainWindow w(&c);
    auto* tab = w.sampleTab();
    QSignalSpy ready(c.render(), &RenderScheduler::samplesReady);
    tab->seedSpin()->setValue(3);
    tab->generate();
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 30000);
    const QImage sample = c.render()->samples()[2];
    // The gallery's codes, as core draws them for the state it was drawn from.
    const LatentPlan drawn = c.document()->state().galleryPlan(*c.model(), blockRanges(tab->lockedRanges(), c.document()->layout()), 3, 8);
    tab->gallery()->setCurrentRow(2);
    tab->keepSelected();
    QCOMPARE(c.document()->sources().size(), 2);
    const auto& kept = c.document()->sources()[1];
    QCOMPARE(kept.name, QString("sample seed 3 · #2"));
    QVERIFY(kept.path.isEmpty());
    QVERIFY(!kept.note.contains("small"));
    // Its codes are the sample's, bit for bit (not its picture encoded again)...
    const auto& codes = c.document()->state().sources[1].codes;
    QCOMPARE(codes.size(), drawn.size());
    for (int b = 0; b < codes.size(); ++b) QVERIFY(torch::equal(codes[b], drawn[b].narrow(0, 2, 1).cpu()));
    // ...so driving every block with it draws the sample again (up to the rounding of a batch of
    // one against the gallery's batch of four in the convolutions: under one level in 255).
    c.document()->assignRange(Range::Coarse, 1);
    c.document()->assignRange(Range::Intermediate, 1);
    c.document()->assignRange(Range::Fine, 1);
    settle(c);
    QVERIFY2(test::meanAbsDifference(c.render()->result(), sample) < 0.5,
             qPrintable(QString::number(test::meanAbsDifference(c.render()->result(), sample))));
    // One undo step removes it again.
    for (int i = 0; i < 4; ++i) c.document()->undoStack()->undo();
    QCOMPARE(c.document()->sources().size(), 1);
  }

  void aProjectOpensTheModelItWasMadeWith() {
    StudioController c;
    load(c, 2);
    c.document()->assignRange(Range::Intermediate, 1);
    settle(c);
    const QString project = dir_.filePath("made-with-a.json");
    QString error;
    QVERIFY2(c.project()->save(project, &error), qPrintable(error));

    StudioController d;
    QVERIFY2(d.openModel(model_b_, &error), qPrintable(error));
    QVERIFY2(d.project()->open(project, &error), qPrintable(error));
    QCOMPARE(QFileInfo(d.modelPath()).fileName(), QString("model-a.amod"));
    settle(d);
    QCOMPARE(d.document()->sources().size(), 2);
    for (int i = 0; i < 2; ++i) {
      QCOMPARE(d.document()->sources()[i].latent, c.document()->sources()[i].latent);
      QCOMPARE(d.document()->sources()[i].psnr, c.document()->sources()[i].psnr);  // the tiles keep their PSNR
    }
    QCOMPARE(d.render()->result(), c.render()->result());
    QVERIFY(d.project()->recentProjects().contains(QFileInfo(project).absoluteFilePath()));

    // Its model moved away: the user is asked, and may keep the current model.
    const QString moved = dir_.filePath("model-a-moved.amod");
    QVERIFY(QFile::copy(model_a_, moved));
    QString asked;
    StudioController e;
    QVERIFY2(e.openModel(model_b_, &error), qPrintable(error));
    e.project()->setModelLocator([&](const QString& missing) {
      asked = missing;
      return moved;
    });
    QVERIFY(QFile::rename(model_a_, dir_.filePath("model-a.away")));
    const bool opened = e.project()->open(project, &error);
    QVERIFY(QFile::rename(dir_.filePath("model-a.away"), model_a_));
    QVERIFY2(opened, qPrintable(error));
    QCOMPARE(QFileInfo(asked).fileName(), QString("model-a.amod"));
    QCOMPARE(e.modelPath(), moved);
  }

  void refineIsOneUndoStepAndAProjectKeepsItsResult() {
    StudioController c;
    load(c, 1);
    auto* doc = c.document();
    const Source before = doc->sources()[0];
    const QImage result_before = c.render()->result();
    QSignalSpy done(c.photos(), &PhotoIntake::refineFinished);
    QString error;
    QVERIFY2(c.photos()->refine(0, 30, &error), qPrintable(error));
    QVERIFY(c.photos()->refining(before.id));
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 60000);
    QVERIFY2(done.at(0).at(1).toBool(), qPrintable(done.at(0).at(2).toString()));
    settle(c);
    const Source after = doc->sources()[0];
    QCOMPARE(after.refineSteps, 30);
    QVERIFY2(after.psnr > before.psnr, qPrintable(QString("%1 -> %2 dB").arg(before.psnr).arg(after.psnr)));
    const QImage refined_result = c.render()->result();
    QVERIFY(refined_result != result_before);
    doc->undoStack()->undo();
    settle(c);
    QCOMPARE(doc->sources()[0].refineSteps, 0);
    QCOMPARE(doc->sources()[0].psnr, before.psnr);
    QCOMPARE(c.render()->result(), result_before);
    doc->undoStack()->redo();
    settle(c);
    QCOMPARE(doc->sources()[0].refineSteps, 30);
    QCOMPARE(c.render()->result(), refined_result);

    // A project keeps the refined codes: it reopens to the same image without refining again.
    const QString project = dir_.filePath("refined.json");
    QVERIFY2(c.project()->save(project, &error), qPrintable(error));
    StudioController d;
    QSignalSpy refining(d.photos(), &PhotoIntake::refineProgressChanged);
    QVERIFY2(d.project()->open(project, &error), qPrintable(error));
    settle(d);
    QCOMPARE(refining.count(), 0);
    QCOMPARE(d.document()->sources()[0].refineSteps, 30);
    QCOMPARE(d.document()->sources()[0].psnr, after.psnr);
    QCOMPARE(d.render()->result(), refined_result);
  }

  void aRunningRefinementCanBeCancelled() {
    StudioController c;
    load(c, 1);
    const Source before = c.document()->sources()[0];
    QSignalSpy done(c.photos(), &PhotoIntake::refineFinished);
    QSignalSpy progress(c.photos(), &PhotoIntake::refineProgressChanged);
    QVERIFY(c.photos()->refine(0, 100000));
    QTRY_VERIFY_WITH_TIMEOUT(progress.count() >= 2, 30000);  // it runs
    c.photos()->cancelRefine(0);
    QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, 30000);
    QVERIFY(!done.at(0).at(1).toBool());
    QCOMPARE(done.at(0).at(2).toString(), QString("cancelled"));
    QVERIFY(!c.photos()->refining(before.id));
    QCOMPARE(c.document()->sources()[0].latent, before.latent);
    QCOMPARE(c.document()->sources()[0].refineSteps, 0);
    QCOMPARE(c.document()->undoStack()->count(), 1);  // only the photo's own step
  }

  void aSliderMoveIsShownWhileARefinementRuns() {
    // The refinement yields to interactive jobs between its steps: a decode does not wait for it.
    StudioController c;
    load(c, 2);
    QVERIFY(c.photos()->refine(0, 100000));
    QSignalSpy results(c.render(), &RenderScheduler::resultReady);
    c.document()->assignRange(Range::Fine, 1);
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 1, 30000);
    QVERIFY(c.photos()->refining(c.document()->sources()[0].id));
    c.photos()->cancelRefine(0);
    QTRY_VERIFY_WITH_TIMEOUT(!c.photos()->refining(c.document()->sources()[0].id), 30000);
  }
};

QTEST_MAIN(TestModelChange)
#include "tst_model_change.moc"
