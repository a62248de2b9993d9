#include "core/edit/refine.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/metrics/image_quality.h"
#include "core/model/automodulator.h"
#include "core/model/layers.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace F = torch::nn::functional;

namespace {

torch::Tensor lrelu(const torch::Tensor& x) { return F::leaky_relu(x, F::LeakyReLUFuncOptions().negative_slope(0.2)); }

// The image of decoder blocks [0, blocks) driven by codes[b] (toRGB of the last), with layer noise
// off whatever the decoder's setting: the editor may have turned noise on for its previews, and a
// refinement must not depend on random noise.
torch::Tensor decodeUpTo(Decoder& decoder, const LatentPlan& codes, int blocks) {
  auto h = decoder->input(codes.batch(), codes[0].device());
  for (int b = 0; b < blocks; ++b)
    h = decoder->blocks->ptr(b)->as<DecoderBlock>()->forward(h, codes[b], false, codes.offset(b));
  return decoder->toRGB(blocks - 1, h);
}

// The encoder's block outputs for images at resolution level `stage`, finest first: what the
// feature term compares (the encoder's view of the photo at every scale it sees).
std::vector<torch::Tensor> encoderFeatures(Encoder& encoder, const torch::Tensor& x, int stage) {
  std::vector<torch::Tensor> out;
  auto h = encoder->fromRGB(stage, x);
  for (int b = stage; b >= 1; --b) {
    h = encoder->blocks->ptr(b)->as<EncoderBlock>()->forward(h);
    out.push_back(h);
  }
  out.push_back(encoder->final_out->forward(lrelu(encoder->final_conv->forward(h))).flatten(1));
  return out;
}

torch::Tensor perImageMean(const torch::Tensor& t) { return t.flatten(1).mean(1); }

// The coordinates Adam works in for block b's code. The block's AdaIN layers turn its code z into
// their styles s = A z + c (A: the style linears' weights, stacked). Adam on z itself moves every
// direction of z alike, so the styles move fast along A's strong directions and hardly at all along
// its weak ones (the bundled model's A has singular values spanning 2–3 decades). In u = D Vᵀ z,
// with A = U Σ Vᵀ and D = (Σ² + (λ·σ_max)²)^(−1/2), an Adam step moves the styles about as far along
// every direction: z-space steps are V D (Adam step in u). Directions A ignores (σ < 10⁻³·σ_max, the
// null space of a block with fewer style outputs than code dimensions) are not moved at all.
struct Preconditioner {
  torch::Tensor v, d;  // [D, D], [D]
};

Preconditioner blockPreconditioner(DecoderBlockImpl& block, double damping) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> rows{block.adain1->style->weight * block.adain1->style->scale};
  if (!block.first) rows.push_back(block.adain2->style->weight * block.adain2->style->scale);
  auto a = torch::cat(rows).to(torch::kCPU, torch::kFloat64);
  auto [eigenvalues, vectors] = torch::linalg::eigh(a.t().mm(a), "L");
  auto sigma = eigenvalues.clamp_min(0).sqrt();
  const double top = sigma.max().item<double>();
  auto d = (sigma.pow(2) + std::pow(damping * top, 2)).rsqrt() * (sigma > 1e-3 * top).to(torch::kFloat64);
  return {vectors.to(torch::kFloat32), (d / d.max()).to(torch::kFloat32)};
}

double scheduledLr(const RefineOptions& o, int step) {
  const double warm_steps = o.warmup * o.steps;
  if (step < warm_steps) return o.lr * (step + 1) / warm_steps;
  const double span = std::max(1.0, o.steps - warm_steps);
  const double t = std::clamp((step - warm_steps) / span, 0.0, 1.0);
  return o.lr * 0.5 * (1.0 + std::cos(M_PI * t));
}

const std::set<std::string>& jsonKeys() {
  static const std::set<std::string> keys{"steps",     "lr",          "warmup",          "precondition", "pixel_l2",   "pixel_l1",
                                          "ms_ssim",   "feature",     "anchor",          "neighbour",  "loss_resolution", "offsets", "offset_lr", "offset_decay",
                                          "early_stop", "early_stop_window", "seed",     "init_jitter"};
  return keys;
}

}  // namespace

