// Attribute probes for the synthetic-face report: label tables, probe training, balanced accuracy,
// and the attribute-edit report's bookkeeping on a tiny model.
#include <QtTest>

#include <algorithm>
#include <fstream>

#include "core/eval/face_probe.h"
#include "core/io/image.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {
// Faces whose "glasses" attribute is drawn as a dark band and whose "hair_color" sets the background
// tint: a probe must learn both from pixels.
// `band` is the glasses band's grey level (10: black, 150: faint against the 200 background).
void writeLabelledSet(const fs::path& dir, int n, uint64_t seed, double glasses_rate = 0.5, int band = 10) {
  fs::create_directories(dir);
  std::ofstream jsonl(dir / "attributes.jsonl");
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) {
    const bool glasses = std::uniform_real_distribution<double>(0, 1)(rng) < glasses_rate;
    const int hair = rng() % 3;
    auto img = torch::full({16, 16, 3}, 200, torch::kUInt8);
    img.select(2, hair).fill_(90);
    if (glasses) img.narrow(0, 6, 3).fill_(band);
    char name[32];
    std::snprintf(name, sizeof name, "%06d.png", i);
    writeImage(dir / name, img);
    nlohmann::json j{{"file", name}, {"glasses", glasses ? "glasses1" : "none"}, {"hair_color", hair}};
    jsonl << j.dump() << "\n";
  }
}
}  // namespace

class TestFaceProbe : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void tableMapsValuesToStableClasses();
  void rareValuesMergeIntoOther();
  void probeLearnsVisibleAttributes();
  void balancedAccuracyWeighsEachPresentClassEqually();
  void editReportMeasuresFlipsAndOtherAttributes();
  void missingFileIsAClearError();
  void editsPoolEveryStyleOfAnAttribute();
  void rareAttributesAreStillSeen();
};

void TestFaceProbe::tableMapsValuesToStableClasses() {
  QTemporaryDir dir;
  writeLabelledSet(test::tmpPath(dir, "a"), 30, 1);
  writeLabelledSet(test::tmpPath(dir, "b"), 10, 2);
  auto a = readFaceAttributes(test::tmpPath(dir, "a"), {"glasses", "hair_color"});
  auto b = readFaceAttributes(test::tmpPath(dir, "b"), {"glasses", "hair_color"}, 8, &a);
  QCOMPARE(a.size(), int64_t(30));
  QCOMPARE(a.classes[0].size(), size_t(2));
  QCOMPARE(b.classes, a.classes);
  // The same value has the same id in both tables.
  std::ifstream in(test::tmpPath(dir, "b") / "attributes.jsonl");
  std::string line;
  std::getline(in, line);
  auto j = nlohmann::json::parse(line);
  QCOMPARE(a.classes[0][b.labels[0][0]], j["glasses"].get<std::string>());
}

void TestFaceProbe::rareValuesMergeIntoOther() {
  QTemporaryDir dir;
  writeLabelledSet(test::tmpPath(dir, "a"), 40, 3);
  auto t = readFaceAttributes(test::tmpPath(dir, "a"), {"hair_color"}, 2);
  QCOMPARE(t.classes[0].size(), size_t(2));
  QCOMPARE(t.classes[0][1], std::string("other"));
}

void TestFaceProbe::probeLearnsVisibleAttributes() {
  QTemporaryDir dir;
  writeLabelledSet(test::tmpPath(dir, "train"), 160, 4);
  writeLabelledSet(test::tmpPath(dir, "test"), 40, 5);
  auto train = readFaceAttributes(test::tmpPath(dir, "train"), {"glasses", "hair_color"});
  auto held = readFaceAttributes(test::tmpPath(dir, "test"), {"glasses", "hair_color"}, 8, &train);
  auto probe = trainAttributeProbe(loadFaceImages(train, 16), train, ProbeTrainOptions{.epochs = 8, .batch = 32});
  auto acc = probeAccuracy(probe, loadFaceImages(held, 16), held);
  QVERIFY2(acc[0] > 0.9, qPrintable(QString::number(acc[0])));
  QVERIFY2(acc[1] > 0.9, qPrintable(QString::number(acc[1])));
}

