// The automodulator network (docs/design.md §2): shapes, per-block modulation, block ranges, fade-in,
// AdaIN initialisation, unit-norm latents, determinism, and the extra 8×8 decoder block of
// flip-invariance training.
#include <QtTest>

#include "core/model/automodulator.h"
#include "core/model/networks.h"
#include "testutil.h"

using namespace automod;

class TestModel : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void shapesAtEveryResolution_data();
  void shapesAtEveryResolution();
  void uniformPlanEqualsPlainDecode();
  void laterLatentsLeaveEarlierCanvasesBitIdentical();
  void blockRangeDecodingEqualsFullDecode();
  void fadeInEndpoints();
  void encoderFadeInEndpoints();
  void adainStartsNearIdentity();
  void encoderOutputsUnitNorm();
  void spectralNormFrozenInEval();
  void evalEncoderFollowsWeightChanges_data();
  void evalEncoderFollowsWeightChanges();
  void uninitialisedModelDrawsNoRandomNumbers();
  void noiseIsSwitchable();
  void cpuResultsDeterministicForSeed();
  void greyModels();
  void badConfigsAreRejected();
  void extraBlockAtEightPixels();
};

namespace {
std::unique_ptr<Automodulator> extraBlockModel(int resolution, uint64_t seed) {
  torch::manual_seed(seed);
  auto c = test::tinyModel(resolution, seed)->config();
  c.extra_8x8_block = true;
  torch::manual_seed(seed);
  return std::make_unique<Automodulator>(c);
}
}  // namespace

void TestModel::shapesAtEveryResolution_data() {
  QTest::addColumn<QString>("table");
  QTest::addColumn<int>("resolution");
  for (const char* t : {"paper", "paper-small", "cpu-128", "cpu-64"})
    for (int r : {4, 8, 16, 32, 64, 128, 256})
      QTest::newRow(QString("%1@%2").arg(t).arg(r).toUtf8()) << QString(t) << r;
}

void TestModel::shapesAtEveryResolution() {
  QFETCH(QString, table);
  QFETCH(int, resolution);
  auto c = ModelConfig::fromTable(table.toStdString(), resolution);
  QCOMPARE(c.numBlocks(), ModelConfig::blockForResolution(resolution) + 1);
  // Constructing paper-size networks is cheap; running them at 256 px is not, so only small tables run.
  torch::manual_seed(0);
  Decoder dec(c);
  Encoder enc(c);
  QCOMPARE(static_cast<int>(dec->blocks->size()), c.numBlocks());
  const auto& last = dec->blocks[c.numBlocks() - 1]->as<DecoderBlock>()->conv1;
  QCOMPARE(last->options.out(), int64_t(c.widths.back()));
  if (table.startsWith("cpu") && resolution <= 64) {
    torch::NoGradGuard ng;
    auto z = normaliseLatent(torch::randn({2, c.latent_dim}));
    auto img = dec->forward(z, c.numBlocks() - 1);
    QCOMPARE(img.sizes().vec(), (std::vector<int64_t>{2, 3, resolution, resolution}));
    auto zz = enc->forward(img, c.numBlocks() - 1);
    QCOMPARE(zz.sizes().vec(), (std::vector<int64_t>{2, c.latent_dim}));
  }
}

void TestModel::uniformPlanEqualsPlainDecode() {
  auto m = test::tinyModel(32);
  auto z = m->randomLatents(3, 7);
  torch::NoGradGuard ng;
  auto a = m->decoder->forward(z, m->stage());
  auto b = m->decoder->forward(LatentPlan::uniform(z, m->numBlocks()), m->stage());
  QVERIFY(torch::equal(a, b));
}

void TestModel::laterLatentsLeaveEarlierCanvasesBitIdentical() {
  auto m = test::tinyModel(32);
  torch::NoGradGuard ng;
  const int nb = m->numBlocks();
  auto za = m->randomLatents(2, 1), zb = m->randomLatents(2, 2);
  for (int k = 1; k < nb; ++k) {
    std::vector<torch::Tensor> ca(nb), cb(nb);
    m->decoder->runBlocks({}, LatentPlan::uniform(za, nb), 0, nb, &ca);
    m->decoder->runBlocks({}, LatentPlan::mixed(za, zb, k, nb), 0, nb, &cb);
    for (int b = 0; b < k; ++b) QVERIFY2(torch::equal(ca[b], cb[b]), qPrintable(QString("k=%1 b=%2").arg(k).arg(b)));
    QVERIFY(!torch::equal(ca[k], cb[k]));
  }
}

