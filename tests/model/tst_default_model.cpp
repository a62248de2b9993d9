// The bundled default model, as a new user meets it: it loads, encodes the bundled sample
// faces into codes that reconstruct *those* faces, mixes them, and `automod eval` on the committed
// held-out faces reproduces the figures in models/default-eval.json — the numbers the README quotes.
#include <QtTest>

#include <fstream>

#include "core/align/photo.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/metrics/image_quality.h"
#include "core/metrics/quality_reference.h"
#include "core/model/latent_plan.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

class TestDefaultModel : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void encodesEachSampleIntoItsOwnFace();
  void mixesTakeEachScaleFromItsSource();
  void evalReproducesTheCommittedNumbers();
  void metadataCarriesTheCommittedNumbers();
  void hintsAtRealPhotosButNotAtItsOwnSamples();

 private:
  fs::path root_;
  std::unique_ptr<Automodulator> model_;
  torch::Tensor samples_;  // the bundled sample faces, [N, C, R, R] in [−1, 1]
};

void TestDefaultModel::initTestCase() {
  const char* src = std::getenv("AUTOMOD_SOURCE_DIR");
  QVERIFY2(src, "AUTOMOD_SOURCE_DIR is not set (run through ctest)");
  root_ = src;
  const auto path = root_ / "models" / "default.amod";
  QVERIFY2(fs::exists(path), "models/default.amod is missing");
  model_ = loadModel(path);
  std::vector<torch::Tensor> faces;
  for (const auto& e : fs::directory_iterator(root_ / "resources" / "samples"))
    if (isImageFile(e.path())) faces.push_back(centerCropResize(readImage(e.path(), 3), model_->resolution()));
  QVERIFY(faces.size() >= 4);
  samples_ = toModelInput(torch::stack(faces));
}

void TestDefaultModel::encodesEachSampleIntoItsOwnFace() {
  auto z = model_->encode(samples_);
  auto recon = model_->decode(z);
  const int64_t n = samples_.size(0);
  // Each reconstruction resembles its own photo more than any other sample's reconstruction does.
  auto own = psnrPerImage(recon, samples_);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      if (i == j) continue;
      const double other = psnrPerImage(recon[j].unsqueeze(0), samples_[i].unsqueeze(0)).item<double>();
      QVERIFY2(own[i].item<double>() > other + 0.5,
               qPrintable(QStringLiteral("sample %1: own %2 dB, sample %3's %4 dB")
                              .arg(i).arg(own[i].item<double>()).arg(j).arg(other)));
    }
  qInfo("reconstruction PSNR of the bundled samples: %.2f dB", own.mean().item<double>());
}

void TestDefaultModel::mixesTakeEachScaleFromItsSource() {
  auto z = model_->encode(samples_.narrow(0, 0, 2));
  auto a = z.narrow(0, 0, 1), b = z.narrow(0, 1, 1);
  const int nb = model_->numBlocks();
  auto ra = model_->decode(a), rb = model_->decode(b);
  // The coarse blocks (4–8 px) from A, the rest from B, and the other way round.
  auto coarse_a = model_->decode(LatentPlan::mixed(a, b, 2, nb));
  auto coarse_b = model_->decode(LatentPlan::mixed(b, a, 2, nb));
  QVERIFY(!torch::equal(coarse_a, ra) && !torch::equal(coarse_a, rb));
  // A's code on every block is A's reconstruction, bit for bit.
  QVERIFY(torch::equal(model_->decode(LatentPlan::mixed(a, a, 2, nb)), ra));
  // Swapping which source gives the coarse blocks changes the result: both scales matter.
  QVERIFY(psnr(coarse_a, coarse_b) < 40.0);
}

