// A long editor session, scripted as a user does it: photos, mixing, an attribute, a gallery and a
// kept sample, a morph, a refinement, a project, model switches (one of them an import of an
// authors' checkpoint when the reference fixtures are there), a short training run opened in the
// editor, the project opened again, and quitting. Every step must leave the editor usable; built
// with AddressSanitizer + UBSan (the `asan` label) it must also run without a report, which is how the
// heap corruption once seen at Quit after such a session is kept away.
#include <torch/torch.h>

#include <QComboBox>
#include <QLineEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>

#include <filesystem>

#include "core/io/model_file.h"
#include "core/model/automodulator.h"
#include "ui/main_window.h"
#include "ui/model_library.h"
#include "ui/morph_tab.h"
#include "ui/sample_tab.h"
#include "ui/studio.h"
#include "ui/train_controller.h"
#include "ui/train_tab.h"
#include "ui_testutil.h"

using namespace automod;
using namespace automod::ui;

class TestLongSession : public QObject {
  Q_OBJECT
  QTemporaryDir dir_;

  static void settle(StudioController& c, int ms = 60000) {
    QTRY_VERIFY_WITH_TIMEOUT(c.idle() && c.photos()->pendingPhotos() == 0 && !c.render()->decodePending() &&
                                 !c.morph()->pending(),
                             ms);
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName("automod-tests");
    qputenv("XDG_CACHE_HOME", dir_.filePath("cache").toUtf8());
  }

  void aLongSessionEndsCleanly() {
    const QStringList photos = test::writeTestPhotos(dir_, 6, 80, 72, 70);
    const QString model_a = dir_.filePath("a.amod"), model_b = dir_.filePath("b.amod");
    saveModel(model_a.toStdString(), *test::expressiveTinyModel());
    {
      std::shared_ptr<Automodulator> b(test::tinyModel(32, 5));
      test::makeExpressive(*b);
      saveModel(model_b.toStdString(), *b);
    }
    auto* c = new StudioController;
    auto* w = new MainWindow(c);
    w->setUnsavedChangesAnswer([](const QString&) { return QMessageBox::Discard; });
    w->show();
    c->photos()->setFaceMode(PhotoIntake::FaceMode::Largest);

    // Photos, a mix, an attribute, a gallery with a kept sample, a morph frame, a refinement.
    QVERIFY(w->openModelFile(model_a));
    c->photos()->addPhotos(photos.mid(0, 3));
    QTRY_COMPARE_WITH_TIMEOUT(c->document()->sources().size(), 3, 60000);
    settle(*c);
    c->document()->assignRange(Range::Coarse, 1);
    c->document()->setRangeWeight(Range::Fine, 2, 0.6);
    QSignalSpy exemplars(c->photos(), &PhotoIntake::exemplarEncoded);
    c->photos()->encodeExemplars(photos.mid(3, 2), 0);
    c->photos()->encodeExemplars(photos.mid(0, 2), 1);
    QTRY_COMPARE_WITH_TIMEOUT(exemplars.count(), 4, 60000);
    QVector<QVector<float>> pos, neg;
    for (const auto& args : exemplars) (args.at(0).toInt() == 0 ? pos : neg) << args.at(1).value<Source>().latent;
    auto attribute = c->attributes()->build(pos, neg, "0-1", "session");
    QVERIFY(attribute);
    attribute->positives = photos.mid(3, 2);
    attribute->negatives = photos.mid(0, 2);
    attribute->strength = 1.0;
    c->document()->setAttribute(*attribute, "attribute");
    QSignalSpy gallery(c->render(), &RenderScheduler::samplesReady);
    w->sampleTab()->generate();
    QTRY_COMPARE_WITH_TIMEOUT(gallery.count(), 1, 60000);
    QVERIFY(c->render()->keepSample(1, "kept"));
    c->morph()->requestFrame(0, 1, allRanges(), 0.5);
    QVERIFY(c->photos()->refine(0, 5));
    settle(*c);
    QTRY_VERIFY_WITH_TIMEOUT(!c->photos()->refining(c->document()->sources()[0].id), 60000);
    settle(*c);
    QCOMPARE(c->document()->sources()[0].refineSteps, 5);
    const QString project = dir_.filePath("session.json");
    QVERIFY(w->saveProject(project));

    // Another model (32 px: the fine blocks go), then an authors' checkpoint when there is one.
    QVERIFY(w->openModelFile(model_b));
    settle(*c);
    QCOMPARE(c->document()->sources().size(), 4);
    const QString reference = qEnvironmentVariable("AMOD_REFERENCE_DIR", QString(AUTOMOD_SOURCE_DIR) + "/../shared/reference");
    const QString checkpoint = reference + "/small-arch.pth";
    if (QFileInfo(checkpoint).isFile()) {
      // It is not one of the released models: the editor asks how its photos were aligned.
      QTimer::singleShot(200, w, [w] {
        if (auto* d = w->findChild<AlignmentDialog*>()) {
          d->choose("ffhq");
          d->accept();
        }
      });
      w->importCheckpoint(checkpoint);
      QTRY_VERIFY_WITH_TIMEOUT(!w->importRunning(), 120000);
      settle(*c, 120000);
      QCOMPARE(c->modelResolution(), 256);
    }

    // A short training run, opened in the editor.
    const auto data = test::tmpPath(dir_, "train");
    std::filesystem::create_directories(data);
    for (int i = 0; i < 24; ++i) test::writeTestImage(data / ("img" + std::to_string(i) + ".png"), 24, 24, i);
    auto* tab = w->trainTab();
    tab->presetCombo()->setCurrentIndex(tab->presetCombo()->findText("tiny"));
    tab->dataCombo()->setCurrentIndex(tab->dataCombo()->findData(TrainRequest::Folder));
    tab->folderEdit()->setText(QString::fromStdString(data.string()));
    tab->maxImagesSpin()->setValue(48);
    tab->outputEdit()->setText(dir_.filePath("run"));
    QSignalSpy trained(tab->controller(), &TrainController::finished);
    QTest::mouseClick(tab->startButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(trained.count(), 1, 120000);
    QTest::mouseClick(tab->openButton(), Qt::LeftButton);
    settle(*c);
    QCOMPARE(c->modelPath(), tab->controller()->latestModel());

    // The project again: its model (a.amod) opens with it, the refinement comes back without running.
    QVERIFY(w->openProject(project));
    settle(*c);
    QCOMPARE(QFileInfo(c->modelPath()).fileName(), QString("a.amod"));
    QCOMPARE(c->document()->sources().size(), 4);
    QCOMPARE(c->document()->sources()[0].refineSteps, 5);
    QVERIFY(!c->render()->result().isNull());

    // Quit (Discard), while a refinement and a gallery are still running.
    QVERIFY(c->photos()->refine(1, 100000));
    w->sampleTab()->generate();
    QVERIFY(w->close());
    delete w;
    delete c;
  }
};

QTEST_MAIN(TestLongSession)
#include "tst_long_session.moc"