void TestModel::blockRangeDecodingEqualsFullDecode() {
  auto m = test::tinyModel(32);
  torch::NoGradGuard ng;
  const int nb = m->numBlocks();
  auto plan = LatentPlan::mixed(m->randomLatents(2, 3), m->randomLatents(2, 4), 2, nb);
  auto full = m->decoder->runBlocks({}, plan, 0, nb);
  for (int k = 0; k <= nb; ++k) {
    auto mid = m->decoder->runBlocks({}, plan, 0, k);
    auto rest = m->decoder->runBlocks(mid, plan, k, nb);
    QVERIFY2(torch::equal(full, rest), qPrintable(QString("split at %1").arg(k)));
  }
}

void TestModel::fadeInEndpoints() {
  auto m = test::tinyModel(32);
  torch::NoGradGuard ng;
  auto z = m->randomLatents(2, 5);
  const int s = m->stage();
  auto grown = m->decoder->toRGB(s, m->decoder->runBlocks({}, LatentPlan::uniform(z, s + 1), 0, s + 1));
  QVERIFY(torch::equal(m->decoder->forward(z, s, 1.0), grown));
  auto prev = upsample2(m->decoder->forward(z, s - 1, 1.0));
  QVERIFY(torch::equal(m->decoder->forward(z, s, 0.0), prev));
  auto half = m->decoder->forward(z, s, 0.5);
  QVERIFY(test::maxAbsDiff(half, 0.5 * prev + 0.5 * grown) < 1e-5);
}

void TestModel::encoderFadeInEndpoints() {
  auto m = test::tinyModel(32);
  m->encoder->eval();
  torch::NoGradGuard ng;
  auto x = torch::rand({2, 3, 32, 32}) * 2 - 1;
  const int s = m->stage();
  auto grown = m->encoder->forward(x, s, 1.0);
  auto prev = m->encoder->forward(downsample2(x), s - 1, 1.0);
  QVERIFY(test::maxAbsDiff(m->encoder->forward(x, s, 0.0), prev) < 1e-5);
  QVERIFY(!torch::allclose(grown, prev));
}

void TestModel::adainStartsNearIdentity() {
  torch::manual_seed(0);
  AdaIN adain(AdaINOptions(16, 512).eps(1e-8));
  auto x = torch::randn({4, 16, 8, 8}) * 3 + 2;
  auto z = normaliseLatent(torch::randn({4, 512}));
  auto y = adain->forward(x, z);
  auto [var, mean] = torch::var_mean(x, {2, 3}, false, true);
  auto normalised = (x - mean) / (var.sqrt() + 1e-8);
  // Scales start at 1 ± ~0.06 and shifts at 0 ± ~0.06 for unit-norm latents.
  QVERIFY(test::maxAbsDiff(y, normalised) < 0.35 * normalised.abs().max().item<double>());
  auto st = adain->style->forward(z);
  QVERIFY((st.narrow(1, 0, 16) - 1).abs().max().item<double>() < 0.3);
  QVERIFY(st.narrow(1, 16, 16).abs().max().item<double>() < 0.3);
  // ε keeps flat feature maps finite (the reference produces NaN there).
  auto flat = adain->forward(torch::ones({4, 16, 8, 8}), z);
  QVERIFY(torch::isfinite(flat).all().item<bool>());
}

void TestModel::encoderOutputsUnitNorm() {
  auto m = test::tinyModel(16);
  auto z = m->encode(torch::rand({5, 3, 16, 16}) * 2 - 1);
  auto norms = z.norm(2, 1);
  QVERIFY(test::maxAbsDiff(norms, torch::ones_like(norms)) < 1e-5);
  auto r = m->randomLatents(7, 3).norm(2, 1);
  QVERIFY(test::maxAbsDiff(r, torch::ones_like(r)) < 1e-5);
}

void TestModel::spectralNormFrozenInEval() {
  auto m = test::tinyModel(16);
  auto layers = m->encoder->spectralLayers();
  QVERIFY(layers.size() >= 5);
  auto u0 = layers[0]->u.clone();
  auto x = torch::rand({2, 3, 16, 16});
  m->encode(x);
  QVERIFY(torch::equal(u0, layers[0]->u));  // eval: frozen
  m->encoder->train();
  { torch::NoGradGuard ng; m->encoder->forward(x, m->stage()); }
  QVERIFY(!torch::equal(u0, layers[0]->u));  // train: one power iteration
  // After many iterations u converges to the top singular vector: σ ≈ the largest singular value.
  auto& l = layers[0];
  for (int i = 0; i < 500; ++i) { torch::NoGradGuard ng; l->forward(torch::zeros({1, l->options.in(), 1, 1})); }
  auto w = l->weight_orig.reshape({l->options.out(), -1});
  auto sigma = torch::dot(l->u, torch::mv(w, l->v)).item<double>();
  auto top = std::get<1>(torch::svd(w)).max().item<double>();
  QVERIFY(std::abs(sigma - top) / top < 1e-2);
}

