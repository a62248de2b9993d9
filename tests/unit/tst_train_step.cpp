// One training iteration equals the authors' (their encoder_train, decoder_train and EMA update):
// from the recorded starting state (train-step-*-before.pth, read through the importer) and the
// recorded draws, with the paper presets' settings, every logged loss term agrees within 1e-5
// relative, every gradient within ‖g − g_ref‖/‖g_ref‖ ≤ 1e-4 (see below for the few tensors whose
// float32 value is itself uncertain by more), and so do the spectral-norm vectors after the encoder
// step and the EMA decoder's top block after the iteration. The fixture folder is
// $AMOD_REFERENCE_DIR (default ../shared/reference); the test skips only when it is absent.
//
// How it compares (docs/training-fidelity.md):
// - Our side is computed in float64. The recorded values are float32 results of the authors' run,
//   and float32 convolution kernels (oneDNN's, and LibTorch's own depthwise kernel for the blur) put
//   up to 5e-4 of rounding into a few of these gradients here, a different amount with each kernel
//   (measured: our oneDNN float32 result is 5e-4 from the float64 one on the encoder's 32 px block;
//   perturbing the weights by 1e-7 moves every gradient by less than 1e-6, so the step itself is
//   well conditioned). Against float64, the recorded gradients are within 2e-5 for most tensors;
//   beyond 1e-4 are the encoder's 32 px block and its fromRGB in m0 (≤ 3.6e-4) and every decoder
//   tensor in m005 (1.5e-4 to 5.6e-4), where every loss value still agrees to 1e-7: the recording's
//   own float32 rounding. The test allows 1e-3 per tensor; a formula slip is far beyond that
//   (detaching the canvas of z_A in the layer loss: up to 0.83; docs/training-fidelity.md).
// - Each optimiser step is taken with the recorded gradients (teacher forcing): Adam's first step
//   moves every weight by ±lr whatever the gradient's size, so rounding in a tiny gradient component
//   would otherwise flip its step and make the next step's comparison meaningless.
#include <QtTest>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>

#include "core/io/reference_import.h"
#include "core/util/error.h"
#include "testutil.h"
#include "training/draws.h"
#include "training/schedule.h"
#include "training/trainer.h"

using namespace automod;
namespace fs = std::filesystem;

namespace {

double relative(const torch::Tensor& ours, const torch::Tensor& ref) {
  auto a = ours.to(torch::kFloat64).reshape({-1}), b = ref.to(torch::kFloat64).reshape({-1});
  const double norm = b.norm().item<double>();
  return (a - b).norm().item<double>() / std::max(norm, 1e-30);
}

/// Our parameter for one of the authors' names ("module.progression.5.conv.0.conv.weight_orig",
/// "adaptive_loss_3.latent_alpha") in the encoder step or the decoder step.
torch::Tensor ourTensor(Automodulator& model, RobustLoss& robust, Decoder& decoder, const std::string& name,
                        bool encoder) {
  if (name.rfind("adaptive_loss_", 0) == 0) {
    const int level = std::stoi(name.substr(14, name.find('.') - 14));
    const bool alpha = name.find("latent_alpha") != std::string::npos;
    return alpha ? robust->alphaLatent(4 << level) : robust->scaleLatent(4 << level);
  }
  const std::string theirs = name.rfind("module.", 0) == 0 ? name.substr(7) : name;
  for (const auto& n : referenceParameterNames(model.config().numBlocks(), 9)) {
    if ((n.network == ReferenceName::Encoder) != encoder) continue;
    if (n.theirs != theirs && n.alternative != theirs) continue;
    auto params = encoder ? model.encoder->named_parameters(true) : decoder->named_parameters(true);
    return params[n.ours];
  }
  throw Error("no parameter of ours is called " + name + " by the authors");
}

}  // namespace

class TestTrainStep : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase();
  void iterationEqualsTheAuthors_data();
  void iterationEqualsTheAuthors();

 private:
  fs::path dir_;
};

void TestTrainStep::initTestCase() {
  dir_ = test::referenceDir();
  if (!fs::exists(dir_ / "train-step-m0.json"))
    QSKIP(qPrintable(QString("no recorded training iteration at %1 (set AMOD_REFERENCE_DIR)")
                         .arg(QString::fromStdString(dir_.string()))));
  torch::set_num_threads(1);
}


void TestTrainStep::iterationEqualsTheAuthors_data() {
  QTest::addColumn<QString>("name");
  for (const char* n : {"m0", "m005"})
    if (fs::exists(test::referenceDir() / (std::string("train-step-") + n + ".json"))) QTest::newRow(n) << QString(n);
}

