// A photo reaches an imported model exactly as it reaches the authors' code: Pillow's bilinear resize
// (hand-computed values: antialiased shrinking, upscaling, odd sizes, one 8-bit rounding per pass),
// torchvision's centre-crop rounding, and every photo-encode case of the fixture folder's
// photo-cases.json (the tensor their Session.tf() feeds the encoder within one 8-bit step, the code
// within 1e-4), in-process and through `automod encode --no-align`. Every size and count comes from the
// JSON and the files. The folder is $AMOD_REFERENCE_DIR, by default ../shared/reference beside the
// project; the fixture tests skip, saying so, only when it is absent.
#include <QtTest>

#include <nlohmann/json.hpp>

#include <fstream>

#include "core/align/photo.h"
#include "core/edit/sources.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/io/reference_import.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {

// uint8 [H, W, C] from rows of values.
torch::Tensor image(const std::vector<std::vector<int>>& rows, int channels = 1) {
  const int64_t h = int64_t(rows.size()), w = int64_t(rows[0].size());
  auto t = torch::empty({h, w, channels}, torch::kUInt8);
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j)
      for (int c = 0; c < channels; ++c) t[i][j][c] = rows[i][j];
  return t;
}

std::vector<int> values(const torch::Tensor& t, int channel = 0) {
  std::vector<int> v;
  auto flat = t.select(2, channel).contiguous().view(-1);
  for (int64_t i = 0; i < flat.numel(); ++i) v.push_back(flat[i].item<int>());
  return v;
}

QString str(const std::vector<int>& v) {
  QStringList l;
  for (int x : v) l << QString::number(x);
  return l.join(", ");
}

}  // namespace

class TestPhotoCases : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void pillowBilinearMatchesHandComputedValues();
  void referenceTransformCropsAsTorchvision();
  void metadataChoosesTheInputTransform();
  void photosReachTheEncoderAsInTheAuthorsCode_data();
  void photosReachTheEncoderAsInTheAuthorsCode();
  void cliEncodeNoAlignGivesTheAuthorsCodes();

 private:
  QTemporaryDir tmp_;
  fs::path dir_;
  nlohmann::json cases_;
  std::map<std::string, std::shared_ptr<Automodulator>> models_;
  std::shared_ptr<Automodulator> model(const std::string& file);
  bool haveFixtures() const;
};

void TestPhotoCases::initTestCase() {
  QVERIFY(tmp_.isValid());
  dir_ = test::referenceDir();
  if (fs::exists(dir_ / "photo-cases.json")) {
    std::ifstream in(dir_ / "photo-cases.json");
    cases_ = nlohmann::json::parse(in);
  }
  torch::set_num_threads(2);
}

bool TestPhotoCases::haveFixtures() const { return !cases_.is_null(); }

// QSKIP returns from the function it is in: this macro puts it in the test itself.
#define NEED_FIXTURES()                                                                                        \
  if (!haveFixtures())                                                                                         \
  QSKIP(qPrintable(QString("no photo-cases.json at %1 (set AMOD_REFERENCE_DIR)").arg(QString::fromStdString(dir_.string()))))

std::shared_ptr<Automodulator> TestPhotoCases::model(const std::string& file) {
  auto it = models_.find(file);
  if (it != models_.end()) return it->second;
  // The fixtures are not the released files, so the import needs an alignment; photos here are not
  // aligned (--no-align), so which one does not matter.
  ReferenceImportOptions options;
  options.alignment = "ffhq";
  std::shared_ptr<Automodulator> m(importReferenceFile(dir_ / file, options).model);
  return models_[file] = m;
}