void TestModel::evalEncoderFollowsWeightChanges_data() {
  QTest::addColumn<bool>("in_graph");
  QTest::newRow("stored vectors") << false;
  QTest::newRow("power iteration in the graph (the authors')") << true;
}

void TestModel::evalEncoderFollowsWeightChanges() {
  // Encoding (eval mode, no autograd) reuses each spectrally normalised weight instead of normalising
  // at every call; whatever changes a weight or its vectors (an optimiser step, a load, a training
  // forward) must show in the next encode, bit for bit as a forward that normalises at the call.
  QFETCH(bool, in_graph);
  auto c = test::tinyModel(16)->config();
  c.sn_power_iteration_in_graph = in_graph;
  torch::manual_seed(3);
  Automodulator m(c);
  const auto x = torch::rand({2, 3, 16, 16});
  auto normalisedAtTheCall = [&] {
    m.encoder->eval();
    return m.encoder->forward(x, m.stage()).detach();  // autograd on: nothing is reused
  };
  auto layers = m.encoder->spectralLayers();
  const auto z0 = m.encode(x);
  QVERIFY(torch::equal(z0, normalisedAtTheCall()));
  QVERIFY(torch::equal(z0, m.encode(x)));
  {
    torch::NoGradGuard ng;
    layers[1]->weight_orig.add_(0.1 * torch::randn_like(layers[1]->weight_orig));
  }
  const auto z1 = m.encode(x);
  QVERIFY(!torch::equal(z0, z1));
  QVERIFY(torch::equal(z1, normalisedAtTheCall()));
  {
    torch::NoGradGuard ng;
    auto& u = layers[2]->u;
    u.copy_(normaliseLatent(torch::randn({1, u.size(0)})).squeeze(0));
  }
  QVERIFY(torch::equal(m.encode(x), normalisedAtTheCall()));
  layers[0]->weight_orig.set_data(torch::randn_like(layers[0]->weight_orig));
  QVERIFY(torch::equal(m.encode(x), normalisedAtTheCall()));
  m.encoder->train();
  {
    torch::NoGradGuard ng;
    m.encoder->forward(x, m.stage());  // one power iteration: u and v move
  }
  QVERIFY(torch::equal(m.encode(x), normalisedAtTheCall()));
}

void TestModel::uninitialisedModelDrawsNoRandomNumbers() {
  // Loaders build the model with WeightInit::None and replace every tensor: nothing is drawn (a 330 MB
  // model spent seconds drawing weights it then overwrote), and the tensors are those of a drawn model.
  const auto c = test::tinyModel(16)->config();
  torch::manual_seed(5);
  const auto expected = torch::randn({8});
  torch::manual_seed(5);
  Automodulator empty(c, torch::kCPU, WeightInit::None);
  QVERIFY(torch::equal(torch::randn({8}), expected));
  Automodulator drawn(c);
  const auto a = namedState(drawn), b = namedState(empty);
  QCOMPARE(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    QCOMPARE(a[i].first, b[i].first);
    QVERIFY2(a[i].second.sizes() == b[i].second.sizes(), a[i].first.c_str());
    QCOMPARE(a[i].second.scalar_type(), b[i].second.scalar_type());
  }
}

void TestModel::noiseIsSwitchable() {
  auto m = test::tinyModel(16);
  torch::NoGradGuard ng;
  for (auto& p : m->decoder->named_parameters())
    if (p.key().find("noise") != std::string::npos) p.value().fill_(0.5);
  auto z = m->randomLatents(1, 1);
  m->decoder->setNoise(false);
  QVERIFY(torch::equal(m->decoder->forward(z, m->stage()), m->decoder->forward(z, m->stage())));
  m->decoder->setNoise(true);
  QVERIFY(!torch::equal(m->decoder->forward(z, m->stage()), m->decoder->forward(z, m->stage())));
}

void TestModel::cpuResultsDeterministicForSeed() {
  auto a = test::tinyModel(16, 42), b = test::tinyModel(16, 42), c = test::tinyModel(16, 43);
  auto z = a->randomLatents(2, 9);
  QVERIFY(torch::equal(z, b->randomLatents(2, 9)));
  QVERIFY(torch::equal(a->decode(z), b->decode(z)));
  QVERIFY(!torch::equal(a->decode(z), c->decode(z)));
}

void TestModel::greyModels() {
  auto m = test::tinyModel(16, 1, 1);
  auto img = m->decode(m->randomLatents(2, 1));
  QCOMPARE(img.size(1), int64_t(1));
  QCOMPARE(m->encode(img).size(1), int64_t(32));
}