// A probe that always answers the majority class is right 90% of the time but reads no minority
// face: balanced accuracy 1/2 for two classes; classes absent from the labels do not count.
void TestFaceProbe::balancedAccuracyWeighsEachPresentClassEqually() {
  auto labels = torch::cat({torch::zeros({90}, torch::kInt64), torch::ones({10}, torch::kInt64)});
  QCOMPARE(balancedAccuracy(torch::zeros({100}, torch::kInt64), labels, 3), 0.5);
  QCOMPARE(balancedAccuracy(labels, labels, 3), 1.0);
  auto half = labels.clone();
  half.narrow(0, 90, 5).fill_(0);  // half the minority read wrong
  QCOMPARE(balancedAccuracy(half, labels, 2), 0.75);
}

// (Attribute transfer in mixes is measured by core/eval/report.h and tested in tst_eval.)
void TestFaceProbe::editReportMeasuresFlipsAndOtherAttributes() {
  QTemporaryDir dir;
  writeLabelledSet(test::tmpPath(dir, "s"), 24, 6);
  auto t = readFaceAttributes(test::tmpPath(dir, "s"), {"glasses", "hair_color"});
  auto images = loadFaceImages(t, 16);
  auto probe = trainAttributeProbe(images, t, ProbeTrainOptions{.epochs = 1});
  auto model = test::tinyModel(16);
  auto edit = attributeEditReport(*model, probe, images, t, "glasses", presentClasses(t, t.index("glasses")), 2,
                                  {0, 1}, 1.0, 0);
  const double flips = edit["target_flip_rate"];
  QVERIFY(flips >= 0.0 && flips <= 1.0);
  // Targets: the faces without glasses that were not drawn as exemplars.
  const auto& classes = t.classes[t.index("glasses")];
  const int64_t none = std::find(classes.begin(), classes.end(), "none") - classes.begin();
  const auto& labels = t.labels[t.index("glasses")];
  QCOMPARE(edit["faces_edited"].get<int64_t>(), int64_t(std::count(labels.begin(), labels.end(), none)) - 2);
  QVERIFY(edit["other_attribute_change_rate"].contains("hair_color"));
  QVERIFY(!edit["other_attribute_change_rate"].contains("glasses"));
}

void TestFaceProbe::missingFileIsAClearError() {
  QTemporaryDir dir;
  try {
    readFaceAttributes(dir.path().toStdString(), {"glasses"});
    QFAIL("expected an error");
  } catch (const std::exception& e) {
    QVERIFY(std::string(e.what()).find("attributes.jsonl") != std::string::npos);
  }
}