void TestDefaultModel::evalReproducesTheCommittedNumbers() {
  const auto expected_path = root_ / "models" / "default-eval.json";
  QVERIFY2(fs::exists(expected_path), "models/default-eval.json is missing");
  nlohmann::json expected;
  std::ifstream(expected_path) >> expected;
  QTemporaryDir dir;
  const auto out = test::tmpPath(dir, "eval.json");
  // The command that wrote models/default-eval.json (README, "Quality of the bundled model").
  auto r = test::runAutomod({"eval", (root_ / "models" / "default.amod").string(), "--data",
                             (root_ / "resources" / "eval-faces").string(), "--held-out-fraction", "0.5", "--count",
                             "32", "--seed", "0", "--cache-dir", test::tmpPath(dir, "cache").string(), "-o",
                             out.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  nlohmann::json got;
  std::ifstream(out) >> got;
  // Tolerances: thread counts change float summation order, nothing else varies (seeded).
  auto near = [&](const nlohmann::json::json_pointer& p, double tol) {
    const double e = expected.at(p).get<double>(), g = got.at(p).get<double>();
    QVERIFY2(std::abs(e - g) <= tol, qPrintable(QStringLiteral("%1: README %2, now %3")
                                                     .arg(QString::fromStdString(p.to_string())).arg(e).arg(g)));
  };
  near("/reconstruction/psnr_db"_json_pointer, 0.05);
  near("/reconstruction/ssim"_json_pointer, 0.002);
  near("/cycle_consistency_cos"_json_pointer, 0.002);
  near("/layer_entanglement/mean"_json_pointer, 1e-3);
  near("/swd_x1e3/samples/average"_json_pointer, 0.02 * expected.at("/swd_x1e3/samples/average"_json_pointer).get<double>());
  near("/swd_x1e3/mixes/average"_json_pointer, 0.02 * expected.at("/swd_x1e3/mixes/average"_json_pointer).get<double>());
  // The floor the README promises for the bundled model (issue: finished run at 400 k images): a
  // retrained or replaced model that falls below it fails here even when its JSON is regenerated.
  const double psnr = got.at("/reconstruction/psnr_db"_json_pointer).get<double>();
  const double cycle = got.at("/cycle_consistency_cos"_json_pointer).get<double>();
  QVERIFY2(psnr >= 18.0, qPrintable(QStringLiteral("held-out PSNR %1 dB is below the README's 18 dB").arg(psnr)));
  QVERIFY2(cycle >= 0.15, qPrintable(QStringLiteral("cycle consistency %1 is below the README's 0.15").arg(cycle)));
}

void TestDefaultModel::metadataCarriesTheCommittedNumbers() {
  // The editor compares each photo's reconstruction with the held-out PSNR stored in the model
  // (automod eval --store): it must be the figure of this model, not of an earlier one.
  nlohmann::json expected;
  std::ifstream(root_ / "models" / "default-eval.json") >> expected;
  QVERIFY2(model_->metadata.contains("evaluation"), "models/default.amod carries no evaluation (automod eval --store)");
  const auto& stored = model_->metadata.at("evaluation");
  QCOMPARE(stored.at("psnr_db").get<double>(), expected.at("/reconstruction/psnr_db"_json_pointer).get<double>());
  QCOMPARE(stored.at("cycle_consistency_cos").get<double>(), expected.at("/cycle_consistency_cos"_json_pointer).get<double>());
}

void TestDefaultModel::hintsAtRealPhotosButNotAtItsOwnSamples() {
  // What the editor's tiles and the headless job say, on the model a new user meets: its own sample
  // photos (cartoon faces) get no "trained on synthetic cartoon faces" hint, real photos do.
  const auto reference = qualityReference(model_->metadata);
  QVERIFY(reference.held_out_psnr_db && reference.synthetic_faces);
  PhotoOptions options = photoOptionsForModel(model_->metadata);
  options.center_crop_fallback = true;  // as the editor and the headless job prepare photos
  auto photoPsnr = [&](const fs::path& path) {
    auto prepared = preparePhoto(path, model_->resolution(), 3, options);
    auto rec = toImage(model_->decode(model_->encode(toModelInput(prepared.image)))).squeeze(0);
    return psnr(prepared.image.permute({2, 0, 1}).unsqueeze(0), rec.permute({2, 0, 1}).unsqueeze(0));
  };
  for (const auto& e : fs::directory_iterator(root_ / "resources" / "samples")) {
    if (!isImageFile(e.path())) continue;
    const double p = photoPsnr(e.path());
    QVERIFY2(qualityHint(reference, p).empty(),
             qPrintable(QStringLiteral("%1 (a cartoon sample) at %2 dB is flagged as a real photo")
                            .arg(QString::fromStdString(e.path().filename().string())).arg(p)));
  }
  int real = 0;
  for (const char* photo : {"/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                            "/usr/lib/python3/dist-packages/imageio/resources/images/astronaut.png"}) {
    if (!fs::exists(photo)) continue;
    ++real;
    const double p = photoPsnr(photo);
    const auto hint = qualityHint(reference, p);
    QVERIFY2(hint.find("synthetic cartoon faces") != std::string::npos,
             qPrintable(QStringLiteral("%1 at %2 dB gets no hint").arg(photo).arg(p)));
  }
  if (real == 0) QSKIP("the real test photos (python3-matplotlib-data, python3-imageio) are not installed");
}

QTEST_GUILESS_MAIN(TestDefaultModel)
#include "tst_default_model.moc"