void TestPhotoCases::pillowBilinearMatchesHandComputedValues() {
  // Worked through Pillow's Resample.c by hand (see resizePillowBilinear):
  // 4 → 2: scale 2, support 2; output 0 reads pixels 0–2 with weights 0.75, 0.75, 0.25 (normalised by
  // 1.75), output 1 pixels 1–3 with 0.25, 0.75, 0.75: 71.43 → 71 and 209.29 → 209. (An area resize gives
  // 50 and 228: Pillow's window is wider than the 2-pixel box, and clipped at the image's edges.)
  const auto row4 = image({{0, 100, 200, 255}});
  QCOMPARE(str(values(resizePillowBilinear(row4, 2, 1))), str({71, 209}));
  // The same along the other axis (the vertical pass).
  QCOMPARE(str(values(resizePillowBilinear(row4.transpose(0, 1), 1, 2))), str({71, 209}));
  // 2 → 4 (enlarging: support 1): 0, 63.75 → 64, 191.25 → 191, 255.
  QCOMPARE(str(values(resizePillowBilinear(image({{0, 255}}), 4, 1))), str({0, 64, 191, 255}));
  // 3 → 2 (odd): scale 1.5; weights 0.625/0.375 and 0.375/0.625: 13.75 → 14, 33.125 → 33.
  QCOMPARE(str(values(resizePillowBilinear(image({{10, 20, 41}}), 2, 1))), str({14, 33}));
  // 2×2 → 1×1: each pass rounds to 8 bits. Rows give 127.5 → 128 and 255, then 191.5 → 192, where one
  // 2-D filter in floating point would give 191.25 → 191.
  QCOMPARE(str(values(resizePillowBilinear(image({{0, 255}, {255, 255}}), 1, 1))), str({192}));
  // Channels are independent; an unchanged size is a copy.
  auto rgb = torch::stack({row4.select(2, 0), (255 - row4.select(2, 0).to(torch::kInt)).to(torch::kUInt8), row4.select(2, 0)}, 2);
  auto r = resizePillowBilinear(rgb, 2, 1);
  QCOMPARE(str(values(r, 0)), str({71, 209}));
  QCOMPARE(str(values(r, 1)), str({255 - 71, 255 - 209}));
  QVERIFY(torch::equal(resizePillowBilinear(rgb, 4, 1), rgb));
  // A strong reduction (61 → 3: support 20.3, 43 taps) of a constant stays exactly that constant.
  auto flat = torch::full({5, 61, 3}, 77, torch::kUInt8);
  QVERIFY(torch::equal(resizePillowBilinear(flat, 3, 2), torch::full({2, 3, 3}, 77, torch::kUInt8)));
}

void TestPhotoCases::referenceTransformCropsAsTorchvision() {
  // torchvision: shorter side to max_reso, longer to int(max_reso·long/short), crop offset
  // int(round((size − max_reso) / 2.0)) with Python's round half to even.
  auto photo = torch::randint(0, 256, {8, 14, 3}, torch::TensorOptions().dtype(torch::kUInt8));
  // 14×8 → 7×4: offset round(1.5) = 2.
  auto full = resizePillowBilinear(photo, 7, 4);
  QVERIFY(torch::equal(referenceInputTransform(photo, 4, 4), full.narrow(1, 2, 4)));
  // 10×8 → 5×4: offset round(0.5) = 0 (half to even; half away from zero would say 1).
  auto p10 = photo.narrow(1, 0, 10);
  QVERIFY(torch::equal(referenceInputTransform(p10, 4, 4), resizePillowBilinear(p10, 5, 4).narrow(1, 0, 4)));
  // Portrait 9×13 with max_reso 6: 6 × int(6·13/9 = 8.67) = 8, offset round(1.0) = 1; then to 3×3.
  auto tall = torch::randint(0, 256, {13, 9, 3}, torch::TensorOptions().dtype(torch::kUInt8));
  auto square = resizePillowBilinear(tall, 6, 8).narrow(0, 1, 6);
  QVERIFY(torch::equal(referenceInputTransform(tall, 6, 3), resizePillowBilinear(square, 3, 3)));
  QCOMPARE(referenceInputTransform(tall, 6, 3).sizes().vec(), (std::vector<int64_t>{3, 3, 3}));
}

void TestPhotoCases::metadataChoosesTheInputTransform() {
  // The key the importer writes, the fallback for models imported before it, and our own models.
  auto o = photoOptionsForModel({{"input_transform", inputTransformJson(InputTransform::Reference, 512)}});
  QVERIFY(o.input_transform == InputTransform::Reference);
  QCOMPARE(o.max_reso, 512);
  o = photoOptionsForModel({{"provenance", {{"phase", 6}}}, {"alignment", "ffhq"}});
  QVERIFY(o.input_transform == InputTransform::Reference);
  QCOMPARE(o.max_reso, 256);
  o = photoOptionsForModel({{"provenance", {{"phase", 7}}}});
  QCOMPARE(o.max_reso, 512);
  o = photoOptionsForModel({{"provenance", {{"phase", 6}}}, {"input_transform", {{"kind", "area"}}}});
  QVERIFY(o.input_transform == InputTransform::Area);
  QVERIFY(photoOptionsForModel({{"images_seen", 10}}).input_transform == InputTransform::Area);
  QVERIFY_THROWS_EXCEPTION(Error, photoOptionsForModel({{"input_transform", {{"kind", "reference"}}}}));
  QVERIFY_THROWS_EXCEPTION(Error, photoOptionsForModel({{"input_transform", "pillow"}}));
  // The options are part of a SourceCache's key: the two transforms never share a cached code.
  PhotoOptions a, b;
  b.input_transform = InputTransform::Reference;
  QVERIFY(photoOptionsKey(a) != photoOptionsKey(b));
  b.max_reso = 512;
  auto c = b;
  c.max_reso = 256;
  QVERIFY(photoOptionsKey(b) != photoOptionsKey(c));
}

