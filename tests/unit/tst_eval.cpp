// Evaluation as a library (core/eval/eval.h, core/eval/report.h): evaluate() gives every field
// `automod eval` prints and scores an exact autoencoder perfectly; the attribute-transfer measure
// finds the scale that carries an attribute, and a model blind to which face gave which blocks
// follows at exactly the stated chance; the whole face report runs on a few labelled renders.
#include <QtTest>

#include <fstream>
#include <random>
#include <set>

#include "core/data/dataset.h"
#include "core/eval/eval.h"
#include "core/eval/report.h"
#include "core/io/image.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {

// An autoencoder whose answers are known. The code is the image itself (C·R·R values); decoder
// block k draws only its own band of rows, from its own latent. So θ(φ(x)) = x, φ(θ(z)) = z, and a
// mixture's first j blocks draw A's rows exactly (L_j = 0). `blind`: every block draws the whole
// image as the element-wise maximum over all blocks' latents, so which face gave which blocks does
// not matter.
class RowBandModel : public EvalModel {
 public:
  RowBandModel(BlockLayout layout, bool blind = false) : layout_(std::move(layout)), blind_(blind) {}
  BlockLayout layout() const override { return layout_; }
  int resolution() const override { return layout_.resolutions.back(); }
  torch::Tensor encode(const torch::Tensor& images) override { return images.flatten(1).clone(); }
  torch::Tensor decode(const LatentPlan& plan) override { return canvas(plan, plan.size()); }
  torch::Tensor canvas(const LatentPlan& plan, int blocks) override {
    const int r = resolution(), nb = layout_.size();
    auto image = [&](int k) { return plan[k].view({plan.batch(), 3, r, r}); };
    auto out = blind_ ? image(0).clone() : torch::zeros({plan.batch(), 3, r, r});
    for (int k = 0; k < blocks; ++k) {
      if (blind_) {
        out = torch::maximum(out, image(k));
      } else {
        const int first = k * r / nb, last = (k + 1) * r / nb;
        out.narrow(2, first, last - first).copy_(image(k).narrow(2, first, last - first));
      }
    }
    return out;
  }
  torch::Tensor randomLatents(int64_t n, uint64_t seed) override {
    auto gen = at::detail::createCPUGenerator(seed);
    const int r = resolution();
    return at::rand({n, 3 * r * r}, gen, torch::TensorOptions().dtype(torch::kFloat32)) * 2 - 1;
  }

 private:
  BlockLayout layout_;
  bool blind_;
};

// Smooth random uint8 images [n, 3, size, size] (low-frequency content, like photos).
torch::Tensor smoothImages(int64_t n, int size, uint64_t seed) {
  torch::manual_seed(seed);
  auto small = torch::rand({n, 3, 4, 4});
  auto up = torch::nn::functional::interpolate(
      small, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{size, size}).mode(torch::kBilinear).align_corners(false));
  return (up * 255).round().to(torch::kUInt8);
}

struct Labelled {
  FaceAttributeTable table;
  torch::Tensor images;  // uint8 [N, 3, 16, 16]
};

// 16×16 "faces" on a grey ground: glasses (yes/no) a dark band in rows 1–3, which RowBandModel's
// block 0 draws (coarse); hair colour one of three tints in rows 11–15, which its block 2 draws
// (intermediate).
Labelled bandedFaces(int n, uint64_t seed) {
  Labelled d;
  d.table.names = {"glasses", "hair_color"};
  d.table.classes = {{"none", "present"}, {"red", "green", "blue"}};
  d.table.labels.resize(2);
  std::mt19937 rng(seed);
  std::vector<torch::Tensor> images;
  for (int i = 0; i < n; ++i) {
    const bool glasses = rng() % 2 == 0;
    const int hair = static_cast<int>(rng() % 3);
    auto img = torch::full({3, 16, 16}, 200, torch::kUInt8);
    img.narrow(1, 11, 5).select(0, hair).fill_(40);
    if (glasses) img.narrow(1, 1, 3).fill_(10);
    images.push_back(img);
    d.table.labels[0].push_back(glasses ? 1 : 0);
    d.table.labels[1].push_back(hair);
    d.table.files.push_back("face" + std::to_string(i) + ".png");
  }
  d.images = torch::stack(images);
  return d;
}

AttributeProbe trainedProbe() {
  auto train = bandedFaces(200, 1);
  return trainAttributeProbe(train.images, train.table, ProbeTrainOptions{.epochs = 8, .batch = 32, .seed = 0});
}

const std::set<std::string> kEvalFields{"resolution", "held_out_images", "data", "seed", "reconstruction",
                                        "cycle_consistency_cos", "layer_entanglement", "swd_x1e3"};

