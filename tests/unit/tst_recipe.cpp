// Recipes (docs/design.md §1.8) and the editing commands of the CLI (docs/design.md §8): round trips, errors that name the
// field, `automod apply` over a folder, and encode / mix / sample --lock / attribute end to end.
#include <QtTest>

#include <fstream>

#include "core/edit/attribute.h"
#include "core/edit/plan.h"
#include "core/edit/recipe.h"
#include "core/edit/refine.h"
#include "core/edit/session.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/util/error.h"
#include "testutil.h"

using namespace automod;
namespace fs = std::filesystem;

class TestRecipe : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void saveThenLoadGivesIdenticalImage();
  void recipeFollowsAssignments();
  void badRecipesNameTheField_data();
  void badRecipesNameTheField();
  void recipeForOtherResolutionIsRejected();
  void inputRoleNeedsAPhoto();
  void cliApplyRunsOverFolderAndSkipsBadPhotos();
  void cliApplyFailsWhenAllFail();
  void cliEncodeThenMixLatentFiles();
  void cliMixErrors();
  void cliSampleLockIsReproducible();
  void cliAttributeBuildAndApply();
  void recipeRefinesItsPhotosPerBlock();
  void cliApplyReplaysRefineIdentically();
  void cliEncodeRefineThenMixUsesTheBlockCodes();

 private:
  QTemporaryDir dir_;
  fs::path model_path_, a_, b_, c_;
  std::unique_ptr<Automodulator> model_;
  fs::path p(const std::string& name) const { return test::tmpPath(dir_, name); }
  std::string writeRecipe(const std::string& name, const std::string& text) const {
    std::ofstream(p(name)) << text;
    return p(name).string();
  }
};

void TestRecipe::initTestCase() {
  model_ = test::tinyModel(64);
  model_path_ = p("m.amod");
  saveModel(model_path_, *model_);
  a_ = p("a.png"), b_ = p("b.png"), c_ = p("c.png");
  test::writeTestImage(a_, 80, 64, 1);
  test::writeTestImage(b_, 64, 80, 2);
  test::writeTestImage(c_, 70, 70, 3);
  AttributeVector attr;
  attr.resolution = 64;
  attr.latent_dim = 32;
  attr.ranges = {BlockRange{4, 4}};
  attr.vector = model_->randomLatents(1, 11)[0];
  attr.save(p("attr.json"));
}

void TestRecipe::saveThenLoadGivesIdenticalImage() {
  Recipe r;
  r.resolution = 64;
  r.align = false;
  r.sources["a"] = SourceSpec::photo(a_);
  r.sources["b"] = SourceSpec::photo(b_);
  r.sources["r"] = SourceSpec::random(7);
  r.base = "a";
  r.assignments.push_back({"coarse", {{"b", 1.0}}});
  r.assignments.push_back({"fine", {{"a", 0.3}, {"r", 0.7}}});
  r.attributes.push_back({p("attr.json"), std::nullopt, 1.5, ""});
  auto path = p("recipe.json");
  r.save(path);
  auto loaded = Recipe::load(path);
  EditSession s(*model_, PhotoOptions{.align = false});
  auto before = s.decodeFull(recipePlan(r, s.sources(), *model_));
  auto after = s.decodeFull(recipePlan(loaded, s.sources(), *model_));
  QVERIFY(torch::equal(before, after));
  // Paths under the recipe's folder are stored relative to it, so a project folder can move.
  std::ifstream f(path);
  auto j = nlohmann::json::parse(f);
  QCOMPARE(j["sources"]["a"]["photo"].get<std::string>(), std::string("a.png"));
  QVERIFY(loaded.toJson(dir_.path().toStdString()) == r.toJson(dir_.path().toStdString()));
}

void TestRecipe::recipeFollowsAssignments() {
  Recipe r;
  r.sources["b"] = SourceSpec::photo(b_);
  r.assignments.push_back({"coarse", {{"b", 1.0}}});
  SourceCache cache(*model_, PhotoOptions{.align = false});
  auto plan = recipePlan(r, cache, *model_, SourceSpec::photo(a_));
  auto za = cache.latent(SourceSpec::photo(a_)), zb = cache.latent(SourceSpec::photo(b_));
  QVERIFY(torch::equal(plan[0], zb) && torch::equal(plan[1], zb));
  for (int k = 2; k < 5; ++k) QVERIFY(torch::equal(plan[k], za));  // the input is the base by default
}

