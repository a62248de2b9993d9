// The main window as a desktop user meets it: nothing replaces unsaved work without asking, photos
// can be removed (undoably), exports write the format and size chosen, Copy answers, dialogs start
// in a sensible folder, the result follows the window's size, and nothing is cut off at the default
// size or at 1024 × 700.
#include "ui_testutil.h"

#include <QAbstractButton>
#include <QClipboard>
#include <QImageReader>
#include <QAbstractSpinBox>
#include <QComboBox>
#include <QDir>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTabWidget>
#include <QMessageBox>
#include <QTest>
#include <QToolButton>

#include "core/io/model_file.h"
#include "core/model/automodulator.h"
#include "ui/file_dialogs.h"
#include "ui/main_window.h"
#include "ui/mix_tab.h"
#include "ui/model_info_dialog.h"
#include "ui/photo_strip.h"
#include "ui/studio.h"

using namespace automod;
using namespace automod::ui;

class TestMainWindow : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  QStringList photos_;

  void load(StudioController& c, int n) {
    c.setModel(test::expressiveTinyModel(), "tiny");
    c.photos()->setFaceMode(PhotoIntake::FaceMode::Largest);
    c.photos()->addPhotos(photos_.mid(0, n));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), n, 20000);
    settle(c);
  }
  static void settle(StudioController& c) {
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->decodePending() && !c.worker()->isBusy() && !c.render()->result().isNull(), 20000);
  }
  /// Answers every unsaved-changes question with `answer` and records the questions.
  static void answer(MainWindow& w, QMessageBox::StandardButton a, QStringList* asked,
                     std::function<QString()> saveAs = {}) {
    w.setUnsavedChangesAnswer(
        [a, asked](const QString& q) {
          *asked << q;
          return a;
        },
        std::move(saveAs));
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    QCoreApplication::setOrganizationName("automod-tests");
    QSettings().clear();
    photos_ = test::writeTestPhotos(dir_, 3, 80, 72, 30);
  }

  void newProjectAndQuitAskBeforeLosingWork() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    QVERIFY(c.document()->isModified());
    QStringList asked;
    answer(w, QMessageBox::Cancel, &asked);
    QVERIFY(!w.newProject());
    QCOMPARE(asked.size(), 1);
    QVERIFY2(asked[0].contains("Save the changes to the untitled project"), qPrintable(asked[0]));
    QCOMPARE(c.document()->sources().size(), 2);  // Cancel keeps everything
    w.show();
    QVERIFY(!w.close());  // Quit is refused too
    QCOMPARE(asked.size(), 2);
    QVERIFY(asked[1].contains("Quitting"));
    answer(w, QMessageBox::Discard, &asked);
    QVERIFY(w.newProject());
    QCOMPARE(c.document()->sources().size(), 0);
    QVERIFY(!c.document()->isModified());
    QCOMPARE(c.document()->undoStack()->count(), 0);
    QVERIFY(w.close());  // nothing left to lose: no question
    QCOMPARE(asked.size(), 3);
  }

  void saveAnswerSavesBeforeOpeningAnotherProject() {
    const QString first = dir_.filePath("first.json"), second = dir_.filePath("second.json");
    {  // a project with one photo to open later
      StudioController c;
      load(c, 1);
      QString error;
      QVERIFY2(c.project()->save(second, &error), qPrintable(error));
    }
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    QStringList asked;
    answer(w, QMessageBox::Save, &asked, [first] { return first; });
    QVERIFY(w.openProject(second));
    QCOMPARE(asked.size(), 1);
    QVERIFY(asked[0].contains("Opening second.json replaces"));
    // The two-photo work went to first.json (named through the save-as path) before second.json opened.
    QVERIFY(QFileInfo::exists(first));
    QCOMPARE(c.document()->sources().size(), 1);
    QVERIFY(!c.document()->isModified());
    StudioController d;
    d.setModel(test::expressiveTinyModel(), "tiny");
    QString error;
    QVERIFY2(d.project()->open(first, &error), qPrintable(error));
    QCOMPARE(d.document()->sources().size(), 2);
  }

  void aModelChangeAsksThenKeepsThePhotosAndStaysUnsaved() {
    // Another model (other weights): the photos' codes must be made again.
    const QString model = dir_.filePath("other.amod");
    saveModel(model.toStdString(), *test::tinyModel(64, 4));
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    QStringList asked;
    answer(w, QMessageBox::Cancel, &asked);
    QVERIFY(!w.openModelFile(model));
    QCOMPARE(c.modelName(), QString("tiny"));
    QVERIFY(asked[0].contains("undo history cannot come along"));
    answer(w, QMessageBox::Discard, &asked);
    QSignalSpy back(&c, &StudioController::reencodeFinished);
    QVERIFY(w.openModelFile(model));
    QTRY_COMPARE_WITH_TIMEOUT(back.count(), 1, 20000);
    QCOMPARE(c.document()->sources().size(), 2);
    QCOMPARE(c.document()->undoStack()->count(), 0);
    // The history is gone but the work is still unsaved: quitting still asks.
    QVERIFY(c.document()->isModified());
    QVERIFY2(w.lastMessage().contains("photo(s) encoded by the model"), qPrintable(w.lastMessage()));
    QVERIFY(w.isWindowModified());
  }

  void deleteRemovesTheSelectedPhotoUndoably() {
    StudioController c;
    load(c, 3);
    MainWindow w(&c);
    const QString removed = c.document()->sources()[1].name;
    w.photoStrip()->setCurrentRow(1);
    QTest::keyClick(w.photoStrip(), Qt::Key_Delete);
    QCOMPARE(c.document()->sources().size(), 2);
    QCOMPARE(w.photoStrip()->count(), 2);
    for (const auto& s : c.document()->sources()) QVERIFY(s.name != removed);
    settle(c);
    c.document()->undoStack()->undo();
    QCOMPARE(c.document()->sources().size(), 3);
    QCOMPARE(c.document()->sources()[1].name, removed);
    // Removing the only photo of a range hands the range to a remaining photo (a block needs one).
    c.document()->assignRange(Range::Coarse, 0);
    w.photoStrip()->clearSelection();
    w.photoStrip()->setCurrentRow(0);
    QTest::keyClick(w.photoStrip(), Qt::Key_Delete);
    QCOMPARE(c.document()->rangeWeight(Range::Coarse, 0), 1.0);
    settle(c);
  }

  void everyBadPhotoOfABatchIsListed() {
    StudioController c;
    load(c, 1);
    MainWindow w(&c);
    QStringList bad;
    for (const char* name : {"notes.png", "empty.jpg", "half.png"}) bad << dir_.filePath(name);
    {
      QFile f(bad[0]);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write("this is not an image\n");
    }
    QFile(bad[1]).open(QIODevice::WriteOnly);
    {
      QFile good(photos_[1]), half(bad[2]);
      QVERIFY(good.open(QIODevice::ReadOnly) && half.open(QIODevice::WriteOnly));
      half.write(good.readAll().left(200));
    }
    c.photos()->addPhotos(bad + QStringList{photos_[2]});
    QTRY_COMPARE_WITH_TIMEOUT(w.lastFailureList().size(), 3, 20000);
    for (int i = 0; i < 3; ++i)
      QVERIFY2(w.lastFailureList()[i].startsWith(QFileInfo(bad[i]).fileName() + ": cannot read"),
               qPrintable(w.lastFailureList()[i]));
    QVERIFY(w.findChild<QMessageBox*>("failedPhotos"));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 20000);  // the good one still came in
    settle(c);
  }

  void exportWritesTheChosenFormatAndSize() {
    QCOMPARE(withFilterExtension("/tmp/mix", "JPEG images (*.jpg *.jpeg)"), QString("/tmp/mix.jpg"));
    QCOMPARE(withFilterExtension("/tmp/mix.webp", "PNG images (*.png)"), QString("/tmp/mix.webp"));
    QCOMPARE(withFilterExtension("/tmp/mix", "All files (*)"), QString("/tmp/mix"));
    StudioController c;
    load(c, 2);
    QCOMPARE(c.exporter()->exportSides(), (QList<int>{64, 256, 512, 1024}));
    QString error;
    const QString jpg = dir_.filePath("big.jpg");
    QVERIFY2(c.exporter()->exportResult(jpg, 256, &error), qPrintable(error));
    QImageReader reader(jpg);
    QCOMPARE(reader.format(), QByteArray("jpeg"));
    QCOMPARE(reader.size(), QSize(256, 256));
    QVERIFY(!c.exporter()->exportResult(dir_.filePath("no-extension"), 0, &error));
    QVERIFY2(error.contains("names no image format"), qPrintable(error));
    // Grids carry captions: a band of text above the photos (their names) and row labels.
    const QImage grid = c.exporter()->mixGrid();
    QVERIFY(grid.height() > 2 * 128 && grid.width() > 3 * 128);
    int dark = 0;
    for (int y = 0; y < 12; ++y)
      for (int x = 0; x < grid.width(); ++x) dark += qGray(grid.pixel(x, y)) < 100;
    QVERIFY2(dark > 20, "the caption band holds text");
  }

  void copyAndLongMessagesAnswerInTheStatusBar() {
    StudioController c;
    load(c, 1);
    MainWindow w(&c);
    w.resize(1024, 700);
    w.show();
    w.copyAction()->trigger();
    QVERIFY2(w.lastMessage().startsWith("Copied the result (64 × 64 px)"), qPrintable(w.lastMessage()));
    QCOMPARE(QApplication::clipboard()->image().size(), QSize(64, 64));
    // A message longer than the bar is elided, never drawn under the permanent labels; the whole
    // text is the tooltip.
    const QString long_text = QString("Cannot load photo.jpg: ") + QString("very long reason ").repeated(40);
    Q_EMIT c.photos()->photoFailed("photo.jpg", QString("very long reason ").repeated(40));
    QVERIFY(w.statusBar()->currentMessage().size() < long_text.size());
    QVERIFY(w.statusBar()->currentMessage().endsWith(QChar(0x2026)));
    QCOMPARE(w.statusBar()->toolTip(), w.lastMessage());
    // The "…" button shows it in full, and an error does not stay for good.
    auto* more = w.statusBar()->findChild<QToolButton*>();
    QVERIFY(more && !more->isHidden());
    more->click();
    auto* full = w.findChild<QMessageBox*>("fullMessage");
    QVERIFY(full);
    QCOMPARE(full->text(), long_text);
    full->close();
    QVERIFY(MainWindow::kLongMessageMs > 0);
  }

  void dialogsStartInPicturesThenWhereTheUserWent() {
    QSettings().remove("dirs");
    const QString pictures = QStandardPaths::writableLocation(QStandardPaths::PicturesLocation);
    QCOMPARE(startDirectory("photos"), QFileInfo(pictures).isDir() ? pictures : QDir::homePath());
    rememberDirectory("photos", photos_[0]);
    QCOMPARE(startDirectory("photos"), QFileInfo(photos_[0]).absolutePath());
    QVERIFY(startDirectory("export") != QFileInfo(photos_[0]).absolutePath());  // per purpose
    QCOMPARE(startPath("photos", "a.png"), QDir(QFileInfo(photos_[0]).absolutePath()).filePath("a.png"));
  }

  void theResultFollowsTheWindowSizeAtOnce() {
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    w.resize(1024, 700);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    c.document()->setRangeWeight(Range::Fine, 1, 1.0);
    settle(c);
    QTRY_VERIFY(!w.mixTab()->resultView()->pixmap().isNull());
    const int small = w.mixTab()->resultView()->pixmap().width();
    QSignalSpy decodes(c.render(), &RenderScheduler::resultReady);
    w.resize(1600, 1200);
    QTRY_VERIFY(w.mixTab()->resultView()->pixmap().width() > small);
    QCOMPARE(decodes.count(), 0);  // rescaled from the result, not decoded again
  }

  void nothingIsCutOffAtTheDefaultSizeOrAt1024x700_data() {
    QTest::addColumn<QSize>("size");
    QTest::newRow("default 1100x760") << QSize(1100, 760);
    QTest::newRow("1024x700") << QSize(1024, 700);
  }

  void nothingIsCutOffAtTheDefaultSizeOrAt1024x700() {
    QFETCH(QSize, size);
    StudioController c;
    load(c, 2);
    MainWindow w(&c);
    w.resize(size);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QStringList problems;
    for (int i = 0; i < w.tabs()->count(); ++i) {
      w.tabs()->setCurrentIndex(i);
      QWidget* tab = w.tabs()->currentWidget();
      QApplication::processEvents();
      // Every visible control shows all of itself (no narrower or lower than its minimum size hint)
      // and lies inside its tab.
      for (QWidget* widget : tab->findChildren<QWidget*>()) {
        if (!widget->isVisibleTo(tab)) continue;
        if (!qobject_cast<QAbstractButton*>(widget) && !qobject_cast<QComboBox*>(widget) &&
            !qobject_cast<QLineEdit*>(widget))
          continue;
        if (qobject_cast<QAbstractSpinBox*>(widget->parentWidget())) continue;  // a spin box's own editor
        const QSize hint = widget->minimumSizeHint();
        const QRect r(widget->mapTo(tab, QPoint(0, 0)), widget->size());
        const QString what = QString("%1 '%2' on %3").arg(widget->metaObject()->className(), widget->property("text").toString(),
                                                       w.tabs()->tabText(i));
        if (widget->width() + 1 < hint.width() || widget->height() + 1 < hint.height())
          problems << QString("%1 is %2x%3, needs %4x%5").arg(what).arg(widget->width()).arg(widget->height())
                          .arg(hint.width()).arg(hint.height());
        if (!tab->rect().contains(r)) problems << what + " reaches outside its tab";
      }
      // The screenshot of each tab at this size, to look at when this fails (kept in
      // $AUTOMOD_LAYOUT_SHOTS when set).
      const QString shots = qEnvironmentVariableIsSet("AUTOMOD_LAYOUT_SHOTS") ? qEnvironmentVariable("AUTOMOD_LAYOUT_SHOTS")
                                                                             : dir_.path();
      QDir().mkpath(shots);
      w.grab().save(QDir(shots).filePath(QString("layout-%1x%2-%3.png").arg(size.width()).arg(size.height()).arg(i)));
    }
    QVERIFY2(problems.isEmpty(), qPrintable(problems.join("\n") + "\n(set AUTOMOD_LAYOUT_SHOTS=DIR to keep the screenshots)"));
  }

  void aPhotoFarBelowTheModelsOwnFigureSaysWhatTheModelIsFor() {
    // A model that measured 60 dB on its own held-out faces (metadata "evaluation", written by
    // `automod eval --store`) and was trained on synthetic faces: the test photos (noise to this
    // model) come back far below that, and the tile and the note say so.
    std::shared_ptr<Automodulator> model = test::expressiveTinyModel();
    model->metadata["evaluation"] = {{"psnr_db", 60.0}};
    model->metadata["preset"] = "faces-64";
    StudioController c;
    c.setModel(model, "cartoon");
    c.photos()->setFaceMode(PhotoIntake::FaceMode::Largest);
    QCOMPARE(c.modelReferencePsnr().value_or(0), 60.0);
    MainWindow w(&c);
    c.photos()->addPhotos(photos_.mid(0, 1));
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 1, 20000);
    const Source& s = c.document()->sources()[0];
    QVERIFY(std::isfinite(s.psnr) && s.psnr < 60.0 - kQualityGapDb);
    QVERIFY2(s.note.contains("synthetic cartoon faces") && s.note.contains("Model → Library"), qPrintable(s.note));
    QVERIFY2(w.lastMessage().contains("synthetic cartoon faces"), qPrintable(w.lastMessage()));
    QVERIFY(w.photoStrip()->item(0)->text().endsWith(QString("%1 dB").arg(s.psnr, 0, 'f', 1)));
    QVERIFY(w.photoStrip()->item(0)->toolTip().contains("SSIM"));
    // A model whose own figure the photo reaches: no hint.
    std::shared_ptr<Automodulator> modest = test::expressiveTinyModel();
    modest->metadata["evaluation"] = {{"psnr_db", s.psnr}};
    StudioController d;
    d.setModel(modest, "modest");
    d.photos()->setFaceMode(PhotoIntake::FaceMode::Largest);
    d.photos()->addPhotos(photos_.mid(0, 1));
    QTRY_COMPARE_WITH_TIMEOUT(d.document()->sources().size(), 1, 20000);
    QVERIFY(d.qualityHint(d.document()->sources()[0].psnr).isEmpty());
    QVERIFY(!d.document()->sources()[0].note.contains("far below"));
    settle(c);
    settle(d);
  }

  void aDefaultModelThatDoesNotReadIsSaidNotHidden() {
    // The default model's file is there but cut short: the editor opens on the untrained stand-in and
    // says that the file is damaged, not that no model is installed. The photos stay usable.
    QTemporaryDir dir;
    const QString good = dir.filePath("default.amod"), cut = dir.filePath("cut.amod");
    saveModel(good.toStdString(), *test::tinyModel(16, 5));
    QFile in(good);
    QVERIFY(in.open(QIODevice::ReadOnly));
    QFile out(cut);
    QVERIFY(out.open(QIODevice::WriteOnly));
    out.write(in.readAll().left(int(in.size() / 2)));
    out.close();
    StudioController c;
    MainWindow w(&c);
    c.openDefaultModel(cut);
    QVERIFY(c.hasModel());
    QVERIFY(c.untrainedModel());
    QVERIFY2(c.defaultModelProblem().startsWith("The default model ") && c.defaultModelProblem().contains("cut.amod") &&
                 c.defaultModelProblem().contains("cannot be read: "),
             qPrintable(c.defaultModelProblem()));
    QVERIFY2(w.lastMessage().startsWith(c.defaultModelProblem()) && w.lastMessage().contains("freshly initialised"),
             qPrintable(w.lastMessage()));
    QVERIFY(!w.lastMessage().contains("No trained default model is installed"));
    c.openDefaultModel(good);
    QVERIFY(!c.untrainedModel());
    QVERIFY(c.defaultModelProblem().isEmpty());
    QCOMPARE(c.modelPath(), good);
  }

  void modelInfoIsAForm() {
    StudioController c;
    load(c, 1);
    MainWindow w(&c);
    QAction* info = nullptr;
    for (auto* menu : w.menuBar()->findChildren<QMenu*>())
      for (auto* a : menu->actions())
        if (a->text() == "Model &Info…") info = a;
    QVERIFY(info);
    info->trigger();
    auto* dialog = w.findChild<ModelInfoDialog*>("modelInfoDialog");
    QVERIFY(dialog);
    QCOMPARE(dialog->value("Resolution"), QString("64 × 64 px"));
    QCOMPARE(dialog->value("Latent size"), QString("32 numbers per code"));
    QVERIFY2(dialog->value("Decoder blocks").startsWith("5 (coarse 0–1, intermediate 2–3, fine 4"),
             qPrintable(dialog->value("Decoder blocks")));
    QCOMPARE(dialog->value("Name"), QString("tiny"));
    dialog->close();
  }
};

QTEST_MAIN(TestMainWindow)
#include "tst_main_window.moc"
