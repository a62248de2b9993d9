// Photos with several faces (the face picker), photos without one, and the exports: pasted back
// into the original photo, as a grid, and to the clipboard.
#include "ui_testutil.h"

#include <QAbstractButton>
#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QFileInfo>
#include <QLabel>
#include <QSignalSpy>
#include <QTest>

#include <cmath>

#include "core/align/face.h"
#include "core/align/photo.h"
#include "core/io/image.h"
#include "ui/face_picker.h"
#include "ui/main_window.h"
#include "ui/studio.h"

using namespace automod;
using namespace automod::ui;

namespace {
const char* kGrace = "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg";
const char* kAstronaut = "/usr/lib/python3/dist-packages/imageio/resources/images/astronaut.png";
}  // namespace

class TestFacePicker : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  QString two_;     // Grace Hopper (larger, left) beside the astronaut
  QString noface_;  // smooth noise

  /// Adds the two-face photo and waits for the controller to ask which face.
  void addTwoFaces(StudioController& c) {
    QSignalSpy found(c.photos(), &PhotoIntake::facesFound);
    c.photos()->addPhotos({two_});
    QTRY_COMPARE_WITH_TIMEOUT(found.count(), 1, 30000);
    QCOMPARE(found.at(0).at(0).toString(), two_);
  }

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    QCoreApplication::setOrganizationName("automod-tests");
    if (!alignmentAvailable()) QSKIP("face alignment (dlib and its landmark model) is not available");
    if (!QFileInfo::exists(kGrace) || !QFileInfo::exists(kAstronaut))
      QSKIP("the test photos (python3-matplotlib-data, python3-imageio) are not installed");
    // Grace scaled to the astronaut's height, side by side (as tst_align's CLI test does).
    auto grace = readImage(kGrace, 3), astro = readImage(kAstronaut, 3);
    const int64_t h = astro.size(0), w = grace.size(1) * h / grace.size(0);
    auto g = torch::nn::functional::interpolate(grace.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat),
                                                torch::nn::functional::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{h, w})
                                                    .mode(torch::kArea));
    auto g8 = g.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(torch::kUInt8);
    two_ = dir_.filePath("two.png");
    writeImage(two_.toStdString(), torch::cat({g8, astro}, 1).contiguous());
    noface_ = dir_.filePath("noface.png");
    test::writeTestImage(noface_.toStdString(), 160, 120, 3);
  }

  void severalFacesAskAndTheChosenFaceIsEncoded() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    QSignalSpy found(c.photos(), &PhotoIntake::facesFound);
    c.photos()->addPhotos({two_});
    QTRY_COMPARE_WITH_TIMEOUT(found.count(), 1, 30000);
    const auto boxes = found.at(0).at(1).value<QVector<QRect>>();
    const auto crops = found.at(0).at(2).value<QVector<QImage>>();
    QCOMPARE(boxes.size(), 2);
    QCOMPARE(crops.size(), 2);
    QCOMPARE(crops[0].size(), QSize(64, 64));
    const int grace_width = int(readImage(two_.toStdString(), 3).size(1)) - 512;
    QVERIFY(boxes[0].right() < grace_width);  // the larger face (Grace, on the left) first
    QVERIFY(boxes[1].left() >= grace_width);
    // Nothing is encoded until the user chooses.
    QCOMPARE(c.photos()->photosAwaitingFaceChoice(), QStringList{two_});
    QTest::qWait(100);
    QVERIFY(c.document()->sources().isEmpty());
    const auto candidates = c.photos()->faceCandidates(two_);
    QCOMPARE(candidates.boxes, boxes);
    QCOMPARE(candidates.photoSize, QSize(grace_width + 512, 512));
    QVERIFY(!candidates.photo.isNull());

    c.photos()->chooseFaces(two_, {1});
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 1, 30000);
    QVERIFY(c.photos()->photosAwaitingFaceChoice().isEmpty());
    const Source astro = c.document()->sources()[0];
    QVERIFY2(astro.name.contains("face 2"), qPrintable(astro.name));
    QVERIFY2(astro.note.contains("face 2 of 2"), qPrintable(astro.note));
    QCOMPARE(astro.aligned, crops[1]);
    QCOMPARE(c.exporter()->sourceOrigin(0)->face, 1);

    // The same photo again, face 1 (index 0) this time: a different source.
    addTwoFaces(c);
    c.photos()->chooseFaces(two_, {0});
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 30000);
    const Source grace = c.document()->sources()[1];
    QCOMPARE(grace.aligned, crops[0]);
    QVERIFY(grace.latent != astro.latent);
    QVERIFY(grace.aligned != astro.aligned);
    QCOMPARE(c.exporter()->sourceOrigin(1)->face, 0);

    // An empty choice drops the photo.
    addTwoFaces(c);
    c.photos()->chooseFaces(two_, {});
    QTest::qWait(200);
    QCOMPARE(c.document()->sources().size(), 2);
    QVERIFY(c.photos()->photosAwaitingFaceChoice().isEmpty());
  }

  void allFacesAddsEachAsItsOwnSource() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    addTwoFaces(c);
    c.photos()->chooseAllFaces(two_);
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 30000);
    const auto& s = c.document()->sources();
    QVERIFY(s[0].latent != s[1].latent);
    QVERIFY2(s[0].name.contains("face 1") && s[1].name.contains("face 2"), qPrintable(s[0].name + s[1].name));
    // Face mode Largest (no questions) takes the larger face at once.
    c.photos()->setFaceMode(PhotoIntake::FaceMode::Largest);
    QSignalSpy found(c.photos(), &PhotoIntake::facesFound);
    c.photos()->addPhotos({two_});
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 3, 30000);
    QCOMPARE(found.count(), 0);
    QCOMPARE(c.document()->sources()[2].aligned, s[0].aligned);
    QVERIFY2(c.document()->sources()[2].note.contains("using the largest"), qPrintable(c.document()->sources()[2].note));
  }

  void theWindowShowsThePicker() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    w.show();
    c.photos()->addPhotos({two_});
    QTRY_VERIFY_WITH_TIMEOUT(w.facePicker() != nullptr, 30000);
    FacePicker* picker = w.facePicker();
    QCOMPARE(picker->faceCount(), 2);
    QVERIFY(picker->isVisible());
    QVERIFY(!picker->faceButton(1)->icon().isNull());
    QVERIFY(!picker->photoView()->pixmap().isNull());
    picker->faceButton(1)->click();
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 1, 30000);
    QVERIFY(c.document()->sources()[0].name.contains("face 2"));
    QTRY_VERIFY(w.facePicker() == nullptr);

    // Clicking a face on the photo chooses it.
    c.photos()->addPhotos({two_});
    QTRY_VERIFY_WITH_TIMEOUT(w.facePicker() != nullptr, 30000);
    picker = w.facePicker();
    QTRY_VERIFY(picker->photoView()->isVisible() && picker->photoView()->width() > 0);
    const auto boxes = c.photos()->faceCandidates(two_).boxes;
    QLabel* view = picker->photoView();
    const QSize pix = view->pixmap().deviceIndependentSize().toSize();
    const double s = double(pix.width()) / c.photos()->faceCandidates(two_).photoSize.width();
    const QPoint offset((view->width() - pix.width()) / 2, (view->height() - pix.height()) / 2);
    QTest::mouseClick(view, Qt::LeftButton, {}, offset + (QPointF(boxes[0].center()) * s).toPoint());
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 30000);
    QVERIFY2(c.document()->sources()[1].name.contains("face 1"), qPrintable(c.document()->sources()[1].name));

    // "All faces" from the dialog.
    c.photos()->addPhotos({two_});
    QTRY_VERIFY_WITH_TIMEOUT(w.facePicker() != nullptr, 30000);
    w.facePicker()->allFacesButton()->click();
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 4, 30000);
  }

  void aPhotoWithoutAFaceIsCenterCroppedWithAClearNote() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    QSignalSpy found(c.photos(), &PhotoIntake::facesFound);
    c.photos()->addPhotos({noface_});
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 1, 30000);
    QCOMPARE(found.count(), 0);
    const auto& s = c.document()->sources()[0];
    QCOMPARE(s.note, QString("no face found in noface.png; center-cropped"));
    QVERIFY2(w.lastMessage().contains("no face found in noface.png; center-cropped"), qPrintable(w.lastMessage()));
    QCOMPARE(c.exporter()->sourceOrigin(0)->face, -1);
  }

  void searchEverywhereFindsASmallFaceUnderBlueLight() {
    // A 60 px face in a 1600×1200 photo under strong blue light (as tst_align's library test): no pixel
    // is skin-coloured, so the default small-face search misses it and the photo is centre-cropped;
    // with Edit → Search Everywhere for Small Faces the editor finds and aligns it.
    torch::manual_seed(5);
    auto noise = torch::randint(40, 220, {60, 80, 3}, torch::kInt).to(torch::kUInt8);
    auto canvas = resizeImage(noise, 1600, 1200);
    const auto grace = readImage(kGrace, 3);
    const double k = 60.0 / 216.0;  // her face box is about 216 px across in the 512×600 photo
    const auto small = resizeImage(grace, int(std::lround(grace.size(1) * k)), int(std::lround(grace.size(0) * k)));
    canvas.slice(0, 500, 500 + small.size(0)).slice(1, 900, 900 + small.size(1)).copy_(small);
    auto f = canvas.to(torch::kFloat);
    const auto r = f.select(2, 0), g = f.select(2, 1), b = f.select(2, 2);
    canvas = torch::stack({0.45 * r, 0.8 * g, b + 0.3 * g + 0.3 * r}, 2).round().clamp(0, 255).to(torch::kUInt8);
    const QString blue = dir_.filePath("blue-light.png");
    writeImage(blue.toStdString(), canvas);

    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    auto* everywhere = w.findChild<QAction*>("searchEverywhere");
    QVERIFY(everywhere);
    everywhere->setChecked(true);  // a toggle, so that the settings' value from an earlier run does not matter
    everywhere->setChecked(false);
    QVERIFY(!c.photoOptions().detect.exhaustive_search);
    c.photos()->addPhotos({blue});
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 1, 30000);
    QVERIFY2(c.document()->sources()[0].note.contains("no face found"), qPrintable(c.document()->sources()[0].note));
    QCOMPARE(c.exporter()->sourceOrigin(0)->face, -1);
    everywhere->setChecked(true);
    QVERIFY(c.photoOptions().detect.exhaustive_search);
    c.photos()->addPhotos({blue});
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 60000);
    QVERIFY2(!c.document()->sources()[1].note.contains("no face found"), qPrintable(c.document()->sources()[1].note));
    QCOMPARE(c.exporter()->sourceOrigin(1)->face, 0);
    everywhere->setChecked(false);
  }

  void exportPastedBackKeepsThePhotoOutsideTheFace() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    QVERIFY(!w.exportPastedAction()->isEnabled());
    addTwoFaces(c);
    c.photos()->chooseFaces(two_, {1});
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->result().isNull() && !c.render()->decodePending(), 30000);
    QCOMPARE(c.exporter()->pasteBackSource(), 0);
    QTRY_VERIFY(w.exportPastedAction()->isEnabled());

    const QString out = dir_.filePath("pasted.png");
    QString error;
    QVERIFY2(c.exporter()->exportPastedBack(out, -1, &error), qPrintable(error));
    const auto photo = readImage(two_.toStdString(), 3);
    const auto pasted = readImage(out.toStdString(), 3);
    QCOMPARE(pasted.sizes(), photo.sizes());
    const auto t = AlignTransform::fromJson(nlohmann::json::parse(c.exporter()->sourceOrigin(0)->transform.toStdString()));
    // Every pixel where the feathered mask is 0 is the original's, bit for bit; inside, the edit shows.
    const int64_t H = photo.size(0), W = photo.size(1);
    auto outside = torch::zeros({H, W}, torch::kBool);
    auto inside = torch::zeros({H, W}, torch::kBool);
    auto out_a = outside.accessor<bool, 2>();
    auto in_a = inside.accessor<bool, 2>();
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const Point2 p = t.toCrop({double(x), double(y)});
        const double weight = pasteWeight(p.x, p.y, t.crop_size);
        out_a[y][x] = weight == 0;
        in_a[y][x] = weight == 1;
      }
    const auto diff = (pasted.to(torch::kInt) - photo.to(torch::kInt)).abs().amax(2);
    QVERIFY(outside.sum().item<int64_t>() > H * W / 2);
    QCOMPARE(diff.masked_select(outside).max().item<int>(), 0);
    QVERIFY(diff.masked_select(inside).to(torch::kFloat).mean().item<double>() > 5);
    // The astronaut is the source: Grace's half of the photo is untouched.
    QCOMPARE(diff.narrow(1, 0, W - 512).max().item<int>(), 0);

    // A project keeps where its photos came from: reopened, it pastes back into the same photo.
    const QString project = dir_.filePath("p.json");
    QVERIFY(c.project()->save(project, &error));
    StudioController d;
    d.setModel(c.model(), "tiny");
    MainWindow w2(&d);
    QVERIFY(d.project()->open(project, &error));
    QTRY_VERIFY_WITH_TIMEOUT(!d.render()->result().isNull() && !d.render()->decodePending(), 30000);
    QCOMPARE(d.exporter()->pasteBackSource(), c.exporter()->pasteBackSource());
    QCOMPARE(d.exporter()->pastedBack(), c.exporter()->pastedBack());
    QTRY_VERIFY(w2.exportPastedAction()->isEnabled());
    // A result without a photo behind it (a new project with only a kept sample) cannot be pasted back.
    StudioController e;
    e.setModel(c.model(), "tiny");
    MainWindow w3(&e);
    QSignalSpy ready(e.render(), &RenderScheduler::samplesReady);
    e.render()->requestSamples({}, 1, 2);
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 30000);
    QVERIFY(e.render()->keepSample(0, "kept"));
    QTRY_VERIFY_WITH_TIMEOUT(!e.render()->result().isNull() && !e.render()->decodePending(), 30000);
    QCOMPARE(e.exporter()->pasteBackSource(), -1);
    QVERIFY(!e.exporter()->exportPastedBack(dir_.filePath("nope.png"), -1, &error));
    QVERIFY2(error.contains("no originating photo"), qPrintable(error));
    QTRY_VERIFY(!w3.exportPastedAction()->isEnabled());
    QVERIFY2(w3.exportPastedAction()->toolTip().contains("no originating photo"),
             qPrintable(w3.exportPastedAction()->toolTip()));
  }

  void gridAndClipboard() {
    StudioController c;
    c.setModel(test::expressiveTinyModel(), "tiny");
    MainWindow w(&c);
    c.photos()->addPhotos({noface_});
    addTwoFaces(c);
    c.photos()->chooseFaces(two_, {0});
    QTRY_COMPARE_WITH_TIMEOUT(c.document()->sources().size(), 2, 30000);
    QTRY_VERIFY_WITH_TIMEOUT(!c.render()->result().isNull() && !c.render()->decodePending(), 30000);
    const QImage grid = c.exporter()->mixGrid();
    const auto& s = c.document()->sources();
    // Each image in its cell (cells of 128 px: the 64 px images upscaled), under a caption band.
    auto cell = [&](int column, int row) {
      return grid.copy(c.exporter()->mixGridCell(column, row)).scaled(64, 64, Qt::IgnoreAspectRatio, Qt::SmoothTransformation);
    };
    QCOMPARE(c.exporter()->mixGridCell(0, 0).size(), QSize(128, 128));
    QVERIFY(c.exporter()->mixGridCell(0, 0).top() > 0 && c.exporter()->mixGridCell(0, 0).left() > 0);  // caption band, row labels
    QVERIFY(grid.rect().contains(c.exporter()->mixGridCell(2, 0)));
    QVERIFY2(test::meanAbsDifference(cell(0, 0), s[0].aligned) < 8.0, "photo 1 at the top left");
    QVERIFY2(test::meanAbsDifference(cell(1, 1), s[1].reconstruction) < 8.0, "photo 2's reconstruction below it");
    QVERIFY2(test::meanAbsDifference(cell(2, 0), c.render()->result()) < 8.0, "the result at the right");
    QVERIFY(test::meanAbsDifference(cell(1, 1), s[0].reconstruction) > 30.0);  // the check tells photos apart (here: 74)
    QTRY_VERIFY(w.exportGridAction()->isEnabled());
    QVERIFY(c.exporter()->sampleGrid().isNull());
    QSignalSpy ready(c.render(), &RenderScheduler::samplesReady);
    c.render()->requestSamples({}, 1, 5);
    QTRY_COMPARE_WITH_TIMEOUT(ready.count(), 1, 30000);
    // 5 samples: 3 + 2 in cells of 128 px, each with a caption line under it.
    const QImage three = c.exporter()->sampleGrid(), five = c.exporter()->sampleGrid(5);
    QCOMPARE(three.width(), 3 * 128 + 2 * 4);
    QCOMPARE(five.width(), 5 * 128 + 4 * 4);
    QVERIFY(five.height() > 128 && five.height() < 128 + 40);
    QVERIFY(three.height() > 2 * 128 + 4 && three.height() < 2 * (128 + 40));

    QTRY_VERIFY(w.copyAction()->isEnabled());
    QApplication::clipboard()->clear();
    w.copyAction()->trigger();
    QCOMPARE(QApplication::clipboard()->image().convertToFormat(QImage::Format_RGB888),
             c.render()->result().convertToFormat(QImage::Format_RGB888));
  }
};

QTEST_MAIN(TestFacePicker)
#include "tst_face_picker.moc"