std::set<std::string> keys(const nlohmann::json& j) {
  std::set<std::string> out;
  for (auto& [k, v] : j.items()) out.insert(k);
  return out;
}

}  // namespace

Q_DECLARE_METATYPE(automod::BlockLayout)

class TestEval : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void evaluateGivesEveryFieldOfAutomodEval();
  void evaluateIsDeterministicForASeed();
  void exactAutoencoderScoresPerfectly();
  void entanglementSeesBlocksThatDrawOtherScales();
  void mixesAreTheNamedScalesOfTheLayout_data();
  void mixesAreTheNamedScalesOfTheLayout();
  void evaluateNeedsHeldOutImages();
  void transferFindsTheScaleThatCarriesEachAttribute();
  void assignmentBlindMixesFollowAtExactlyChance();
  void faceReportRunsOnTinyLabelledRenders();
};

// A tiny Automodulator on 8 held-out images: the fields and value ranges `automod eval` prints.
void TestEval::evaluateGivesEveryFieldOfAutomodEval() {
  auto model = test::tinyModel(16, 3);
  TensorImageDataset data(smoothImages(20, 16, 1), 8, "smooth test images");
  std::vector<std::string> lines;
  const auto r = evaluate(*model, data, EvalOptions{.count = 100, .seed = 0, .log = [&](const std::string& s) {
                                                      lines.push_back(s);
                                                    }});
  QCOMPARE(r.held_out_images, int64_t{8});  // all there are, not the 100 asked for
  QCOMPARE(r.resolution, 16);
  QVERIFY(r.psnr_db > 0 && r.psnr_db < 60);
  QVERIFY(r.ssim > -1 && r.ssim < 1);
  QVERIFY(r.cycle_consistency_cos >= -1 && r.cycle_consistency_cos <= 1);
  QCOMPARE(r.layer_entanglement.size(), size_t{2});  // 3 blocks: j = 1, 2
  QCOMPARE(r.layer_entanglement[1].canvas_resolution, 8);
  QVERIFY(r.layer_entanglement_mean > 0);
  QVERIFY(r.swd_computed);
  // An untrained model's samples are far from the images: above the real-vs-real floor.
  QVERIFY(r.swd_samples.average > r.swd_real_floor.average);
  QVERIFY(!lines.empty());

  const auto j = r.toJson();
  QCOMPARE(keys(j), kEvalFields);
  QCOMPARE(j["data"].get<std::string>(), std::string("smooth test images"));
  QCOMPARE(keys(j["reconstruction"]), (std::set<std::string>{"psnr_db", "ssim"}));
  QCOMPARE(keys(j["swd_x1e3"]), (std::set<std::string>{"real_floor", "samples", "mixes"}));
  QCOMPARE(keys(j["swd_x1e3"]["mixes"]), (std::set<std::string>{"coarse", "intermediate", "average"}));
  QCOMPARE(keys(j["swd_x1e3"]["samples"]), (std::set<std::string>{"levels", "per_level", "average"}));
  QCOMPARE(j["layer_entanglement"]["per_split"][0]["j"].get<int>(), 1);
  QCOMPARE(j["layer_entanglement"]["mean"].get<double>(), r.layer_entanglement_mean);
}

void TestEval::evaluateIsDeterministicForASeed() {
  auto model = test::tinyModel(16, 3);
  TensorImageDataset data(smoothImages(20, 16, 2), 6);
  const auto a = evaluate(*model, data, EvalOptions{.count = 6, .seed = 4}).toJson();
  const auto b = evaluate(*model, data, EvalOptions{.count = 6, .seed = 4}).toJson();
  const auto c = evaluate(*model, data, EvalOptions{.count = 6, .seed = 5}).toJson();
  QCOMPARE(a.dump(), b.dump());
  QVERIFY(a["swd_x1e3"]["samples"] != c["swd_x1e3"]["samples"]);
}

// θ(φ(x)) = x and φ(θ(z)) = z, and every block draws only its own rows.
void TestEval::exactAutoencoderScoresPerfectly() {
  RowBandModel model(BlockLayout::plain(3));
  TensorImageDataset data(smoothImages(24, 16, 3), 8);
  const auto r = evaluate(model, data, EvalOptions{.count = 8});
  QVERIFY2(std::isinf(r.psnr_db), qPrintable(QString::number(r.psnr_db)));
  QVERIFY(std::abs(r.ssim - 1.0) < 1e-9);
  QVERIFY(std::abs(r.cycle_consistency_cos - 1.0) < 1e-6);
  for (const auto& e : r.layer_entanglement) QCOMPARE(e.mse, 0.0);
  // Mixes of real images are real-looking rows: their SWD is finite and measured for each scale.
  QCOMPARE(r.swd_mixes.size(), size_t{2});
}