void TestRecipe::badRecipesNameTheField_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<QString>("field");
  QTest::newRow("unknown top key") << R"({"sorces": {}})" << "sorces";
  QTest::newRow("unknown source key") << R"({"sources": {"a": {"foto": "a.png"}}})" << "sources.a.foto";
  QTest::newRow("missing photo") << R"({"sources": {"a": {"photo": "nope.png"}}})" << "sources.a.photo";
  QTest::newRow("seed not a number") << R"({"sources": {"r": {"seed": "7"}}})" << "sources.r.seed";
  QTest::newRow("two kinds") << R"({"sources": {"r": {"seed": 7, "photo": "a.png"}}})" << "sources.r";
  QTest::newRow("unknown source name") << R"({"assignments": [{"scales": "coarse", "source": "zz"}]})"
                                       << "assignments[0].sources";
  QTest::newRow("scales wrong type") << R"({"assignments": [{"scales": 3, "source": "input"}]})"
                                     << "assignments[0].scales";
  QTest::newRow("empty sources") << R"({"assignments": [{"scales": "fine", "sources": []}]})"
                                 << "assignments[0].sources";
  QTest::newRow("negative weight")
      << R"({"assignments": [{"scales": "fine", "sources": [{"source": "input", "weight": -1}]}]})"
      << "assignments[0].sources[0].weight";
  QTest::newRow("missing attribute file") << R"({"attributes": [{"file": "none.json"}]})" << "attributes[0].file";
  QTest::newRow("strength wrong type") << R"({"attributes": [{"file": "attr.json", "strength": "big"}]})"
                                       << "attributes[0].strength";
  QTest::newRow("align wrong type") << R"({"align": "yes"})" << "align";
  QTest::newRow("input redefined") << R"({"sources": {"input": {"seed": 1}}})" << "sources.input";
  QTest::newRow("not json") << "{" << "not valid JSON";
}

void TestRecipe::badRecipesNameTheField() {
  QFETCH(QString, text);
  QFETCH(QString, field);
  auto path = writeRecipe("bad.json", text.toStdString());
  try {
    Recipe::load(path);
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains(field), e.what());
    QVERIFY2(QString(e.what()).contains("bad.json"), e.what());
  }
}

void TestRecipe::recipeForOtherResolutionIsRejected() {
  auto r = Recipe::load(writeRecipe("r128.json", R"({"resolution": 128, "sources": {"r": {"seed": 1}}, "base": "r"})"));
  SourceCache cache(*model_);
  try {
    recipePlan(r, cache, *model_);
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("128 px"), e.what());
  }
  // A scale the model does not have fails when the plan is built, naming the assignment.
  auto small = test::tinyModel(32);
  SourceCache small_cache(*small);
  auto fine = Recipe::load(writeRecipe("fine.json", R"({"sources": {"r": {"seed": 1}}, "base": "r",
      "assignments": [{"scales": "fine", "source": "r"}]})"));
  try {
    recipePlan(fine, small_cache, *small);
    QFAIL("no error");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("assignments[0].scales"), e.what());
  }
}

void TestRecipe::inputRoleNeedsAPhoto() {
  auto r = Recipe::load(writeRecipe("in.json", R"({"sources": {"r": {"seed": 1}},
      "assignments": [{"scales": "coarse", "source": "r"}]})"));
  QVERIFY(r.usesInput());
  SourceCache cache(*model_);
  QVERIFY_THROWS_EXCEPTION(Error, recipePlan(r, cache, *model_));
}

