// The Morph tab driven offscreen on a tiny model: the endpoints are the photos' decodes, per-range
// morphs keep the other ranges from A, scrubbing is one coalesced background decode, drops choose the
// photos, and the MP4 export writes every frame (or stops when cancelled).
#include "ui_testutil.h"

#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDropEvent>
#include <QFile>
#include <QMimeData>
#include <QProgressDialog>
#include <QPushButton>
#include <QRadioButton>
#include <QSignalSpy>
#include <QSlider>
#include <QSpinBox>
#include <QTest>
#include <QUrl>

#include "core/edit/interpolate.h"
#include "core/io/video.h"
#include "ui/main_window.h"
#include "ui/morph_tab.h"
#include "ui/photo_strip.h"
#include "ui/studio.h"

using namespace automod;
using namespace automod::ui;

namespace {
/// The largest difference of one 8-bit channel between two images of the same size.
int maxPixelDiff(const QImage& a, const QImage& b) {
  if (a.size() != b.size()) return 256;
  const QImage x = a.convertToFormat(QImage::Format_RGB888), y = b.convertToFormat(QImage::Format_RGB888);
  int worst = 0;
  for (int row = 0; row < x.height(); ++row) {
    const uchar* p = x.constScanLine(row);
    const uchar* q = y.constScanLine(row);
    for (int i = 0; i < x.width() * 3; ++i) worst = std::max(worst, std::abs(int(p[i]) - int(q[i])));
  }
  return worst;
}
}  // namespace