namespace {

struct Replay {
  IterationResult result;
  std::map<std::string, torch::Tensor> grads;  ///< "E name" / "D name" → our gradient
  std::map<std::string, torch::Tensor> u;      ///< our u buffers after the encoder step
  std::map<std::string, torch::Tensor> ema;    ///< the recorded EMA tensors, ours after the iteration
  size_t draws_left = 0;
  int reference_blocks = 0;  ///< the authors' encoder blocks (9 in their code), from the file
};

/// Sets the default dtype while alive (LibTorch makes inputs, noise and codes in it).
struct DefaultDtype {
  explicit DefaultDtype(caffe2::TypeMeta t) : previous(torch::get_default_dtype()) { torch::set_default_dtype(t); }
  ~DefaultDtype() { torch::set_default_dtype(previous); }
  caffe2::TypeMeta previous;
};

/// Replays the recorded iteration on a freshly imported model, in float64, each optimiser step taken
/// with the recorded gradients (teacher forcing).
Replay replay(const fs::path& dir, const std::string& stem, const nlohmann::json& rec) {
  const auto& settings = rec.at("settings");
  const int phase = rec.at("phase");
  auto ckpt = readReferenceCheckpoint(dir / (stem + "-before.pth"));
  ReferenceImportOptions options;
  options.alignment = "ffhq";  // not a released model; alignment plays no part here
  auto imported = importReference(ckpt, stem + "-before.pth", "", options);
  const int reference_blocks = inferReferenceArchitecture(ckpt, stem).reference_blocks;
  Automodulator& model = *imported.model;
  const auto preset = loadPreset("paper-ffhq256");
  DefaultDtype f64(caffe2::TypeMeta::Make<double>());
  model.encoder->to(torch::kDouble);
  model.decoder->to(torch::kDouble);
  model.ema->to(torch::kDouble);
  TrainingModules modules(model, settings.at("lr").get<double>(), false, preset.encoder_lr_factor);
  modules.robust->to(torch::kDouble);
  for (int k = 0; k <= phase; ++k)
    modules.robust->loadReference(4 << k, ckpt.robust.at(k).first, ckpt.robust.at(k).second);

  StepContext ctx;
  ctx.stage = phase;
  ctx.alpha = rec.at("alpha");
  ctx.m_gap = settings.at("margin").get<double>();
  ctx.lambda_x = settings.at("match_x").get<double>();
  ctx.layer_noise = false;

  RecordedDraws draws;
  for (const auto& d : rec.at("draws")) {
    if (d.contains("tensor"))
      draws.addSphere(test::readF32(dir, d.at("tensor")).to(torch::kDouble));
    else
      draws.addSplit(d.at("value").get<int>());
  }

  Replay out;
  out.reference_blocks = reference_blocks;
  modules.after_backward = [&](TrainingModules::Step step) {
    const bool enc = step == TrainingModules::Step::Encoder;
    if (enc)
      for (auto& b : model.encoder->named_buffers(true))
        if (b.key().size() > 2 && b.key().substr(b.key().size() - 2) == ".u") out.u[b.key()] = b.value().clone();
    for (auto& [theirs, spec] : rec.at("grads").at(enc ? "encoder_step" : "decoder_step").items()) {
      auto p = ourTensor(model, modules.robust, model.decoder, theirs, enc);
      if (!p.grad().defined()) throw Error("no gradient reached " + theirs);
      out.grads[std::string(enc ? "E " : "D ") + theirs] = p.grad().clone();
      p.mutable_grad().copy_(test::readF32(dir, spec).reshape(p.sizes()));
    }
  };
  const auto x = test::readF32(dir, rec.at("batch_images")).to(torch::kDouble);
  ImagePool pool(preset.pool_size);
  {
    DrawScope scope(draws);
    out.result = trainIteration(modules, x, ctx, preset.losses, &pool, preset.ema_decay);
  }
  out.draws_left = draws.remaining();
  for (auto& [theirs, spec] : rec.at("ema_decoder_after").items())
    out.ema[theirs] = ourTensor(model, modules.robust, model.ema, theirs, false).detach().clone();
  return out;
}

}  // namespace

