// The Attributes tab driven offscreen on a tiny model: exemplar drops (files and strip photos), the
// attribute applied through the document (strength 0 is the unedited result, a drag is one undo step,
// undo restores bit for bit), scale restriction, attribute JSON files and projects.
#include "ui_testutil.h"

#include <QApplication>
#include <QCheckBox>
#include <QDropEvent>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLineEdit>
#include <QListWidget>
#include <QMimeData>
#include <QSignalSpy>
#include <QSlider>
#include <QTest>
#include <QUrl>

#include "core/edit/attribute.h"
#include "ui/attribute_tab.h"
#include "ui/main_window.h"
#include "ui/photo_strip.h"
#include "ui/studio.h"

using namespace automod;
using namespace automod::ui;

class TestAttributeTab : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  QStringList photos_;

  /// A controller on a tiny 64 px model (5 blocks: every range) with photo 0 loaded and decoded.
  void load(StudioController& c) {
    c.setModel(test::expressiveTinyModel(), "tiny");
    c.photos()->addPhotos(photos_.mid(0, 1));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 1, 20000);
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->decodePending() && !c.worker()->isBusy() && !c.render()->result().isNull(), 20000);
  }

  static void dropStripSource(QWidget* target, int index) {
    QMimeData mime;
    mime.setData(kSourceMime, QByteArray::number(index));
    test::sendDrop(target, mime);
  }

  /// Two positive and two negative exemplar files in the tab's wells, encoded.
  void fillWells(AttributeTab* tab) {
    test::dropFiles(tab->well(AttributeTab::Positive), photos_.mid(1, 2));
    test::dropFiles(tab->well(AttributeTab::Negative), photos_.mid(3, 2));
    QTRY_COMPARE_WITH_TIMEOUT(tab->well(AttributeTab::Positive)->count(), 2, 20000);
    QTRY_COMPARE_WITH_TIMEOUT(tab->well(AttributeTab::Negative)->count(), 2, 20000);
    QVERIFY2(tab->attribute().has_value(), qPrintable(tab->statusText()));
  }

  /// Waits for the decode the last document change scheduled.
  static void settle(StudioController& c) {
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->decodePending() && !c.worker()->isBusy(), 20000);
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    QCoreApplication::setOrganizationName("automod-tests");  // keep the user's settings untouched
    photos_ = test::writeTestPhotos(dir_, 5, 72, 72, 20);
  }

  void droppedExemplarsFillTheWells() {
    StudioController c;
    load(c);
    MainWindow w(&c);
    auto* tab = w.attributeTab();
    QVERIFY(tab);
    QCOMPARE(w.tabs()->tabText(w.tabs()->indexOf(tab)), QString("&Attributes"));
    auto* pos = tab->well(AttributeTab::Positive);
    auto* neg = tab->well(AttributeTab::Negative);
    test::dropFiles(pos, photos_.mid(1, 2));
    QTRY_COMPARE_WITH_TIMEOUT(pos->count(), 2, 20000);
    QCOMPARE(pos->list()->count(), 2);
    QCOMPARE(pos->exemplars()[0].latent.size(), 32);
    QCOMPARE(pos->exemplars()[1].path, photos_[2]);
    dropStripSource(neg, 0);  // a photo of the strip: encoded already
    QCOMPARE(neg->count(), 1);
    QCOMPARE(neg->exemplars()[0].latent, c.document()->sources()[0].latent);
    QCOMPARE(c.document()->sources().size(), 1);  // exemplars do not join the strip
    QVERIFY(!tab->attribute());                    // 2 + 1 is not enough
    QVERIFY2(tab->statusText().contains("at least 2"), qPrintable(tab->statusText()));
    test::dropFiles(neg, photos_.mid(3, 1));
    QTRY_COMPARE_WITH_TIMEOUT(neg->count(), 2, 20000);
    QVERIFY(tab->attribute());
    QCOMPARE(tab->attribute()->vector.size(), 32);
    QCOMPARE(tab->attribute()->scales, c.attributes()->scalesOf(RangeFlag::Intermediate | RangeFlag::Fine));
    QCOMPARE(tab->attribute()->positives, photos_.mid(1, 2));
    // v = mean(positives) − mean(negatives)
    const auto& p = pos->exemplars();
    const auto& n = neg->exemplars();
    for (int i : {0, 7, 31})
      QVERIFY(std::abs(tab->attribute()->vector[i] -
                       ((p[0].latent[i] + p[1].latent[i]) / 2 - (n[0].latent[i] + n[1].latent[i]) / 2)) < 1e-6);
    QCOMPARE(c.document()->undoStack()->count(), 1);  // building is not an edit; only the photo was
  }

  void strengthZeroIsUneditedAndUndoRestoresBitForBit() {
    StudioController c;
    load(c);
    MainWindow w(&c);
    auto* tab = w.attributeTab();
    fillWells(tab);
    const QImage unedited = c.render()->result();
    QSignalSpy results(c.render(), &RenderScheduler::resultReady);
    tab->strengthSlider()->setValue(0);
    QVERIFY(tab->apply());
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 1, 20000);
    QCOMPARE(c.render()->result(), unedited);  // strength 0: the unedited image exactly
    QVERIFY(!c.document()->attribute().isNull());

    const int steps = c.document()->undoStack()->count();
    QSignalSpy started(c.worker(), &InferenceWorker::decodeStarted);
    QSlider* slider = tab->strengthSlider();
    slider->setSliderDown(true);  // one drag: many values
    for (int v = 25; v <= 250; v += 25) slider->setValue(v);
    slider->setSliderDown(false);
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 2, 20000);
    QTest::qWait(200);
    QCOMPARE(started.count(), 1);  // coalesced into one decode
    QCOMPARE(c.document()->undoStack()->count(), steps + 1);
    QCOMPARE(c.document()->attribute().strength, 2.5);
    const QImage edited = c.render()->result();
    QVERIFY(edited != unedited);
    QVERIFY(!tab->resultView()->pixmap().isNull());

    c.document()->undoStack()->undo();  // the drag
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 3, 20000);
    QCOMPARE(c.render()->result(), unedited);
    QCOMPARE(slider->value(), 0);
    c.document()->undoStack()->undo();  // the apply
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 4, 20000);
    QVERIFY(c.document()->attribute().isNull());
    QCOMPARE(c.render()->result(), unedited);
    c.document()->undoStack()->redo();
    c.document()->undoStack()->redo();
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 5, 20000);
    QCOMPARE(c.render()->result(), edited);
    QCOMPARE(slider->value(), 250);

    tab->removeFromResult();
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 6, 20000);
    QCOMPARE(c.render()->result(), unedited);
  }

  void fineOnlyAttributeRedecodesOnlyTheFineBlocks() {
    StudioController c;
    load(c);
    MainWindow w(&c);
    auto* tab = w.attributeTab();
    tab->rangeCheck(Range::Coarse)->setChecked(false);
    tab->rangeCheck(Range::Intermediate)->setChecked(false);
    tab->rangeCheck(Range::Fine)->setChecked(true);
    fillWells(tab);
    QCOMPARE(tab->attribute()->scales, QString("4"));
    const QImage unedited = c.render()->result();
    QSignalSpy decoded(c.worker(), &InferenceWorker::decoded);
    QSignalSpy results(c.render(), &RenderScheduler::resultReady);
    tab->strengthSlider()->setValue(300);
    QVERIFY(tab->apply());
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 1, 20000);
    auto last = decoded.last().at(0).value<DecodeResult>();
    QVERIFY(last.final);
    QCOMPARE(last.firstBlock, 4);  // blocks 0-3 (coarse, intermediate) are reused as they were
    QVERIFY(c.render()->result() != unedited);

    // Widening the ranges is one more undo step and changes the coarse blocks too.
    const int steps = c.document()->undoStack()->count();
    tab->rangeCheck(Range::Coarse)->setChecked(true);
    QCOMPARE(c.document()->attribute().scales, QString("0-1,4"));
    QCOMPARE(c.document()->undoStack()->count(), steps + 1);
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 2, 20000);
    QCOMPARE(decoded.last().at(0).value<DecodeResult>().firstBlock, 0);
    c.document()->undoStack()->undo();
    QVERIFY(!tab->rangeCheck(Range::Coarse)->isChecked());
  }

  void attributeJsonRoundTrip() {
    StudioController c;
    load(c);
    MainWindow w(&c);
    auto* tab = w.attributeTab();
    tab->nameEdit()->setText("smile");
    fillWells(tab);
    const QString path = dir_.filePath("smile.json");
    QVERIFY(tab->saveAttribute(path));
    QCOMPARE(w.lastMessage(), QString("Saved smile.json"));
    // The CLI's format: core reads it back.
    const auto core = AttributeVector::load(path.toStdString());
    QCOMPARE(QString::fromStdString(core.name), QString("smile"));
    QCOMPARE(core.resolution, 64);
    QCOMPARE(QString::fromStdString(rangesToString(core.ranges)), tab->attribute()->scales);
    QCOMPARE(int(core.positives.size()), 2);

    StudioController d;
    load(d);
    MainWindow v(&d);
    auto* other = v.attributeTab();
    QVERIFY(other->loadAttribute(path));
    QVERIFY(other->attribute());
    QCOMPARE(other->attribute()->vector, tab->attribute()->vector);
    QCOMPARE(other->attribute()->scales, tab->attribute()->scales);
    QCOMPARE(other->attribute()->name, QString("smile"));
    QCOMPARE(other->attribute()->negatives, photos_.mid(3, 2));
    QCOMPARE(other->nameEdit()->text(), QString("smile"));
    QVERIFY(other->rangeCheck(Range::Fine)->isChecked());
    QVERIFY(!other->rangeCheck(Range::Coarse)->isChecked());

    // Applied at the same strength, both give the same image.
    QSignalSpy rc(c.render(), &RenderScheduler::resultReady), rd(d.render(), &RenderScheduler::resultReady);
    tab->strengthSlider()->setValue(-150);
    other->strengthSlider()->setValue(-150);
    QVERIFY(tab->apply());
    QVERIFY(other->apply());
    QTRY_COMPARE_WITH_TIMEOUT(rc.count(), 1, 20000);
    QTRY_COMPARE_WITH_TIMEOUT(rd.count(), 1, 20000);
    QCOMPARE(d.render()->result(), c.render()->result());

    // Bad files keep the attribute and say why.
    QFile bad(dir_.filePath("bad.json"));
    QVERIFY(bad.open(QIODevice::WriteOnly));
    bad.write("{ not json");
    bad.close();
    QVERIFY(!other->loadAttribute(bad.fileName()));
    QVERIFY2(v.lastMessage().startsWith("Cannot load bad.json: "), qPrintable(v.lastMessage()));
    QCOMPARE(other->attribute()->name, QString("smile"));
    AttributeVector small = core;
    small.resolution = 32;
    small.ranges = {BlockRange{0, 1}};
    small.save(dir_.filePath("small.json").toStdString());
    QVERIFY(!other->loadAttribute(dir_.filePath("small.json")));
    QVERIFY2(v.lastMessage().contains("32 px"), qPrintable(v.lastMessage()));
  }

  void projectKeepsTheAppliedAttribute() {
    StudioController c;
    load(c);
    MainWindow w(&c);
    auto* tab = w.attributeTab();
    fillWells(tab);
    // A project saved before any attribute has none (the editor section's, and no recipe attribute).
    const QString plain = dir_.filePath("plain.json");
    QString error;
    QVERIFY2(c.project()->save(plain, &error), qPrintable(error));
    QFile f(plain);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const auto saved = QJsonDocument::fromJson(f.readAll()).object();
    QVERIFY(!saved.value("editor").toObject().contains("attribute"));
    QVERIFY(saved.value("attributes").toArray().isEmpty());

    tab->strengthSlider()->setValue(125);
    QVERIFY(tab->apply());
    settle(c);
    QTest::qWait(50);
    const QImage expected = c.render()->result();
    const QString path = dir_.filePath("project.json");
    QVERIFY2(c.project()->save(path, &error), qPrintable(error));

    StudioController d;
    d.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow v(&d);
    QSignalSpy results(d.render(), &RenderScheduler::resultReady);
    QVERIFY(v.openProject(path));
    QCOMPARE(d.document()->attribute(), c.document()->attribute());
    QCOMPARE(d.document()->attribute().strength, 1.25);
    QTRY_COMPARE_WITH_TIMEOUT(results.count(), 1, 20000);
    QCOMPARE(d.render()->result(), expected);
    QCOMPARE(v.attributeTab()->strengthSlider()->value(), 125);

    QVERIFY(v.openProject(plain));
    QVERIFY(d.document()->attribute().isNull());
  }
};

QTEST_MAIN(TestAttributeTab)
#include "tst_attribute_tab.moc"
