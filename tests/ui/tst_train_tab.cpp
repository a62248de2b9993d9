// The Train tab runs the `tiny` preset in a worker: progress and the loss chart move, pause and
// resume work, stop checkpoints and ends cleanly, and the run can be opened in the editor.
#include "testutil.h"

#include <QComboBox>
#include <QFile>
#include <QFileInfo>
#include <QLineEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTest>

#include "ui/train_tab.h"

using namespace automod;
using namespace automod::ui;

class TestTrainTab : public QObject {
  Q_OBJECT
  QTemporaryDir dir_;

 private Q_SLOTS:
  void initTestCase() {
    // A private data cache: a cache left by an earlier run makes training start instantly and the
    // run can finish before the checks below look at it.
    QVERIFY(dir_.isValid());
    qputenv("XDG_CACHE_HOME", dir_.filePath("cache").toUtf8());
    QStandardPaths::setTestModeEnabled(true);  // proposed run folders go to the test location
  }

  void tinyPresetRunsPausesResumesAndStopsCleanly() {
    QVERIFY(dir_.isValid());
    const auto data = test::tmpPath(dir_, "images");
    std::filesystem::create_directories(data);
    for (int i = 0; i < 40; ++i) test::writeTestImage(data / ("img" + std::to_string(i) + ".png"), 24, 24, i);

    TrainTab tab;
    QVERIFY2(tab.presetCombo()->findText("tiny") >= 0, "the tiny preset is installed");
    tab.presetCombo()->setCurrentIndex(tab.presetCombo()->findText("tiny"));
    tab.dataCombo()->setCurrentIndex(tab.dataCombo()->findData(TrainRequest::Folder));
    tab.folderEdit()->setText(QString::fromStdString(data.string()));
    const QString run = dir_.filePath("run");
    tab.outputEdit()->setText(run);

    auto* c = tab.controller();
    QSignalSpy progress(c, &TrainController::progress);
    QSignalSpy finished(c, &TrainController::finished);
    QTest::mouseClick(tab.startButton(), Qt::LeftButton);
    QVERIFY(c->isActive());
    QVERIFY(!tab.startButton()->isEnabled());
    QTRY_VERIFY_WITH_TIMEOUT(progress.count() >= 2, 30000);
    QTRY_VERIFY_WITH_TIMEOUT(tab.pauseButton()->isEnabled(), 5000);
    // The spy counts progress in the training thread; the chart gets it through the event loop.
    QTRY_VERIFY_WITH_TIMEOUT(tab.lossPoints() >= 1, 5000);

    QTest::mouseClick(tab.pauseButton(), Qt::LeftButton);
    QCOMPARE(c->state(), TrainController::Paused);
    QTest::qWait(300);  // let an in-flight iteration land
    const int paused_at = progress.count();
    QTest::qWait(400);
    QCOMPARE(progress.count(), paused_at);  // nothing moves while paused
    QTest::mouseClick(tab.pauseButton(), Qt::LeftButton);
    QCOMPARE(c->state(), TrainController::Running);
    QTRY_VERIFY_WITH_TIMEOUT(progress.count() > paused_at, 30000);

    QTest::mouseClick(tab.stopButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 30000);
    QCOMPARE(c->state(), TrainController::Stopped);
    QVERIFY2(QFileInfo::exists(c->latestModel()), qPrintable(c->latestModel()));
    QVERIFY(tab.openButton()->isEnabled());
    QSignalSpy open(&tab, &TrainTab::openModelRequested);
    QTest::mouseClick(tab.openButton(), Qt::LeftButton);
    QCOMPARE(open.count(), 1);
    QCOMPARE(open.at(0).at(0).toString(), c->latestModel());
  }

  void aSecondRunNeverOverwritesTheFirst() {
    // The first test left a stopped run in dir_/run. A new run into that folder is refused unless the
    // user resumes it; choosing a new folder leaves the first run's checkpoint untouched.
    const QString run = dir_.filePath("run");
    QVERIFY(QFileInfo::exists(run + "/latest.amod"));
    auto read = [](const QString& path) {
      QFile f(path);
      return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
    };
    const QByteArray before = read(run + "/latest.amod");

    TrainTab tab;
    tab.presetCombo()->setCurrentIndex(tab.presetCombo()->findText("tiny"));
    tab.dataCombo()->setCurrentIndex(tab.dataCombo()->findData(TrainRequest::Folder));
    tab.folderEdit()->setText(dir_.filePath("images"));
    // Every run is proposed a folder of its own, named from the preset and the data.
    QVERIFY2(tab.outputEdit()->text().contains("tiny-images-"), qPrintable(tab.outputEdit()->text()));
    tab.maxImagesSpin()->setValue(64);
    tab.outputEdit()->setText(run);

    tab.setExistingRunChoice(TrainTab::ExistingRun::Cancel);
    QTest::mouseClick(tab.startButton(), Qt::LeftButton);
    QVERIFY(!tab.controller()->isActive());

    tab.setExistingRunChoice(TrainTab::ExistingRun::NewFolder);
    QSignalSpy finished(tab.controller(), &TrainController::finished);
    QTest::mouseClick(tab.startButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
    QCOMPARE(tab.controller()->state(), TrainController::Finished);
    const QString latest = tab.controller()->latestModel();
    QVERIFY2(!latest.startsWith(run + "/"), qPrintable(latest));
    QVERIFY(QFileInfo::exists(latest));
    QCOMPARE(read(run + "/latest.amod"), before);
    // The field proposes yet another folder for the next run.
    QVERIFY(tab.outputEdit()->text() != QFileInfo(latest).absolutePath());
  }

  void aMissingFolderFailsWithAReason() {
    TrainTab tab;
    tab.dataCombo()->setCurrentIndex(tab.dataCombo()->findData(TrainRequest::Folder));
    tab.folderEdit()->setText(dir_.filePath("does-not-exist"));
    tab.outputEdit()->setText(dir_.filePath("run2"));
    QSignalSpy finished(tab.controller(), &TrainController::finished);
    QTest::mouseClick(tab.startButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 30000);
    QCOMPARE(tab.controller()->state(), TrainController::Failed);
    QVERIFY(!tab.controller()->errorString().isEmpty());
    QVERIFY(tab.startButton()->isEnabled());
  }
};

QTEST_MAIN(TestTrainTab)
#include "tst_train_tab.moc"
