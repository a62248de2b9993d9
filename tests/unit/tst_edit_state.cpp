// The editor's state in core (core/edit/edit_state.h) and the one job queue (core/util/job_queue.h):
// plans from per-block codes, recipes that replay it, rebinding to another model, and the queue's
// priorities, coalescing, cancellation and yielding.
#include <torch/torch.h>

#include <QTest>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "core/edit/edit_state.h"
#include "core/edit/plan.h"
#include "core/edit/recipe.h"
#include "core/edit/source_intake.h"
#include "core/io/image.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "core/util/job_queue.h"
#include "testutil.h"

using namespace automod;

namespace {

/// A source with the given per-block codes (or one code everywhere) and a picture.
EditSource codeSource(const std::string& name, const LatentPlan& codes) {
  EditSource s;
  s.name = name;
  s.spec = SourceSpec::inlineCode({});
  s.codes = codes;
  s.picture = torch::full({16, 16, 3}, 100, torch::kUInt8);
  return s;
}

}  // namespace

class TestEditState : public QObject {
  Q_OBJECT
  QTemporaryDir dir_;

 private Q_SLOTS:
  void initTestCase() { QVERIFY(dir_.isValid()); }

  void mixPlanBlendsEachSourcesOwnBlockCodes() {
    // A refined source has one code per block: block b of the mix blends the sources' block-b codes.
    auto model = test::tinyModel(16, 1);
    EditState st;
    st.model = ModelBinding::of(*model);
    const int nb = st.blocks();
    const auto z = model->randomLatents(nb + 1, 7);
    LatentPlan refined;
    for (int b = 0; b < nb; ++b) refined.latents.push_back(z[b].unsqueeze(0));
    // Its style offsets (a refined photo's detail) go wherever its codes go.
    const auto widths = st.model.style_widths;
    QCOMPARE(int(widths.size()), nb);
    for (int b = 0; b < nb; ++b) refined.setOffset(b, torch::full({1, widths[b]}, 0.1 * (b + 1)));
    st.addSource(codeSource("a", LatentPlan::uniform(z[nb].unsqueeze(0), nb)));
    st.addSource(codeSource("b", refined));
    QVERIFY(st.ready());
    st.assignRange(BlockRange{1, nb - 1}, 1);
    auto plan = st.mixPlan();
    QCOMPARE(plan.size(), nb);
    QVERIFY(torch::equal(plan[0], z[nb].unsqueeze(0)));
    QVERIFY(!plan.offset(0).defined());
    for (int b = 1; b < nb; ++b) {
      QVERIFY(torch::equal(plan[b], z[b].unsqueeze(0)));
      QVERIFY(torch::equal(plan.offset(b), refined.offset(b)));
    }
    // A blend is the normalised weighted sum of the two block codes; offsets blend with the same
    // weights (a source without offsets counts as zeros).
    st.setWeight(BlockRange{0, 0}, 1, 1.0);
    plan = st.mixPlan();
    const auto expected = blendLatents({z[nb].unsqueeze(0), z[0].unsqueeze(0)}, {1.0, 1.0});
    QVERIFY(torch::allclose(plan[0], expected));
    QVERIFY(torch::allclose(plan.offset(0), refined.offset(0) * 0.5));
    // The morph moves offsets with the codes; attribute edits keep them.
    st.morph = EditMorph{0, 1, "", 0.5, 2, 1.0};
    QVERIFY(torch::allclose(st.morphPlan(0.25).offset(2), refined.offset(2) * 0.25));
    QVERIFY(!st.morphPlan(0.0).offset(2).defined() || st.morphPlan(0.0).offset(2).abs().max().item<double>() == 0.0);
    // Removing a source its blocks depend on hands those blocks to the first remaining one.
    st.removeSource(0);
    QCOMPARE(st.weights[0], std::vector<double>({1.0}));
  }