void TestRecipe::cliApplyRunsOverFolderAndSkipsBadPhotos() {
  auto in = p("in"), out = p("out");
  fs::create_directories(in);
  fs::copy_file(a_, in / "one.png");
  fs::copy_file(b_, in / "two.png");
  std::ofstream(in / "broken.jpg") << "not an image";
  auto recipe = writeRecipe("apply.json", R"({"align": false, "sources": {"c": {"photo": "c.png"}},
      "assignments": [{"scales": "fine", "source": "c"}], "attributes": [{"file": "attr.json", "strength": 0.5}]})");
  auto r = test::runAutomod({"apply", model_path_.string(), "--recipe", recipe, "--in", in.string(), "--out", out.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  QVERIFY2(QString::fromStdString(r.err).contains("broken.jpg"), r.err.c_str());
  QVERIFY(fs::exists(out / "one.png") && fs::exists(out / "two.png"));
  QVERIFY(!fs::exists(out / "broken.png"));
  // The CLI's image equals the library's for the same recipe and input.
  EditSession s(*model_, PhotoOptions{.align = false});
  auto expected = toImage(s.decode(recipePlan(Recipe::load(recipe), s.sources(), *model_, SourceSpec::photo(in / "one.png"))))[0];
  QVERIFY(torch::equal(readImage(out / "one.png"), expected));
}

void TestRecipe::cliApplyFailsWhenAllFail() {
  auto in = p("allbad");
  fs::create_directories(in);
  std::ofstream(in / "x.png") << "junk";
  auto recipe = writeRecipe("plain.json", R"({"align": false})");
  auto r = test::runAutomod({"apply", model_path_.string(), "--recipe", recipe, "--in", in.string(), "--out",
                             p("allbad_out").string()});
  QVERIFY(r.code != 0);
  r = test::runAutomod({"apply", model_path_.string(), "--recipe", p("missing.json").string(), "--in", in.string(),
                        "--out", p("o").string()});
  QVERIFY(r.code != 0);
  QVERIFY2(QString::fromStdString(r.err).contains("missing.json"), r.err.c_str());
}

void TestRecipe::cliEncodeThenMixLatentFiles() {
  auto latents = p("z.json");
  auto r = test::runAutomod({"encode", model_path_.string(), a_.string(), b_.string(), "--no-align", "-o", latents.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  auto records = readLatentFile(latents);
  QCOMPARE(int(records.size()), 2);
  SourceCache cache(*model_, PhotoOptions{.align = false});
  auto za = cache.latent(SourceSpec::photo(a_)), zb = cache.latent(SourceSpec::photo(b_));
  QVERIFY(test::maxAbsDiff(records[0].z, za[0]) < 1e-6);
  // Mixing the encoded latents equals mixing the photos themselves.
  auto from_files = p("mix_files.png"), from_photos = p("mix_photos.png");
  r = test::runAutomod({"mix", model_path_.string(), "--coarse", latents.string() + "#1", "--intermediate",
                        latents.string(), "--fine", latents.string() + "#1", "-o", from_files.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  r = test::runAutomod({"mix", model_path_.string(), "--coarse", b_.string(), "--intermediate", a_.string(), "--fine",
                        b_.string(), "--no-align", "-o", from_photos.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  auto img = readImage(from_photos);
  QCOMPARE(img.sizes().vec(), (std::vector<int64_t>{64, 64, 3}));
  QVERIFY(test::maxAbsDiff(readImage(from_files), img) <= 1);
  auto expected = toImage(model_->decode(buildPlan(5, zb, {{intermediateRange(BlockLayout::plain(5)), {za}, {}}})))[0];
  QVERIFY(test::maxAbsDiff(img, expected) <= 1);
}

void TestRecipe::cliMixErrors() {
  auto out = p("err.png").string();
  auto r = test::runAutomod({"mix", model_path_.string(), "-o", out});
  QVERIFY(r.code != 0);
  QVERIFY2(QString::fromStdString(r.err).contains("nothing to mix"), r.err.c_str());
  r = test::runAutomod({"mix", model_path_.string(), "--block", "7=seed:1", "-o", out});
  QVERIFY(r.code != 0);
  QVERIFY2(QString::fromStdString(r.err).contains("out of range"), r.err.c_str());
  r = test::runAutomod({"mix", model_path_.string(), "--coarse", p("nope.png").string(), "-o", out});
  QVERIFY(r.code != 0);
  QVERIFY2(QString::fromStdString(r.err).contains("nope.png"), r.err.c_str());
  r = test::runAutomod({"mix", model_path_.string(), "--fine", "seed:1@x", "-o", out});
  QVERIFY(r.code != 0);
}

void TestRecipe::cliSampleLockIsReproducible() {
  auto g1 = p("g1.png"), g2 = p("g2.png"), g3 = p("g3.png");
  std::vector<std::string> args{"sample", model_path_.string(), "-n", "4", "--lock", "coarse=" + a_.string(),
                                "--no-align", "--seed", "5", "-o"};
  auto run = [&](const fs::path& out, std::vector<std::string> a) {
    a.push_back(out.string());
    auto r = test::runAutomod(a);
    QVERIFY2(r.code == 0, r.err.c_str());
  };
  run(g1, args);
  run(g2, args);
  args[8] = "6";
  run(g3, args);
  QVERIFY(torch::equal(readImage(g1), readImage(g2)));
  QVERIFY(!torch::equal(readImage(g1), readImage(g3)));
  auto r = test::runAutomod({"sample", model_path_.string(), "-n", "2", "--lock", "coarse", "-o", g3.string()});
  QVERIFY(r.code != 0);
}

void TestRecipe::cliAttributeBuildAndApply() {
  auto pos = p("pos"), neg = p("neg");
  fs::create_directories(pos);
  fs::create_directories(neg);
  for (int i = 0; i < 2; ++i) {
    test::writeTestImage(pos / ("p" + std::to_string(i) + ".png"), 64, 64, 30 + i);
    test::writeTestImage(neg / ("n" + std::to_string(i) + ".png"), 64, 64, 40 + i);
  }
  auto attr = p("smile.json");
  auto r = test::runAutomod({"attribute", "build", model_path_.string(), "--positive", pos.string(), "--negative",
                             neg.string(), "--scales", "fine", "--no-align", "-o", attr.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  auto loaded = AttributeVector::load(attr);
  QCOMPARE(int(loaded.positives.size()), 2);
  QVERIFY((loaded.ranges == std::vector<BlockRange>{BlockRange{4, 4}}));
  auto out0 = p("s0.png"), out1 = p("s1.png");
  for (auto [s, out] : {std::pair{"0", out0}, std::pair{"2", out1}}) {
    r = test::runAutomod({"attribute", "apply", model_path_.string(), a_.string(), "--attr", attr.string(),
                          "--strength", s, "--no-align", "-o", out.string()});
    QVERIFY2(r.code == 0, r.err.c_str());
  }
  QVERIFY(!torch::equal(readImage(out0), readImage(out1)));
  // Too few exemplars: a clear error.
  r = test::runAutomod({"attribute", "build", model_path_.string(), "--positive", (pos / "p0.png").string(),
                        "--negative", neg.string(), "--scales", "fine", "--no-align", "-o", attr.string()});
  QVERIFY(r.code != 0);
  QVERIFY2(QString::fromStdString(r.err).contains("at least 2"), r.err.c_str());
}

// A recipe's "refine" refines the input and its photo sources before the plan is built; it round-trips
// with the recipe, and sources may carry per-block codes ("z_blocks").
void TestRecipe::recipeRefinesItsPhotosPerBlock() {
  Recipe r;
  r.align = false;
  r.sources["b"] = SourceSpec::photo(b_);
  r.assignments.push_back({"coarse", {{"b", 1.0}}});
  RefineOptions refine;
  refine.steps = 4;
  r.refine = refine;
  auto loaded = Recipe::fromJson(r.toJson(dir_.path().toStdString()), dir_.path().toStdString(), "test");
  QVERIFY(loaded.refine && *loaded.refine == refine);
  SourceCache cache(*model_, PhotoOptions{.align = false});
  auto plan = recipePlan(loaded, cache, *model_, SourceSpec::photo(a_));
  auto za = cache.latent(SourceSpec::photo(a_)), zb = cache.latent(SourceSpec::photo(b_));
  auto ra = refineCodes(*model_, toModelInput(cache.photoImage(SourceSpec::photo(a_))), za, refine).codes;
  auto rb = refineCodes(*model_, toModelInput(cache.photoImage(SourceSpec::photo(b_))), zb, refine).codes;
  for (int k = 0; k < 2; ++k) QVERIFY(torch::equal(plan[k], rb[k]));
  for (int k = 2; k < 5; ++k) QVERIFY(torch::equal(plan[k], ra[k]));
  QVERIFY(!torch::equal(plan[4], za));
  // The refined codes stored inline reproduce the plan without refining again.
  Recipe stored = loaded;
  stored.refine.reset();
  stored.sources["b"] = SourceSpec::inlineCodes(zb, rb);
  stored.sources["a"] = SourceSpec::inlineCodes(za, ra);
  stored.base = "a";
  auto j = stored.toJson();
  QVERIFY(j["sources"]["b"].contains("z_blocks"));
  SourceCache fresh(*model_, PhotoOptions{.align = false});
  auto replay = recipePlan(Recipe::fromJson(j, {}, "test"), fresh, *model_);
  for (int k = 0; k < 5; ++k) QVERIFY(torch::equal(replay[k], plan[k]));
  QCOMPARE(fresh.refineCount(), 0);
  QVERIFY_THROWS_EXCEPTION(Error, Recipe::fromJson(nlohmann::json::parse(R"({"refine": {"steps": "many"}})"), {}, "t"));
  QVERIFY_THROWS_EXCEPTION(Error, Recipe::fromJson(nlohmann::json::parse(R"({"sources": {"c": {"z_blocks": [[1]]}}})"), {}, "t"));
}

void TestRecipe::cliApplyReplaysRefineIdentically() {
  auto in = p("refine_in");
  fs::create_directories(in);
  fs::copy_file(a_, in / "one.png");
  auto recipe = writeRecipe("refine.json", R"({"align": false, "refine": {"steps": 4},
      "sources": {"c": {"photo": "c.png"}}, "assignments": [{"scales": "coarse", "source": "c"}]})");
  auto run = [&](const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"apply", model_path_.string(), "--recipe", recipe, "--in", in.string(), "--out", p(out).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = test::runAutomod(args);
    QVERIFY2(r.code == 0, r.err.c_str());
  };
  run("refine_out1");
  run("refine_out2");
  run("refine_off", {"--refine", "0"});
  auto first = readImage(p("refine_out1") / "one.png");
  QVERIFY(torch::equal(first, readImage(p("refine_out2") / "one.png")));
  // What the library makes of the same recipe, and not what the recipe makes unrefined.
  EditSession s(*model_, PhotoOptions{.align = false});
  auto expected = toImage(s.decode(recipePlan(Recipe::load(recipe), s.sources(), *model_, SourceSpec::photo(in / "one.png"))))[0];
  QVERIFY(test::maxAbsDiff(first, expected) <= 1);
  QVERIFY(test::maxAbsDiff(first, readImage(p("refine_off") / "one.png")) > 1);
}

void TestRecipe::cliEncodeRefineThenMixUsesTheBlockCodes() {
  auto latents = p("zr.json");
  auto r = test::runAutomod({"encode", model_path_.string(), a_.string(), "seed:3", "--no-align", "--refine", "4", "-o",
                             latents.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  QVERIFY2(QString::fromStdString(r.err).contains("PSNR"), r.err.c_str());
  auto records = readLatentFile(latents);
  QCOMPARE(int(records.size()), 2);
  QVERIFY(records[0].z_blocks.defined() && records[0].z_blocks.size(0) == 5);
  QVERIFY(!records[1].z_blocks.defined());  // a seed has nothing to refine
  SourceCache cache(*model_, PhotoOptions{.align = false});
  QVERIFY(test::maxAbsDiff(records[0].z, cache.latent(SourceSpec::photo(a_))[0]) < 1e-6);
  // Mixing the file's codes equals mixing the photo refined on the fly.
  auto from_file = p("mixr_file.png"), from_photo = p("mixr_photo.png");
  r = test::runAutomod({"mix", model_path_.string(), "--coarse", "seed:3", "--fine", latents.string(), "--base",
                        latents.string(), "-o", from_file.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  r = test::runAutomod({"mix", model_path_.string(), "--coarse", "seed:3", "--fine", a_.string(), "--base", a_.string(),
                        "--no-align", "--refine", "4", "-o", from_photo.string()});
  QVERIFY2(r.code == 0, r.err.c_str());
  QVERIFY(torch::equal(readImage(from_file), readImage(from_photo)));
}

QTEST_GUILESS_MAIN(TestRecipe)
#include "tst_recipe.moc"