// The report edits "glasses" or "facial hair" as any style vs none: each single style is too rare
// among a few hundred renders to give exemplars and targets (the bundled model's first report could
// not run its facial-hair edit at all).
void TestFaceProbe::editsPoolEveryStyleOfAnAttribute() {
  QTemporaryDir dir;
  const auto d = test::tmpPath(dir, "s");
  fs::create_directories(d);
  {
    std::ofstream jsonl(d / "attributes.jsonl");
    // 12 faces without a beard, then 3 each of two beard styles.
    const char* beard[] = {"none", "none", "none", "none", "none", "none", "none", "none", "none", "none",
                           "none", "none", "goatee", "goatee", "goatee", "chin", "chin", "chin"};
    for (int i = 0; i < 18; ++i) {
      auto img = torch::full({16, 16, 3}, 150, torch::kUInt8);
      if (i >= 12) img.narrow(0, 10, 4).fill_(i < 15 ? 20 : 60);
      char name[32];
      std::snprintf(name, sizeof name, "%06d.png", i);
      writeImage(d / name, img);
      jsonl << nlohmann::json{{"file", name}, {"facial_hair", beard[i]}, {"hair_color", i % 3}}.dump() << "\n";
    }
  }
  auto t = readFaceAttributes(d, {"facial_hair", "hair_color"});
  const int a = t.index("facial_hair");
  auto present = presentClasses(t, a);
  QCOMPARE(present.size(), size_t(2));
  for (auto c : present) QVERIFY(t.classes[a][c] != "none");
  auto images = loadFaceImages(t, 16);
  auto probe = trainAttributeProbe(images, t, ProbeTrainOptions{.epochs = 1});
  auto model = test::tinyModel(16);
  // One style alone (3 faces) cannot give 4 exemplars plus a held-out face; both together (6) can.
  try {
    attributeEditReport(*model, probe, images, t, "facial_hair", {present[0]}, 4, {0}, 1.0, 0);
    QFAIL("expected an error");
  } catch (const Error& e) {
    QVERIFY2(std::string(e.what()).find("3 with") != std::string::npos, e.what());
  }
  auto r = attributeEditReport(*model, probe, images, t, "facial_hair", present, 4, {0}, 1.0, 0);
  QCOMPARE(r["faces_edited"].get<int>(), 12 - 4);  // the faces without a beard that were not exemplars
  QCOMPARE(r["positive_classes"].size(), size_t(2));
  const double before = r["target_present_before"], after = r["target_present_after"];
  QVERIFY(before >= 0 && before <= 1 && after >= 0 && after <= 1);
  // As a yes/no attribute (what the report edits): the same faces, one "present" class.
  auto yes_no = t;
  collapseToPresence(yes_no, "facial_hair");
  QCOMPARE(yes_no.classes[a], (std::vector<std::string>{"none", "present"}));
  QCOMPARE(yes_no.labelTensor(a).sum().item<int64_t>(), int64_t(6));
  QCOMPARE(presentClasses(yes_no, a), std::vector<int64_t>{1});
  // hair_color has no "none": there is nothing to edit from.
  QVERIFY_THROWS_EXCEPTION(Error, collapseToPresence(yes_no, "hair_color"));
  QVERIFY_THROWS_EXCEPTION(Error, presentClasses(t, t.index("hair_color")));
}

// Glasses are on ~8% of the synthetic faces: a probe trained without class weights can answer
// "none" for everything (accuracy 0.92, balanced accuracy 0.5), and then no edit adding glasses is
// ever seen. A probe with glasses' classes weighted finds the rare class.
void TestFaceProbe::rareAttributesAreStillSeen() {
  QTemporaryDir dir;
  writeLabelledSet(test::tmpPath(dir, "train"), 300, 7, 0.08, 150);
  writeLabelledSet(test::tmpPath(dir, "test"), 200, 8, 0.08, 150);
  auto train = readFaceAttributes(test::tmpPath(dir, "train"), {"glasses", "hair_color"});
  auto held = readFaceAttributes(test::tmpPath(dir, "test"), {"glasses", "hair_color"}, 8, &train);
  auto train_images = loadFaceImages(train, 16), images = loadFaceImages(held, 16);
  auto plain = trainAttributeProbe(train_images, train, ProbeTrainOptions{.epochs = 3, .batch = 32});
  const ProbeTrainOptions options{.epochs = 3, .batch = 32, .balanced = {"glasses"}};
  auto weighted = trainAttributeProbe(train_images, train, options);
  const double before = probeBalancedAccuracy(plain, images, held)[0];
  const double after = probeBalancedAccuracy(weighted, images, held)[0];
  QVERIFY2(before < 0.6, qPrintable(QString::number(before)));  // "none" for (nearly) everything
  QVERIFY2(after > 0.75, qPrintable(QString::number(after)));
}

QTEST_GUILESS_MAIN(TestFaceProbe)
#include "tst_face_probe.moc"