// A decoder whose every block draws the whole image: the canvas after block 0 already depends on
// the other blocks' codes once re-encoded, and L_j sees it.
void TestEval::entanglementSeesBlocksThatDrawOtherScales() {
  RowBandModel blind(BlockLayout::plain(3), true);
  TensorImageDataset data(smoothImages(24, 16, 4), 8);
  const auto r = evaluate(blind, data, EvalOptions{.count = 8});
  QVERIFY(r.layer_entanglement_mean > 1e-3);
  QVERIFY(r.psnr_db > 100);  // still an exact reconstruction: only mixes tell the two apart
}

void TestEval::mixesAreTheNamedScalesOfTheLayout_data() {
  QTest::addColumn<BlockLayout>("layout");
  QTest::addColumn<QStringList>("scales");
  QTest::newRow("16 px: coarse, intermediate") << BlockLayout::plain(3) << QStringList{"coarse", "intermediate"};
  QTest::newRow("16 px with the extra 8x8 block") << BlockLayout::forResolution(16, true)
                                                  << QStringList{"coarse", "intermediate"};
  QTest::newRow("64 px: all three") << BlockLayout::plain(5) << QStringList{"coarse", "intermediate", "fine"};
}

void TestEval::mixesAreTheNamedScalesOfTheLayout() {
  QFETCH(BlockLayout, layout);
  QFETCH(QStringList, scales);
  RowBandModel model(layout);
  const int r = layout.resolutions.back();
  TensorImageDataset data(smoothImages(10, r, 5), 4);
  const auto result = evaluate(model, data, EvalOptions{.count = 4});
  QStringList got;
  for (const auto& [name, swd] : result.swd_mixes) got << QString::fromStdString(name);
  QCOMPARE(got, scales);
  QCOMPARE(result.layer_entanglement.size(), size_t(layout.size() - 1));
}

void TestEval::evaluateNeedsHeldOutImages() {
  RowBandModel model(BlockLayout::plain(3));
  TensorImageDataset data(smoothImages(6, 16, 6), 0);
  QVERIFY_THROWS_EXCEPTION(Error, evaluate(model, data, EvalOptions{}));
}

// Glasses are drawn by block 0 (coarse) and hair colour by block 2 (intermediate): the measure finds
// those homes from the probe alone, and mixes follow them.
void TestEval::transferFindsTheScaleThatCarriesEachAttribute() {
  auto probe = trainedProbe();
  auto faces = bandedFaces(60, 2);
  RowBandModel model(BlockLayout::plain(3));
  const auto r = measureAttributeTransfer(model, probe, faces.images, faces.table,
                                          AttributeTransferOptions{.pairs = 64, .seed = 0});
  QCOMPARE(r.pairs, 64);
  QCOMPARE(r.scales.size(), size_t{2});
  const auto& glasses = r.attribute("glasses");
  const auto& hair = r.attribute("hair_color");
  QVERIFY2(glasses.ceiling > 0.9 && hair.ceiling > 0.9, "the probe reads exact reconstructions");
  QVERIFY(glasses.weight > 0.8 && hair.weight > 0.8);
  QCOMPARE(glasses.home_scale, std::string("coarse"));
  QCOMPARE(hair.home_scale, std::string("intermediate"));
  // The evidence: the home swap moves the probe almost all the way, the other one hardly at all.
  QVERIFY2(glasses.evidence[0].moves_probe > 0.8, qPrintable(QString::number(glasses.evidence[0].moves_probe)));
  QVERIFY2(glasses.evidence[1].moves_probe < 0.2, qPrintable(QString::number(glasses.evidence[1].moves_probe)));
  QVERIFY(hair.evidence[1].moves_probe > 0.8 && hair.evidence[0].moves_probe < 0.2);
  for (const auto* a : {&glasses, &hair}) {
    QVERIFY(a->home_mixes > 10);
    QCOMPARE(a->home_mixes % 2, int64_t{0});  // both mirrored mixes of each pair
    QVERIFY2(a->readableRate() > 0.9, qPrintable(QString::number(a->readableRate())));
    QVERIFY2(*a->followRate() > 0.9, qPrintable(QString::number(*a->followRate())));
  }
  QCOMPARE(r.scored_attributes, (std::vector<std::string>{"glasses", "hair_color"}));
  QVERIFY(r.score && *r.score > 0.9);
  const auto j = r.toJson();
  QCOMPARE(j["follow_chance"].get<double>(), 0.5);
  QCOMPARE(j["scales"]["coarse"].get<std::string>(), std::string("0-1"));
  QCOMPARE(j["attributes"]["glasses"]["home_scale"].get<std::string>(), std::string("coarse"));
  QVERIFY(j["attributes"]["hair_color"]["home_evidence"]["coarse"].contains("moves_probe"));
}