nlohmann::json RefineOptions::toJson() const {
  return {{"steps", steps},
          {"lr", lr},
          {"warmup", warmup},
          {"precondition", precondition},
          {"pixel_l2", pixel_l2},
          {"pixel_l1", pixel_l1},
          {"ms_ssim", ms_ssim},
          {"feature", feature},
          {"anchor", anchor},
          {"neighbour", neighbour},
          {"offsets", offsets},
          {"offset_lr", offset_lr},
          {"offset_decay", offset_decay},
          {"loss_resolution", loss_resolution},
          {"early_stop", early_stop},
          {"early_stop_window", early_stop_window},
          {"seed", seed},
          {"init_jitter", init_jitter}};
}

RefineOptions RefineOptions::fromJson(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected an object of refinement options");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!jsonKeys().count(it.key())) {
      std::string list;
      for (auto& k : jsonKeys()) list += (list.empty() ? "" : ", ") + k;
      throw Error(where + ": " + it.key() + ": unknown key (expected one of: " + list + ")");
    }
  RefineOptions o;
  auto real = [&](const char* key, double& out) {
    if (!j.contains(key)) return;
    if (!j[key].is_number() || !std::isfinite(j[key].get<double>()))
      throw Error(where + ": " + key + ": must be a finite number");
    out = j[key].get<double>();
  };
  auto whole = [&](const char* key, int& out, int lo, int hi) {
    if (j.contains(key)) out = jsonInt(j[key], where, key, lo, hi);
  };
  whole("steps", o.steps, 0, 1000000);
  real("lr", o.lr);
  real("warmup", o.warmup);
  real("precondition", o.precondition);
  real("pixel_l2", o.pixel_l2);
  real("pixel_l1", o.pixel_l1);
  real("ms_ssim", o.ms_ssim);
  real("feature", o.feature);
  real("anchor", o.anchor);
  real("neighbour", o.neighbour);
  if (j.contains("offsets")) {
    if (!j["offsets"].is_boolean()) throw Error(where + ": offsets: must be true or false");
    o.offsets = j["offsets"].get<bool>();
  }
  real("offset_lr", o.offset_lr);
  real("offset_decay", o.offset_decay);
  whole("loss_resolution", o.loss_resolution, 0, 1 << 16);
  real("early_stop", o.early_stop);
  whole("early_stop_window", o.early_stop_window, 1, 1000000);
  if (j.contains("seed")) {
    if (!j["seed"].is_number_unsigned() && !(j["seed"].is_number_integer() && j["seed"].get<int64_t>() >= 0))
      throw Error(where + ": seed: must be a non-negative whole number");
    o.seed = j["seed"].get<uint64_t>();
  }
  real("init_jitter", o.init_jitter);
  o.validate(where);
  return o;
}

void RefineOptions::validate(const std::string& where) const {
  auto fail = [&](const std::string& field, const std::string& what) { throw Error(where + ": " + field + ": " + what); };
  if (steps < 0) fail("steps", "must be 0 (off) or more");
  if (!(lr > 0) || !std::isfinite(lr)) fail("lr", "the learning rate must be above 0");
  if (!(warmup >= 0 && warmup <= 1)) fail("warmup", "must be a fraction of the steps, 0 to 1");
  const std::pair<const char*, double> weights[] = {{"pixel_l2", pixel_l2}, {"pixel_l1", pixel_l1},
                                                    {"ms_ssim", ms_ssim},   {"feature", feature},
                                                    {"anchor", anchor},     {"neighbour", neighbour}, {"precondition", precondition},
                                                    {"offset_lr", offset_lr}, {"offset_decay", offset_decay},
                                                    {"early_stop", early_stop}, {"init_jitter", init_jitter}};
  for (auto& [name, w] : weights)
    if (!(w >= 0) || !std::isfinite(w)) fail(name, "must be a finite number ≥ 0");
  if (pixel_l2 + pixel_l1 + ms_ssim + feature <= 0) fail("pixel_l2", "at least one loss weight must be above 0");
  if (loss_resolution != 0 && (loss_resolution < 4 || (loss_resolution & (loss_resolution - 1)) != 0))
    fail("loss_resolution", "must be 0 (the model's) or a power of two of at least 4");
  if (early_stop_window < 1) fail("early_stop_window", "must be at least 1");
}