class TestMorphTab : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  QStringList photos_;

  void load(StudioController& c, int n) {
    c.setModel(test::expressiveTinyModel(), "tiny");
    c.photos()->addPhotos(photos_.mid(0, n));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), n, 60000);
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->decodePending() && !c.worker()->isBusy() && !c.render()->result().isNull(), 60000);
  }

  static void settle(StudioController& c) {
    QTRY_VERIFY_WITH_TIMEOUT(!c.morph()->pending() && !c.render()->decodePending() && !c.worker()->isBusy(), 60000);
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    QCoreApplication::setOrganizationName("automod-tests");  // keep the user's settings untouched
    photos_ = test::writeTestPhotos(dir_, 3, 80, 72, 40);
  }

  void endpointsAreTheDecodesOfAAndB() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    auto* tab = w.morphTab();
    QVERIFY(tab);
    QCOMPARE(tab->slotA()->source(), 0);
    QCOMPARE(tab->slotB()->source(), 1);
    const auto& s = c.document()->sources();
    QVERIFY(maxPixelDiff(s[0].reconstruction, s[1].reconstruction) > 20);  // the photos look different

    settle(c);  // the tab asked for t = 0 when it was built
    QCOMPARE(c.morph()->frame().size(), QSize(64, 64));
    QVERIFY2(maxPixelDiff(c.morph()->frame(), s[0].reconstruction) <= 1,
             qPrintable(QString::number(maxPixelDiff(c.morph()->frame(), s[0].reconstruction))));
    QVERIFY(!tab->frameView()->pixmap().isNull());

    tab->slider()->setValue(1000);
    settle(c);
    QVERIFY2(maxPixelDiff(c.morph()->frame(), s[1].reconstruction) <= 1,
             qPrintable(QString::number(maxPixelDiff(c.morph()->frame(), s[1].reconstruction))));

    tab->slider()->setValue(500);
    settle(c);
    QVERIFY(maxPixelDiff(c.morph()->frame(), s[0].reconstruction) > 1);
    QVERIFY(maxPixelDiff(c.morph()->frame(), s[1].reconstruction) > 1);
    QCOMPARE(c.document()->undoStack()->count(), 2);  // scrubbing does not edit the document
  }

  void scrubbingIsOneCoalescedBackgroundDecode() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    auto* tab = w.morphTab();
    settle(c);
    QSignalSpy started(c.worker(), &InferenceWorker::morphStarted);
    QSignalSpy mixes(c.worker(), &InferenceWorker::decodeStarted);
    QSignalSpy frames(c.morph(), &MorphController::frameReady);
    QSlider* slider = tab->slider();
    slider->setSliderDown(true);
    for (int v = 100; v <= 900; v += 100) slider->setValue(v);
    slider->setSliderDown(false);
    QVERIFY(c.morph()->pending());  // nothing was decoded on the GUI thread
    QTRY_COMPARE_WITH_TIMEOUT(frames.count(), 1, 20000);
    QTest::qWait(200);
    QCOMPARE(started.count(), 1);
    QCOMPARE(frames.count(), 1);
    QCOMPARE(frames.at(0).at(1).toDouble(), 0.9);
    QCOMPARE(mixes.count(), 0);  // the mix is not decoded again
  }

  void perRangeMorphKeepsTheOtherRangesFromA() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    auto* tab = w.morphTab();
    tab->perRangeButton()->setChecked(true);
    tab->rangeCheck(Range::Coarse)->setChecked(false);
    tab->rangeCheck(Range::Fine)->setChecked(true);
    QCOMPARE(tab->movingRanges(), Ranges(RangeFlag::Fine));
    tab->slider()->setValue(1000);
    settle(c);
    const QImage morph = c.morph()->frame();
    const auto& s = c.document()->sources();
    QVERIFY(maxPixelDiff(morph, s[0].reconstruction) > 1);
    QVERIFY(maxPixelDiff(morph, s[1].reconstruction) > 1);
    // The same as a mix with A everywhere but the fine range, which comes from B.
    QSignalSpy results(c.render(), &RenderScheduler::resultReady);
    c.document()->assignRange(Range::Fine, 1);
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 1, 20000);
    QVERIFY2(maxPixelDiff(morph, c.render()->result()) <= 2, qPrintable(QString::number(maxPixelDiff(morph, c.render()->result()))));
    // The range controls are only live in per-range mode.
    tab->globalButton()->setChecked(true);
    QVERIFY(!tab->rangeCheck(Range::Fine)->isEnabled());
    QCOMPARE(tab->movingRanges(), allRanges());
  }

  void slotsShowTheFirstTwoPhotosUntilChosen() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    auto* tab = w.morphTab();
    c.photos()->addPhotos(photos_.mid(0, 2));  // they arrive one by one
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 20000);
    QCOMPARE(tab->slotA()->source(), 0);
    QCOMPARE(tab->slotB()->source(), 1);
    tab->slotB()->setSource(0);  // the user's choice stays when more photos come
    c.photos()->addPhotos(photos_.mid(2, 1));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 3, 20000);
    QCOMPARE(tab->slotB()->source(), 0);
    QCOMPARE(tab->slotB()->combo()->count(), 3);
    settle(c);
  }

  void dropsChooseThePhotos() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    auto* tab = w.morphTab();
    QMimeData strip;
    strip.setData(kSourceMime, "0");
    test::sendDrop(tab->slotB(), strip);
    QCOMPARE(tab->slotB()->source(), 0);
    QMimeData files;
    files.setUrls({QUrl::fromLocalFile(photos_[2])});
    test::sendDrop(tab->slotA(), files);
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 3, 20000);  // joined the strip
    QTRY_COMPARE_WITH_TIMEOUT(tab->slotA()->source(), 2, 20000);
    QCOMPARE(tab->slotA()->combo()->count(), 3);
    QCOMPARE(tab->slotB()->source(), 0);
    tab->slider()->setValue(0);
    settle(c);
    QVERIFY(maxPixelDiff(c.morph()->frame(), c.document()->sources()[2].reconstruction) <= 1);
  }

  void exportWritesEveryFrame() {
    StudioController c;
    if (!c.morph()->canWriteVideo()) QSKIP("this build has no OpenCV video writer");
    load(c, 2);
    MainWindow w(&c);
    auto* tab = w.morphTab();
    settle(c);
    tab->framesSpin()->setValue(7);
    const QString path = dir_.filePath("morph.mp4");
    QSignalSpy progress(c.morph(), &MorphController::videoProgress);
    QSignalSpy finished(c.morph(), &MorphController::videoFinished);
    QVERIFY(tab->exportVideo(path));
    QVERIFY(tab->progressDialog());
    QVERIFY(c.morph()->videoRunning());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 20000);
    QVERIFY2(finished.at(0).at(0).toBool(), qPrintable(finished.at(0).at(4).toString()));
    QCOMPARE(finished.at(0).at(3).toInt(), 7);
    QCOMPARE(progress.count(), 7);
    QCOMPARE(progress.last().at(0).toInt(), 7);
    QCOMPARE(countVideoFrames(path.toStdString()), 7);  // read back with OpenCV
    QCOMPARE(w.lastMessage(), QString("Wrote morph.mp4 (7 frames)"));
    QTRY_VERIFY(!tab->progressDialog());
    QVERIFY(!c.morph()->videoRunning());
  }

  void cancellingStopsTheExport() {
    StudioController c;
    if (!c.morph()->canWriteVideo()) QSKIP("this build has no OpenCV video writer");
    load(c, 2);
    MainWindow w(&c);
    auto* tab = w.morphTab();
    settle(c);
    tab->framesSpin()->setValue(2000);
    // A video of the same name from before: a cancelled export leaves it as it was.
    const QString path = dir_.filePath("cancelled.mp4");
    {
      QFile before(path);
      QVERIFY(before.open(QIODevice::WriteOnly));
      before.write("the video from before");
    }
    QSignalSpy finished(c.morph(), &MorphController::videoFinished);
    QVERIFY(tab->exportVideo(path));
    auto* cancel = tab->progressDialog()->findChild<QPushButton*>();
    QVERIFY(cancel);
    cancel->click();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 20000);
    QVERIFY(!finished.at(0).at(0).toBool());
    QVERIFY(finished.at(0).at(1).toBool());  // cancelled
    {
      QFile after(path);
      QVERIFY(after.open(QIODevice::ReadOnly));
      QCOMPARE(after.readAll(), QByteArray("the video from before"));
    }
    QVERIFY(QDir(dir_.path()).entryList({"*writing*"}, QDir::Files | QDir::Hidden).isEmpty());
    QCOMPARE(w.lastMessage(), QString("Export of cancelled.mp4 cancelled"));
    // The tab is usable again.
    tab->slider()->setValue(1000);
    settle(c);
    QVERIFY(maxPixelDiff(c.morph()->frame(), c.document()->sources()[1].reconstruction) <= 1);
  }
};

QTEST_MAIN(TestMorphTab)
#include "tst_morph_tab.moc"