  void aSourceWithoutCodesCannotBePlannedYet() {
    auto model = test::tinyModel(16, 1);
    EditState st;
    st.model = ModelBinding::of(*model);
    EditSource s;
    s.name = "waiting.png";
    s.spec = SourceSpec::photo("waiting.png");
    st.addSource(s);
    QVERIFY(!st.ready());
    try {
      st.mixPlan();
      QFAIL("a plan without codes");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("waiting.png is not encoded") != std::string::npos, e.what());
    }
    QCOMPARE(sourcesToEncode(st), std::vector<uint64_t>({st.sources[0].id}));
  }

  void recipeAndViewRestoreTheStateExactly() {
    auto model = test::tinyModel(16, 1);
    EditState st;
    st.model = ModelBinding::of(*model, "/models/m.amod");
    const int nb = st.blocks();
    const auto z = model->randomLatents(nb + 2, 3);
    LatentPlan kept;
    for (int b = 0; b < nb; ++b) kept.latents.push_back(z[b].unsqueeze(0));
    kept.setOffset(1, torch::randn({1, st.model.style_widths[1]}));  // a refined source's style offsets
    st.addSource(codeSource("kept sample", kept));
    st.addSource(codeSource("pasted", LatentPlan::uniform(z[nb].unsqueeze(0), nb)));
    st.setWeight(BlockRange{1, 2}, 1, 0.25);
    st.morph = EditMorph{1, 0, "coarse", 0.3, 12, 10.0};
    st.attribute = EditAttribute{attributeFromLatents(*model, {z[0], z[1]}, {z[2], z[3]}, {BlockRange{0, 1}}, "x"), 1.5};
    const Recipe r = st.toRecipe();
    const auto view = st.viewJson([](const torch::Tensor& t) { return std::to_string(t.numel()); });
    // Through the recipe's JSON, as a project file holds it.
    const Recipe back = Recipe::fromJson(r.toJson(), {}, "test");
    const auto restored = EditState::fromRecipe(back, view, st.model, [](const std::string&) {
      return torch::full({16, 16, 3}, 100, torch::kUInt8);
    });
    QCOMPARE(restored.sources.size(), st.sources.size());
    QCOMPARE(restored.sources[0].name, std::string("kept sample"));
    for (int b = 0; b < nb; ++b) QVERIFY(torch::equal(restored.sources[0].codes[b], kept[b]));
    QVERIFY(torch::equal(restored.sources[0].codes.offset(1), kept.offset(1)));
    QVERIFY(!restored.sources[0].codes.offset(0).defined());
    QVERIFY(torch::equal(restored.plan().offset(1), st.plan().offset(1)));
    // Without the view (the recipe alone, as `automod apply` reads it) the offsets come from z_offsets.
    SourceCache cache(*model);
    auto replayed = cache.codes(back.sources.at(Recipe::sourceName(0)));
    QVERIFY(torch::equal(replayed.offset(1), kept.offset(1)));
    // Offsets made for another model (other widths) are refused with a sentence.
    auto bad = view;
    bad["sources"][0]["codes"]["offsets"][1] = std::vector<float>{1.0f, 2.0f};
    QVERIFY_THROWS_EXCEPTION(Error, EditState::fromRecipe(back, bad, st.model, [](const std::string&) {
      return torch::full({16, 16, 3}, 100, torch::kUInt8);
    }));
    QCOMPARE(restored.weights, st.weights);
    QVERIFY(restored.morph == st.morph);
    QVERIFY(restored.attribute.has_value());
    QCOMPARE(restored.attribute->strength, 1.5);
    QVERIFY(torch::equal(restored.plan()[2], st.plan()[2]));
    QVERIFY(torch::equal(restored.plan()[0], st.plan()[0]));
  }

  void rebindKeepsWeightsMorphAndAttributeAndClearsCodes() {
    auto a = test::tinyModel(32, 1);
    auto b = test::tinyModel(64, 2);
    EditState st;
    st.model = ModelBinding::of(*a);
    const auto z = a->randomLatents(6, 1);
    st.addSource(codeSource("s1", LatentPlan::uniform(z[0].unsqueeze(0), st.blocks())));
    st.addSource(codeSource("s2", LatentPlan::uniform(z[1].unsqueeze(0), st.blocks())));
    st.assignRange(intermediateRange(st.model.layout), 1);
    st.morph.scales = "intermediate";
    st.attribute = EditAttribute{attributeFromLatents(*a, {z[2], z[3]}, {z[4], z[5]}, {intermediateRange(st.model.layout)}), 2.0};
    const auto rebound = rebind(st, ModelBinding::of(*b));
    QCOMPARE(rebound.blocks(), 5);
    QCOMPARE(rebound.sources.size(), size_t(2));
    QVERIFY(!rebound.ready());
    QCOMPARE(sourcesToEncode(rebound).size(), size_t(2));
    // Blocks of the same resolution keep their weights: coarse s1, intermediate s2; the new 64 px block
    // follows the nearest coarser one (32 px: s2), as the old model's output did.
    QCOMPARE(rebound.weights[0], std::vector<double>({1.0, 0.0}));
    QCOMPARE(rebound.weights[2], std::vector<double>({0.0, 1.0}));
    QCOMPARE(rebound.weights[3], std::vector<double>({0.0, 1.0}));
    QCOMPARE(rebound.weights[4], std::vector<double>({0.0, 1.0}));
    QCOMPARE(rebound.morph.scales, std::string("intermediate"));
    QVERIFY(rebound.attribute.has_value());
    QVERIFY(!rebound.attribute->vector.vector.defined());  // rebuilt by the new model
    QCOMPARE(rebound.attribute->vector.ranges, std::vector<BlockRange>({BlockRange{2, 3}}));
    QCOMPARE(rebound.attribute->strength, 2.0);
    // The same model: nothing to encode again.
    QVERIFY(rebind(st, st.model).ready());
  }

  void mixingByScalesAgainGivesEachScaleItsFirstBlocksWeights() {
    auto model = test::tinyModel(64, 1);
    EditState st;
    st.model = ModelBinding::of(*model);
    st.addSource(codeSource("a", LatentPlan::uniform(model->randomLatents(1, 1).cpu(), model->numBlocks())));
    st.addSource(codeSource("b", LatentPlan::uniform(model->randomLatents(1, 2).cpu(), model->numBlocks())));
    QVERIFY(!st.mixedPerBlock());
    const auto range = scaleRange(Scale::Intermediate, st.model.layout);
    QVERIFY(range.last > range.first);
    st.setWeight(range, 1, 0.5);
    QVERIFY(!st.mixedPerBlock());  // a whole scale: still a mix by scales
    st.assignRange(BlockRange{range.last, range.last}, 1);
    QVERIFY(st.mixedPerBlock());
    const auto first_row = st.weights[static_cast<size_t>(range.first)];
    st.mixByScales();
    QVERIFY(!st.mixedPerBlock());
    for (int b = range.first; b <= range.last; ++b) QVERIFY(st.weights[static_cast<size_t>(b)] == first_row);
  }

  void carryRangesMapsNamedScalesAndResolutions() {
    const auto l32 = BlockLayout::plain(4), l64 = BlockLayout::plain(5), l128 = BlockLayout::plain(6);
    QCOMPARE(carryRanges({BlockRange{4, 4}}, l64, l128), std::vector<BlockRange>({BlockRange{4, 5}}));
    QCOMPARE(carryRanges({BlockRange{0, 1}}, l64, l32), std::vector<BlockRange>({BlockRange{0, 1}}));
    QCOMPARE(carryRanges({BlockRange{2, 2}}, l64, l128), std::vector<BlockRange>({BlockRange{2, 2}}));
    QVERIFY(carryRanges({BlockRange{4, 4}}, l64, l32).empty());
  }

  void encodeSourceUsesThePictureWhenThereIsNoFile() {
    auto model = test::tinyModel(16, 1);
    EditSource s = codeSource("pasted", LatentPlan());
    s.picture = torch::randint(0, 255, {32, 32, 3}, torch::kUInt8);  // another model's size
    encodeSource(*model, s, PhotoOptions{});
    QCOMPARE(s.picture.size(0), int64_t(16));
    QCOMPARE(s.codes.size(), model->numBlocks());
    QVERIFY(std::isfinite(s.psnr));
    torch::NoGradGuard ng;
    QVERIFY(torch::allclose(s.z, model->encode(toModelInput(s.picture)).cpu()));
  }

  void aBatchEncodesEachSourceAsEncodeSourceDoesAndNamesTheOnesItCannot() {
    // A model change re-encodes the editor's sources with SourceEncoder (the next photo prepared on
    // another thread): each result equals encodeSource's, in order, and a photo that is gone is
    // reported for itself without stopping the rest.
    auto model = test::tinyModel(16, 1);
    const auto a = test::tmpPath(dir_, "batch_a.png"), b = test::tmpPath(dir_, "batch_b.png");
    test::writeTestImage(a, 40, 30, 1);
    test::writeTestImage(b, 25, 50, 2);
    std::vector<EditSource> sources(4);
    sources[0].name = "a";
    sources[0].spec = SourceSpec::centerCropped(a);
    sources[1].name = "gone";
    sources[1].spec = SourceSpec::centerCropped(test::tmpPath(dir_, "gone.png"));
    sources[2] = codeSource("pasted", LatentPlan());
    sources[2].picture = torch::randint(0, 255, {24, 24, 3}, torch::kUInt8);
    sources[3].name = "b";
    sources[3].spec = SourceSpec::centerCropped(b);
    for (size_t i = 0; i < sources.size(); ++i) sources[i].id = 10 + i;
    SourceEncoder encoder(*model, sources, PhotoOptions{});
    QCOMPARE(encoder.size(), size_t(4));
    for (size_t i = 0; i < sources.size(); ++i) {
      QVERIFY(!encoder.done());
      const auto r = encoder.next();
      QCOMPARE(r.source.id, sources[i].id);
      if (i == 1) {
        QVERIFY2(r.error.find("gone.png") != std::string::npos, r.error.c_str());
        QVERIFY(!r.source.hasCodes());
        continue;
      }
      QVERIFY2(r.error.empty(), r.error.c_str());
      EditSource one = sources[i];
      encodeSource(*model, one, PhotoOptions{});
      QVERIFY(torch::equal(r.source.picture, one.picture));
      QVERIFY(torch::equal(r.source.z, one.z));
      QVERIFY(torch::equal(r.source.reconstruction, one.reconstruction));
      QCOMPARE(r.source.codes.size(), model->numBlocks());
      QCOMPARE(r.source.psnr, one.psnr);
      QCOMPARE(r.source.note, one.note);
    }
    QVERIFY(encoder.done());
    QVERIFY_THROWS_EXCEPTION(Error, encoder.next());
  }

  void thePreparedPhotoCacheAnswersOnlyForTheSameFileModelAndOptions() {
    const auto a = test::tmpPath(dir_, "cache_a.png"), b = test::tmpPath(dir_, "cache_b.png");
    test::writeTestImage(a, 40, 30, 3);
    test::writeTestImage(b, 30, 40, 4);
    PreparedPhotoCache cache(2);
    PhotoOptions o;
    o.align = false;
    const auto first = cache.faces(a, 16, 3, o);
    QCOMPARE(first.size(), size_t(1));
    // The same photo again: the cached preparation itself, not a second one.
    QCOMPARE(cache.faces(a, 16, 3, o).front().image.data_ptr(), first.front().image.data_ptr());
    // Another input transform (another model), size or channel count: prepared for that.
    PhotoOptions reference = o;
    reference.input_transform = InputTransform::Reference;
    const auto other = cache.faces(a, 16, 3, reference);
    QVERIFY(other.front().image.data_ptr() != first.front().image.data_ptr());
    QCOMPARE(cache.faces(a, 8, 3, o).front().image.size(0), int64_t(8));
    QCOMPARE(cache.faces(a, 16, 1, o).front().image.size(2), int64_t(1));
    QCOMPARE(cache.size(), size_t(2));  // the capacity
    // The file changed on disk: prepared from the new pixels.
    const auto before = cache.faces(a, 16, 3, o).front().image;
    test::writeTestImage(a, 40, 30, 99);
    std::filesystem::last_write_time(a, std::filesystem::last_write_time(a) + std::chrono::seconds(5));
    const auto after = cache.faces(a, 16, 3, o).front().image;
    QVERIFY(!torch::equal(before, after));
    // A photo that cannot be read: the error, nothing cached.
    QVERIFY_THROWS_EXCEPTION(Error, cache.faces(test::tmpPath(dir_, "missing.png"), 16, 3, o));
    QCOMPARE(cache.faces(b, 16, 3, o).size(), size_t(1));
  }

  void aSourceFromOneOfSeveralFacesSaysWhichFace() {
    auto model = test::tinyModel(16, 1);
    std::vector<PreparedPhoto> faces(2);
    for (int i = 0; i < 2; ++i) {
      faces[i].image = torch::randint(0, 255, {16, 16, 3}, torch::kUInt8);
      faces[i].aligned = true;
      faces[i].face_index = i;
    }
    faces[1].note = "the face is small";
    const auto two = test::tmpPath(dir_, "two.png");
    EditSource s = sourceFromFaces(*model, faces, 1, "two.png", two);
    QCOMPARE(s.name, std::string("two.png (face 2)"));
    QCOMPARE(s.note, std::string("face 2 of 2; the face is small"));
    QVERIFY(s.fromPhotoFile());
    QCOMPARE(s.spec.face, 1);
    QVERIFY(s.spec.path == two);
    {
      torch::NoGradGuard ng;
      QVERIFY(torch::allclose(s.z, model->encode(toModelInput(faces[1].image)).cpu()));
    }
    QVERIFY(torch::equal(s.picture, faces[1].image));
    QCOMPARE(s.codes.size(), model->numBlocks());
    s = sourceFromFaces(*model, faces, -1, "two.png", two);
    QCOMPARE(s.name, std::string("two.png (face 1)"));
    QCOMPARE(s.note, std::string("2 faces found; using the largest"));
    QCOMPARE(s.spec.face, 0);
    // A pasted picture: no file behind it, the picture stands in.
    s = sourceFromFaces(*model, faces, 0, "pasted image", {});
    QVERIFY(!s.fromPhotoFile());
    QVERIFY(s.picture.defined());
    try {
      sourceFromFaces(*model, faces, 2, "two.png", two);
      QFAIL("face 3 of 2 was accepted");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("two.png has 2 faces; face 3 does not exist") != std::string::npos, e.what());
    }
    // A photo without a face, centre-cropped: its own name, and a centre crop when encoded again.
    std::vector<PreparedPhoto> crop(1);
    crop[0].image = faces[0].image;
    crop[0].note = "no face found; centre-cropped";
    s = sourceFromFaces(*model, crop, -1, "wall.png", two);
    QCOMPARE(s.name, std::string("wall.png"));
    QCOMPARE(s.note, crop[0].note);
    QVERIFY(s.spec.center_crop);
  }

  void jobsRunByPriorityAndCoalesceByKey() {
    JobQueue q(1);
    std::mutex m;
    std::vector<std::string> order;
    auto log = [&](std::string what) {
      std::lock_guard<std::mutex> lock(m);
      order.push_back(std::move(what));
    };
    std::atomic<bool> release{false};
    q.submit(JobQueue::Background, [&](JobQueue::Control&) {
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      log("blocker");
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    q.submit(JobQueue::Gallery, [&](JobQueue::Control&) { log("gallery"); });
    q.submit(JobQueue::Render, [&](JobQueue::Control&) { log("decode 1"); }, "decode");
    q.submit(JobQueue::Render, [&](JobQueue::Control&) { log("decode 2"); }, "decode");  // replaces decode 1
    q.submit(JobQueue::Intake, [&](JobQueue::Control&) { log("photo"); });
    const auto cancelled = q.submit(JobQueue::Intake, [&](JobQueue::Control&) { log("cancelled"); });
    q.cancel(cancelled);
    release = true;
    q.waitIdle();
    QCOMPARE(order, std::vector<std::string>({"blocker", "photo", "decode 2", "gallery"}));
    QVERIFY(q.workerThreads() >= 1);
  }

  void aLongJobYieldsToInteractiveOnesAndStopsWhenCancelled() {
    JobQueue q(1);
    std::atomic<int> steps{0};
    std::atomic<int> decoded_at{-1};
    std::atomic<bool> stopped{false};
    const auto long_job = q.submit(JobQueue::Background, [&](JobQueue::Control& c) {
      for (int i = 0; i < 1000; ++i) {
        c.yield();
        if (c.cancelled()) {
          stopped = true;
          return;
        }
        ++steps;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    q.submit(JobQueue::Render, [&](JobQueue::Control&) { decoded_at = steps.load(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    // The decode ran in the middle of the long job, not after it.
    QVERIFY(decoded_at.load() >= 0);
    QVERIFY(decoded_at.load() < 1000);
    q.cancel(long_job);
    q.waitIdle();
    QVERIFY(stopped.load());
    QVERIFY(steps.load() < 1000);
  }

  void aThrowingJobDoesNotTakeTheWorkerDown() {
    JobQueue q(1);
    q.submit(JobQueue::Render, [](JobQueue::Control&) { throw std::runtime_error("boom"); });
    std::atomic<bool> ran{false};
    q.submit(JobQueue::Render, [&](JobQueue::Control&) { ran = true; });
    q.waitIdle();
    QVERIFY(ran.load());
  }
};

QTEST_GUILESS_MAIN(TestEditState)
#include "tst_edit_state.moc"