// When the decoded mix does not depend on which face gave which blocks, the two mirrored mixes of a
// pair are the same image, read as the same class: exactly half the readable ones follow the home
// scale's source, whatever the probe reads.
void TestEval::assignmentBlindMixesFollowAtExactlyChance() {
  auto probe = trainedProbe();
  auto faces = bandedFaces(60, 3);
  RowBandModel blind(BlockLayout::plain(3), true);
  const auto r = measureAttributeTransfer(blind, probe, faces.images, faces.table,
                                          AttributeTransferOptions{.pairs = 64, .seed = 1});
  for (const auto& a : r.attributes) {
    QVERIFY2(a.readable_mixes > 0, a.attribute.c_str());
    QCOMPARE(a.following_mixes * 2, a.readable_mixes);
    QCOMPARE(*a.followRate(), AttributeTransferReport::kFollowChance);
  }
  // A yes/no attribute's mixes are always read as A's or B's class.
  QCOMPARE(r.attribute("glasses").readableRate(), 1.0);
  // The probe reads exact reconstructions: both attributes count, and the score is at chance too.
  QCOMPARE(r.scored_attributes.size(), size_t{2});
  QVERIFY(std::abs(*r.score - AttributeTransferReport::kFollowChance) < 1e-12);
}

// The whole `automod report` pipeline on a few labelled renders written to disk and a tiny model.
void TestEval::faceReportRunsOnTinyLabelledRenders() {
  QTemporaryDir dir;
  for (const auto& [name, n, seed] : {std::tuple{"probe", 80, 4}, std::tuple{"eval", 40, 5}}) {
    const auto folder = test::tmpPath(dir, name);
    fs::create_directories(folder);
    auto faces = bandedFaces(n, seed);
    std::ofstream jsonl(folder / "attributes.jsonl");
    for (int i = 0; i < n; ++i) {
      const auto file = "face" + std::to_string(i) + ".png";
      writeImage(folder / file, faces.images[i].permute({1, 2, 0}).contiguous());
      jsonl << nlohmann::json{{"file", file},
                              {"glasses", faces.table.labels[0][i] ? "round" : "none"},
                              {"hair_color", faces.table.classes[1][faces.table.labels[1][i]]}}
                   .dump()
            << "\n";
    }
  }
  auto data = loadFaceReportData(test::tmpPath(dir, "probe"), test::tmpPath(dir, "eval"), 16, 3,
                                 {"glasses", "hair_color"});
  QCOMPARE(data.eval_table.classes[0], (std::vector<std::string>{"none", "present"}));
  QCOMPARE(data.eval_images.sizes(), (torch::IntArrayRef{40, 3, 16, 16}));
  auto model = test::tinyModel(16);
  const auto report = faceReport(
      *model, data, FaceReportOptions{.pairs = 16, .exemplars = 2, .epochs = 1, .strengths = {1.0}, .seed = 0});
  QCOMPARE(report["resolution"].get<int>(), 16);
  QCOMPARE(report["eval_faces"].get<int>(), 40);
  QVERIFY(report["probe_balanced_accuracy_on_renders"].contains("hair_color"));
  const auto& t = report["attribute_transfer"];
  QCOMPARE(t["pairs"].get<int>(), 16);
  QCOMPARE(t["follow_chance"].get<double>(), 0.5);
  // An untrained model's probe may read nothing on its reconstructions: then no attribute counts and
  // the score is null, not 0.
  if (t["scored_attributes"].empty()) QVERIFY(t["score"].is_null());
  else QVERIFY(t["score"].get<double>() >= 0 && t["score"].get<double>() <= 1);
  for (const char* name : {"glasses", "hair_color"}) {
    const auto& a = t["attributes"][name];
    for (const char* key : {"ceiling", "ceiling_balanced_accuracy", "weight", "scored", "pairs_that_differ", "home_scale",
                            "home_evidence", "home_mixes", "readable_rate", "follow_rate", "follow_chance"})
      QVERIFY2(a.contains(key), key);
    for (const char* scale : {"coarse", "intermediate"}) QVERIFY(a["home_evidence"][scale].contains("moves_probe"));
  }
  // Glasses (yes/no) edited on coarse, intermediate and all blocks at strength 1; hair colour is not
  // an edit.
  QCOMPARE(report["attribute_edits"].size(), size_t{3});
  for (const auto& e : report["attribute_edits"]) {
    QCOMPARE(e["attribute"].get<std::string>(), std::string("glasses"));
    QVERIFY2(e.contains("target_flip_rate") && e.contains("readable_other_attribute_change_rate"), e.dump().c_str());
  }
}

QTEST_GUILESS_MAIN(TestEval)
#include "tst_eval.moc"