void TestModel::badConfigsAreRejected() {
  QVERIFY_THROWS_EXCEPTION(std::exception, ModelConfig::fromTable("paper", 48));
  QVERIFY_THROWS_EXCEPTION(std::exception, ModelConfig::fromTable("nope", 64));
  auto c = ModelConfig::fromTable("cpu-64", 64);
  c.widths.pop_back();
  QVERIFY_THROWS_EXCEPTION(std::exception, c.validate());
}

void TestModel::extraBlockAtEightPixels() {
  auto m = extraBlockModel(16, 4);
  const auto& c = m->config();
  // Blocks: 0 (4 px), 1 (8 px), the extra one (8 px, no upsampling), 2 → index 3 (16 px).
  QCOMPARE(c.numBlocks(), 3);
  QCOMPARE(c.decoderBlocks(), 4);
  QCOMPARE(static_cast<int>(m->decoder->blocks->size()), 4);
  QCOMPARE(static_cast<int>(m->decoder->to_rgb->size()), 3);  // one toRGB per resolution
  QCOMPARE(m->numBlocks(), 4);
  QCOMPARE(c.blocksAtStage(0), 1);
  QCOMPARE(c.blocksAtStage(1), 3);
  QCOMPARE(m->blockResolution(1), 8);
  QCOMPARE(m->blockResolution(2), 8);
  QCOMPARE(m->blockResolution(3), 16);
  QVERIFY(!m->decoder->blocks->ptr(2)->as<DecoderBlock>()->upsample);
  // The encoder is unchanged.
  QCOMPARE(static_cast<int>(m->encoder->blocks->size()), 3);

  auto z = m->randomLatents(2, 9), z2 = m->randomLatents(2, 10);
  // Inference, as decode() runs it (without autograd the blocks work in place: same values, other
  // rounding than with autograd).
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> canvases(4);
  m->ema->runBlocks({}, LatentPlan::uniform(z, 4), 0, 4, &canvases);
  QCOMPARE(canvases[1].sizes(), (std::vector<int64_t>{2, 16, 8, 8}));
  QCOMPARE(canvases[2].sizes(), (std::vector<int64_t>{2, 16, 8, 8}));
  QCOMPARE(canvases[3].sizes(), (std::vector<int64_t>{2, 8, 16, 16}));
  // The full decode is the block chain; resuming after the extra block gives the same image.
  auto full = m->decode(z);
  QCOMPARE(full.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  QVERIFY(torch::equal(full, m->ema->toRGB(3, canvases[3])));
  auto rest = m->ema->runBlocks(canvases[2], LatentPlan::uniform(z, 4), 3, 4);
  QVERIFY(torch::equal(full, m->ema->toRGB(3, rest)));
  // The extra block is modulated: its latent changes the image.
  LatentPlan plan = LatentPlan::uniform(z, 4);
  plan[2] = z2;
  QVERIFY(test::maxAbsDiff(m->decode(plan), full) > 1e-4);
  // Stage 1 decodes blocks 0-2 at 8 px; fade-in endpoints blend the 4 px and the 8 px outputs.
  m->setStage(1);
  QCOMPARE(m->numBlocks(), 3);
  auto p3 = LatentPlan::uniform(z, 3);
  auto at8 = m->ema->forward(p3, 1, 1.0);
  QCOMPARE(at8.sizes(), (std::vector<int64_t>{2, 3, 8, 8}));
  auto at4 = upsample2(m->ema->toRGB(0, m->ema->runBlocks({}, p3, 0, 1)));
  QVERIFY(torch::equal(m->ema->forward(p3, 1, 0.0), at4));
  QVERIFY(test::maxAbsDiff(m->ema->forward(p3, 1, 0.5), 0.5 * at4 + 0.5 * at8) < 1e-5);
  // Config JSON records it; a config without it keeps the old layout.
  QCOMPARE(ModelConfig::fromJson(c.toJson()), c);
  QVERIFY(c.toJson().value("extra_8x8_block", false));
  auto plain = test::tinyModel(16, 4);
  QVERIFY(!plain->config().toJson().contains("extra_8x8_block"));
  QCOMPARE(plain->numBlocks(), 3);
  QCOMPARE(static_cast<int>(plain->decoder->blocks->size()), 3);
  // It needs an 8 px level.
  auto tiny = test::tinyModel(4, 1)->config();
  tiny.extra_8x8_block = true;
  QVERIFY_THROWS_EXCEPTION(std::exception, tiny.validate());
}

QTEST_GUILESS_MAIN(TestModel)
#include "tst_model.moc"