void TestPhotoCases::photosReachTheEncoderAsInTheAuthorsCode_data() {
  QTest::addColumn<int>("model_index");
  QTest::addColumn<int>("case_index");
  if (cases_.is_null()) {
    QTest::newRow("no fixtures") << -1 << -1;
    return;
  }
  for (size_t m = 0; m < cases_.at("models").size(); ++m) {
    const auto& model = cases_["models"][m];
    for (size_t c = 0; c < model.at("cases").size(); ++c) {
      const auto row = model.at("name").get<std::string>() + "/" + model["cases"][c].at("photo").get<std::string>();
      QTest::newRow(row.c_str()) << int(m) << int(c);
    }
  }
}

void TestPhotoCases::photosReachTheEncoderAsInTheAuthorsCode() {
  NEED_FIXTURES();
  QFETCH(int, model_index);
  QFETCH(int, case_index);
  const auto& entry = cases_["models"][model_index];
  const auto& cs = entry["cases"][case_index];
  QCOMPARE(cs.at("kind").get<std::string>(), std::string("photo-encode"));
  auto m = model(entry.at("files").begin().value().get<std::string>());
  const auto expected_input = test::readF32(dir_, cs.at("input"));
  const auto expected_z = test::readF32(dir_, cs.at("z"));
  const int resolution = int(expected_input.size(2));
  QCOMPARE(m->resolution(), resolution);
  QCOMPARE(int(expected_z.size(1)), m->config().latent_dim);
  // The imported model's own options: the reference transform with the case's maxReso.
  const auto options = photoOptionsForModel(m->metadata, /*no_align=*/true);
  QVERIFY(options.input_transform == InputTransform::Reference);
  QCOMPARE(options.max_reso, cs.at("max_reso").get<int>());
  const auto photo = dir_ / cs.at("photo").get<std::string>();
  const auto prepared = preparePhoto(photo, resolution, int(expected_input.size(1)), options);
  const auto input = toModelInput(prepared.image);
  const double dx = test::maxAbsDiff(input, expected_input);
  const int64_t off = (input - expected_input).abs().gt(1e-5).sum().item<int64_t>();
  // The area transform, for scale: what the inputs looked like before.
  const double area = test::maxAbsDiff(toModelInput(centerCropResize(readImage(photo, 3), resolution)), expected_input);
  torch::NoGradGuard no_grad;
  const double dz = test::maxAbsDiff(m->encoder->forward(input, cs.at("step").get<int>(), cs.at("alpha").get<double>()),
                                     expected_z);
  qInfo("input max |d| %.3g (%lld of %lld elements off; area transform: %.3g), code max |d| %.3g", dx,
        static_cast<long long>(off), static_cast<long long>(input.numel()), area, dz);
  QVERIFY2(dx <= 2.0 / 255 + 1e-6, qPrintable(QString("the input differs by %1").arg(dx)));
  QVERIFY2(dz <= 1e-4, qPrintable(QString("the code differs by %1").arg(dz)));
}

void TestPhotoCases::cliEncodeNoAlignGivesTheAuthorsCodes() {
  NEED_FIXTURES();
  for (const auto& entry : cases_.at("models")) {
    const auto file = entry.at("files").begin().value().get<std::string>();
    const auto amod = test::tmpPath(tmp_, entry.at("name").get<std::string>() + ".amod");
    saveModel(amod, *model(file));
    std::vector<std::string> args{"encode", amod.string()};
    for (const auto& cs : entry.at("cases")) args.push_back((dir_ / cs.at("photo").get<std::string>()).string());
    const auto out = test::tmpPath(tmp_, entry.at("name").get<std::string>() + "-z.json");
    args.insert(args.end(), {"--no-align", "-o", out.string()});
    auto r = test::runAutomod(args);
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto records = readLatentFile(out);
    QCOMPARE(records.size(), entry.at("cases").size());
    for (size_t i = 0; i < records.size(); ++i) {
      const auto expected = test::readF32(dir_, entry["cases"][i].at("z")).view(-1);
      const double dz = test::maxAbsDiff(records[i].z.view(-1), expected);
      QVERIFY2(dz <= 1e-4, qPrintable(QString("%1: the code differs by %2").arg(QString::fromStdString(records[i].source)).arg(dz)));
    }
    // --input-transform area is the other transform: the codes move (by 8e-4 to 3e-3 on the shared fixtures).
    const auto area_out = test::tmpPath(tmp_, entry.at("name").get<std::string>() + "-area.json");
    args[args.size() - 1] = area_out.string();
    args.push_back("--input-transform");
    args.push_back("area");
    r = test::runAutomod(args);
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto area = readLatentFile(area_out);
    double moved = 0;
    for (size_t i = 0; i < area.size(); ++i) moved = std::max(moved, test::maxAbsDiff(area[i].z, records[i].z));
    QVERIFY2(moved > 1e-4, qPrintable(QString("--input-transform area changed the codes by only %1").arg(moved)));
  }
}

QTEST_GUILESS_MAIN(TestPhotoCases)
#include "tst_photo_cases.moc"