RefineResult refineCodes(Automodulator& model, const torch::Tensor& images, const torch::Tensor& z,
                         const RefineOptions& o, const std::function<bool(int step, int steps)>& progress) {
  o.validate();
  const int res = model.resolution(), channels = model.config().image_channels;
  const int64_t dim = model.config().latent_dim;
  if (images.dim() != 4 || images.size(1) != channels || images.size(2) != res || images.size(3) != res)
    throw Error("refinement needs photos of " + std::to_string(channels) + " channels at the model's " +
                std::to_string(res) + " px");
  if (z.dim() != 2 || z.size(0) != images.size(0) || z.size(1) != dim)
    throw Error("refinement needs one " + std::to_string(dim) + "-d code per photo");
  const int loss_res = o.loss_resolution ? o.loss_resolution : res;
  if (loss_res > res)
    throw Error("the refinement's loss resolution " + std::to_string(loss_res) + " px is above the model's " +
                std::to_string(res) + " px");
  const int nb = model.numBlocks();
  const int64_t n = images.size(0);
  const auto device = model.device();
  // Callers decode under NoGradGuard; the codes' gradient needs autograd (into the codes only:
  // torch::autograd::grad with the codes as inputs computes no weight gradient).
  torch::AutoGradMode grad_mode(true);
  auto& decoder = model.ema;
  decoder->eval();
  model.encoder->eval();

  auto x = images.to(device, torch::kFloat32);
  auto z0 = normaliseLatent(z.detach().to(device, torch::kFloat32));
  RefineResult r;
  auto psnrOf = [&](const LatentPlan& plan) {
    torch::NoGradGuard no_grad;
    auto t = psnrPerImage(decodeUpTo(decoder, plan, nb).clamp(-1, 1), x).contiguous();
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  };
  r.psnr_before = psnrOf(LatentPlan::uniform(z0, nb));
  if (!o.enabled() || n == 0) {
    r.codes = LatentPlan::uniform(z0, nb);
    r.psnr_after = r.psnr_before;
    return r;
  }

  // The blocks the loss sees: up to the last block whose output has the loss resolution (with the
  // extra 8×8 block, both 8 px blocks); blocks above it keep the encoder's code.
  int loss_blocks = 0;
  for (int b = 0; b < nb; ++b)
    if (model.blockResolution(b) <= loss_res) loss_blocks = b + 1;
  const int loss_stage = ModelConfig::blockForResolution(loss_res);
  torch::Tensor target = x;
  if (loss_res < res) target = F::avg_pool2d(x, F::AvgPool2dFuncOptions(res / loss_res));
  std::vector<torch::Tensor> target_features, feature_scale;
  if (o.feature > 0) {
    torch::NoGradGuard no_grad;
    target_features = encoderFeatures(model.encoder, target, loss_stage);
    for (auto& f : target_features) feature_scale.push_back(perImageMean(f.pow(2)).clamp_min(1e-8));
  }

  // w: [loss_blocks, N, D], each row on the unit sphere; the decoder sees normalise(w), so the
  // gradient is tangent to the sphere, and w is put back on it after every step.
  auto w = z0.unsqueeze(0).repeat({loss_blocks, 1, 1});
  if (o.init_jitter > 0) {
    auto gen = at::detail::createCPUGenerator(o.seed);
    auto noise = at::randn(w.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat32)).to(device);
    w = F::normalize(w + o.init_jitter / std::sqrt(double(dim)) * noise, F::NormalizeFuncOptions().dim(2));
  }
  std::vector<Preconditioner> precond;
  if (o.precondition > 0)
    for (int b = 0; b < loss_blocks; ++b) {
      auto p = blockPreconditioner(*decoder->blocks->ptr(b)->as<DecoderBlock>(), o.precondition);
      precond.push_back({p.v.to(device), p.d.to(device)});
    }
  // Gradients and steps between z coordinates and Adam's (the same when not preconditioned).
  auto toAdam = [&](const torch::Tensor& g) {
    if (precond.empty()) return g;
    std::vector<torch::Tensor> out;
    for (int b = 0; b < loss_blocks; ++b) out.push_back(g[b].mm(precond[b].v) * precond[b].d);
    return torch::stack(out);
  };
  auto fromAdam = [&](const torch::Tensor& step) {
    if (precond.empty()) return step;
    std::vector<torch::Tensor> out;
    for (int b = 0; b < loss_blocks; ++b) out.push_back((step[b] * precond[b].d).mm(precond[b].v.t()));
    return torch::stack(out);
  };
  auto m = torch::zeros_like(w), v = torch::zeros_like(w);
  constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
  auto best_w = w.clone();
  // Style offsets of blocks [0, loss_blocks), side by side: [N, Σ_b S_b] (none: [N, 0]).
  std::vector<int64_t> widths;
  int64_t total_width = 0;
  for (int b = 0; b < loss_blocks; ++b) {
    widths.push_back(o.offsets ? decoder->blocks->ptr(b)->as<DecoderBlock>()->styleWidth() : 0);
    total_width += widths.back();
  }
  auto off = torch::zeros({n, total_width}, w.options());
  auto m_off = torch::zeros_like(off), v_off = torch::zeros_like(off);
  auto best_off = off.clone();
  const double offset_lr_scale = o.offset_lr > 0 ? o.offset_lr / o.lr : 1.0;
  std::vector<double> best_loss(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
  std::vector<std::vector<double>> history(static_cast<size_t>(n));
  std::vector<int> stopped_at(static_cast<size_t>(n), -1);
  auto active = torch::ones({1, n, 1}, w.options());

  // The plan of codes normalise(wp) with offsets op.
  auto planOf = [&](const torch::Tensor& codes, const torch::Tensor& op) {
    LatentPlan plan;
    int64_t at = 0;
    for (int b = 0; b < loss_blocks; ++b) {
      plan.latents.push_back(codes[b]);
      if (widths[b] > 0) plan.setOffset(b, op.narrow(1, at, widths[b]));
      at += widths[b];
    }
    return plan;
  };
  // Each photo's loss at codes normalise(wp) and offsets op: [N].
  auto lossOf = [&](const torch::Tensor& wp, const torch::Tensor& op) {
    auto codes = F::normalize(wp, F::NormalizeFuncOptions().dim(2));
    auto y = decodeUpTo(decoder, planOf(codes, op), loss_blocks);
    auto d = y - target;
    // What a user sees is clamped to [−1, 1]: where the photo is at the end of the range (a white
    // background), overshooting it costs nothing.
    d = torch::where(((target >= 1) & (d > 0)) | ((target <= -1) & (d < 0)), torch::zeros_like(d), d);
    auto loss = o.pixel_l2 * perImageMean(d.pow(2));
    if (o.pixel_l1 > 0) loss = loss + o.pixel_l1 * perImageMean(d.abs());
    if (o.ms_ssim > 0) loss = loss + o.ms_ssim * (1.0 - msSsimPerImage(y, target, 2.0));
    if (o.feature > 0) {
      auto features = encoderFeatures(model.encoder, y, loss_stage);
      for (size_t k = 0; k + 1 < features.size(); ++k)
        loss = loss + o.feature * perImageMean((features[k] - target_features[k]).pow(2)) / feature_scale[k];
    }
    if (o.anchor > 0) loss = loss + o.anchor * (codes - z0.unsqueeze(0)).pow(2).sum(2).sum(0);
    if (o.neighbour > 0 && loss_blocks > 1)
      loss = loss + o.neighbour * (codes.narrow(0, 1, loss_blocks - 1) - codes.narrow(0, 0, loss_blocks - 1))
                                      .pow(2)
                                      .sum(2)
                                      .sum(0);
    if (o.offset_decay > 0 && total_width > 0) loss = loss + o.offset_decay * op.pow(2).mean(1);
    return loss;
  };
  // Keeps each photo's best codes and offsets; the loss was measured at `at`, `at_off`.
  auto record = [&](const torch::Tensor& loss, const torch::Tensor& at, const torch::Tensor& at_off) {
    auto l = loss.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    const double* lp = l.data_ptr<double>();
    std::vector<int64_t> better;
    for (int64_t i = 0; i < n; ++i)
      if (lp[i] < best_loss[i]) {
        best_loss[i] = lp[i];
        better.push_back(i);
      }
    if (!better.empty()) {
      auto idx = torch::tensor(better, torch::kInt64).to(device);
      best_w.index_copy_(1, idx, at.index_select(1, idx));
      best_off.index_copy_(0, idx, at_off.index_select(0, idx));
    }
    return l;
  };

  int step = 0;
  for (; step < o.steps; ++step) {
    auto wp = w.detach().requires_grad_(true);
    auto op = off.detach().requires_grad_(total_width > 0);
    auto loss = lossOf(wp, op);
    std::vector<torch::Tensor> inputs{wp};
    if (total_width > 0) inputs.push_back(op);
    auto grads = torch::autograd::grad({loss.sum()}, inputs);
    auto grad = toAdam(grads[0]);
    torch::NoGradGuard no_grad;
    auto l = record(loss, w, off);
    if (o.early_stop > 0) {
      bool changed = false;
      for (int64_t i = 0; i < n; ++i) {
        if (stopped_at[i] >= 0) continue;
        auto& h = history[i];
        h.push_back(l.data_ptr<double>()[i]);
        const auto k = h.size();
        if (k > static_cast<size_t>(o.early_stop_window) &&
            h[k - 1 - o.early_stop_window] - h[k - 1] < o.early_stop * h[k - 1 - o.early_stop_window]) {
          stopped_at[i] = step;
          changed = true;
        }
      }
      if (changed) {
        std::vector<float> mask;
        for (int64_t i = 0; i < n; ++i) mask.push_back(stopped_at[i] < 0 ? 1.0f : 0.0f);
        active = torch::tensor(mask, torch::kFloat32).to(device).view({1, n, 1});
        if (std::all_of(stopped_at.begin(), stopped_at.end(), [](int s) { return s >= 0; })) break;
      }
    }
    m.mul_(kBeta1).add_(grad, 1.0 - kBeta1);
    v.mul_(kBeta2).addcmul_(grad, grad, 1.0 - kBeta2);
    const double lr = scheduledLr(o, step);
    const double c1 = 1.0 - std::pow(kBeta1, step + 1), c2 = 1.0 - std::pow(kBeta2, step + 1);
    auto update = fromAdam((m / c1) / ((v / c2).sqrt() + kEps)) * lr;
    w = F::normalize(w - update * active, F::NormalizeFuncOptions().dim(2));
    if (total_width > 0) {
      const auto& g = grads[1];
      m_off.mul_(kBeta1).add_(g, 1.0 - kBeta1);
      v_off.mul_(kBeta2).addcmul_(g, g, 1.0 - kBeta2);
      off = off - (m_off / c1) / ((v_off / c2).sqrt() + kEps) * (lr * offset_lr_scale) * active[0];
    }
    if (progress && !progress(step + 1, o.steps)) {
      r.cancelled = true;
      ++step;
      break;
    }
  }
  r.steps_run = step;
  {
    // The codes after the last update have not been scored yet.
    torch::NoGradGuard no_grad;
    record(lossOf(w, off), w, off);
  }
  auto best = F::normalize(best_w, F::NormalizeFuncOptions().dim(2));
  for (int b = 0; b < nb; ++b) r.codes.latents.push_back(b < loss_blocks ? best[b].contiguous() : z0);
  int64_t at = 0;
  for (int b = 0; b < loss_blocks; ++b) {
    if (widths[b] > 0) r.codes.setOffset(b, best_off.narrow(1, at, widths[b]).contiguous());
    at += widths[b];
  }
  r.psnr_after = psnrOf(r.codes);
  return r;
}

}  // namespace automod