void TestTrainStep::iterationEqualsTheAuthors() {
  QFETCH(QString, name);
  const std::string stem = "train-step-" + name.toStdString();
  nlohmann::json rec;
  {
    std::ifstream in(dir_ / (stem + ".json"));
    rec = nlohmann::json::parse(in);
  }
  const auto& settings = rec.at("settings");
  const int phase = rec.at("phase");

  // The paper presets' settings are the authors' (checked against the recording's).
  const auto preset = loadPreset("paper-ffhq256");
  const LossWeights& w = preset.losses;
  QCOMPARE(w.kl, settings.at("real_x_KL_scale").get<double>());
  QCOMPARE(w.gap, settings.at("fake_D_KL_scale").get<double>());
  QCOMPARE(w.kl, settings.at("fake_G_KL_scale").get<double>());
  QCOMPARE(w.rec, settings.at("robust_weight").get<double>());
  QCOMPARE(w.lambda_x_stable, settings.at("match_x").get<double>());
  QCOMPARE(w.cos, settings.at("match_z").get<double>());
  QCOMPARE(w.encoder_mix_fraction, settings.at("stylemix_E").get<double>());
  QCOMPARE(w.decoder_mix_fraction, settings.at("stylemix_D").get<double>());
  QCOMPARE(preset.ema_decay, settings.at("ema_decay").get<double>());
  QVERIFY(w.gap_clamp == LossWeights::GapClamp::Reference);
  QVERIFY(w.cycle == LossWeights::Cycle::Reference);
  QVERIFY(w.separate_encoder_passes);
  QCOMPARE(settings.at("KL_direction").get<std::string>(), std::string("qp"));  // our batchKL's direction

  const auto r = replay(dir_, stem, rec);
  // Loss terms, as the authors' code logs them.
  const auto& le = rec.at("losses").at("encoder_step");
  const auto& ld = rec.at("losses").at("decoder_step");
  QVERIFY(r.result.finite);
  QCOMPARE(r.draws_left, size_t(0));
  const auto& e = r.result.enc;
  const auto& d = r.result.dec;
  const double lambda_x = settings.at("match_x").get<double>();
  const std::vector<std::tuple<std::string, double, double>> terms{
      {"KL_real", w.kl * e.kl_real.item<double>(), le.at("KL_real")},
      {"x_reconstruction_error", w.rec * lambda_x * e.rec.item<double>(), le.at("x_reconstruction_error")},
      {"KL_fake", w.gap * e.kl_fake.item<double>(), le.at("KL_fake")},
      {"KL_loss", e.gap.item<double>(), le.at("KL_loss")},
      {"E_loss", e.total.item<double>(), le.at("E_loss")},
      {"KL(Phi(G))", w.kl * d.kl_fake.item<double>(), ld.at("KL(Phi(G))")},
      {"z_reconstruction_error", w.cos * d.cos.item<double>(), ld.at("z_reconstruction_error")},
      {"z_mix_reconstruction_error", w.layer * d.layer.item<double>(), ld.at("z_mix_reconstruction_error")},
      {"G_loss", d.total.item<double>(), ld.at("G_loss")},
  };
  double worst_loss = 0.0;
  for (auto& [term, ours, ref] : terms) {
    const double rel = std::abs(ours - ref) / std::max(std::abs(ref), 1e-12);
    qInfo("%-28s ours %.9g  authors %.9g  rel %.2g", term.c_str(), ours, ref, rel);
    worst_loss = std::max(worst_loss, rel);
  }
  QVERIFY2(worst_loss <= 1e-5, "a loss term differs from the authors'");

  // Gradients of both steps.
  std::vector<double> errors;
  for (const char* step : {"encoder_step", "decoder_step"})
    for (auto& [theirs, spec] : rec.at("grads").at(step).items()) {
      const std::string key = std::string(step[0] == 'e' ? "E " : "D ") + theirs;
      const double err = relative(r.grads.at(key), test::readF32(dir_, spec));
      errors.push_back(err);
      if (err > 1e-4) qInfo("%s: %.3g from the authors' float32 value", key.c_str(), err);
      QVERIFY2(err <= 1e-3, qPrintable(QString("%1 differs by %2").arg(key.c_str()).arg(err)));
    }
  std::sort(errors.begin(), errors.end());
  qInfo("%zu gradients: median relative error %.3g, worst %.3g, %d beyond 1e-4", errors.size(),
        errors[errors.size() / 2], errors.back(),
        int(std::count_if(errors.begin(), errors.end(), [](double e) { return e > 1e-4; })));

  // Spectral-norm u after the encoder step, for the layers in use at this phase (the others were
  // not run and keep the starting state's).
  double worst_u = 0.0;
  int compared_u = 0;
  const auto& u_ref = rec.at("u_after_encoder_step");
  for (const auto& n : referenceParameterNames(phase + 1, r.reference_blocks)) {
    if (n.snu < 0) continue;
    const std::string layer = n.ours.substr(0, n.ours.size() - std::string("weight_orig").size());
    worst_u = std::max(worst_u, relative(r.u.at(layer + "u"), test::readF32(dir_, u_ref.at(n.snu))));
    ++compared_u;
  }
  qInfo("spectral-norm u of %d layers after the encoder step: worst relative error %.3g", compared_u, worst_u);
  QCOMPARE(compared_u, 2 * (phase + 1));
  QVERIFY(worst_u <= 1e-5);

  // The EMA decoder's top block after the iteration (fixed decay 0.999, no warm-up, as the authors).
  double worst_ema = 0.0;
  for (auto& [theirs, spec] : rec.at("ema_decoder_after").items())
    worst_ema = std::max(worst_ema, relative(r.ema.at(theirs), test::readF32(dir_, spec)));
  qInfo("EMA decoder top block: worst relative error %.3g", worst_ema);
  QVERIFY(worst_ema <= 1e-6);
}

QTEST_APPLESS_MAIN(TestTrainStep)
#include "tst_train_step.moc"
