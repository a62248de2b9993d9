#include "training/losses.h"

#include "training/distributed.h"

#include <torch/nn/functional.h>

#include <cmath>

namespace automod {

torch::Tensor batchKL(const torch::Tensor& z) {
  // Data-parallel training: μ and σ² of the global batch (gradient scaled for averaging).
  if (auto* dist = GlobalBatchScope::current()) return dist->globalBatchKL(z);
  TORCH_CHECK(z.dim() == 2 && z.size(0) >= 2, "batchKL needs a [B >= 2, D] batch of latents, got ", z.sizes());
  auto mu = z.mean(0);
  auto var = (z - mu).square().mean(0);
  return ((var + mu.square()) * 0.5 - 0.5 * var.log() - 0.5).mean();
}

torch::Tensor randomSphere(int64_t n, int64_t dim, const torch::Device& device) {
  return normaliseLatent(torch::randn({n, dim}, torch::TensorOptions().device(device)));
}

torch::Tensor blendRealForFadeIn(const torch::Tensor& x, double alpha) {
  if (alpha >= 1.0) return x;
  return alpha * x + (1.0 - alpha) * upsample2(downsample2(x));
}

// ---------------------------------------------------------------------------------------------
// Image pool

torch::Tensor ImagePool::query(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  const int64_t n = images.size(0);
  if (capacity_ <= 0 || n == 0) return images;
  if (!images_.defined() || images_.sizes().slice(1) != images.sizes().slice(1)) {
    images_ = torch::empty({capacity_, images.size(1), images.size(2), images.size(3)}, images.options());
    count_ = 0;
  }
  auto out = images.clone();
  auto coin = torch::rand({n});
  auto pick = torch::randint(capacity_, {n}, torch::kLong);
  auto c = coin.accessor<float, 1>();
  auto p = pick.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    if (count_ < capacity_) {
      images_[count_++].copy_(images[i]);
    } else if (c[i] < 0.5f) {
      out[i].copy_(images_[p[i]]);
      images_[p[i]].copy_(images[i]);
    }
  }
  return out;
}

void ImagePool::restore(const torch::Tensor& stored) {
  clear();
  if (!stored.defined() || stored.numel() == 0) return;
  TORCH_CHECK(stored.size(0) <= capacity_, "image pool state holds more images than the pool's capacity");
  images_ = torch::empty({capacity_, stored.size(1), stored.size(2), stored.size(3)}, stored.options());
  images_.narrow(0, 0, stored.size(0)).copy_(stored);
  count_ = static_cast<int>(stored.size(0));
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers

namespace {

int randomSplit(int stage) {
  // j ~ U{1..s}
  return 1 + static_cast<int>(torch::randint(stage, {1}, torch::kLong).item<int64_t>());
}

int64_t mixedCount(int64_t batch, double fraction, int stage) {
  if (stage <= 0 || fraction <= 0.0) return 0;
  return std::clamp<int64_t>(std::llround(double(batch) * fraction), 0, batch);
}

}  // namespace

DecodeWithCanvas decodeKeepingCanvas(Decoder& decoder, const LatentPlan& plan, int stage, double alpha, int split) {
  TORCH_CHECK(split >= 0 && split <= stage, "split block ", split, " is outside 0..", stage);
  std::vector<torch::Tensor> canvases(stage + 1);
  DecodeWithCanvas out;
  if (stage == 0 || alpha >= 1.0) {
    auto h = decoder->runBlocks({}, plan, 0, stage + 1, &canvases);
    out.image = decoder->toRGB(stage, h);
  } else {
    auto prev = decoder->runBlocks({}, plan, 0, stage, &canvases);
    auto old = upsample2(decoder->toRGB(stage - 1, prev));
    if (alpha <= 0.0) {
      out.image = old;
    } else {
      auto grown = decoder->blocks->ptr(stage)->as<DecoderBlock>()->forward(prev, plan[stage], decoder->noise());
      out.image = (1.0 - alpha) * old + alpha * decoder->toRGB(stage, grown);
    }
  }
  if (split > 0) out.canvas = canvases[split - 1];
  return out;
}

torch::Tensor layerLoss(Decoder& decoder, const torch::Tensor& canvas_a, const torch::Tensor& z_hat, int split) {
  auto canvas = decoder->runBlocks({}, LatentPlan::uniform(z_hat, split), 0, split);
  return (canvas - canvas_a).square().mean();
}

// ---------------------------------------------------------------------------------------------
// Encoder step

torch::Tensor encoderTotal(const torch::Tensor& kl_real, const torch::Tensor& kl_fake, const torch::Tensor& rec,
                           const StepContext& ctx, const LossWeights& w, torch::Tensor* gap_out) {
  auto gap = torch::clamp_min(w.gap * (kl_real - kl_fake), -ctx.m_gap);
  if (gap_out) *gap_out = gap;
  const double lambda_x = ctx.fading() ? w.lambda_x_fade : w.lambda_x_stable;
  return w.kl * kl_real + gap + w.rec * lambda_x * rec;
}

namespace {

// Decoded random codes for the encoder step, a fraction of them style-mixed. No grad.
torch::Tensor generatedImages(Decoder& decoder, int64_t n, const StepContext& ctx, const LossWeights& w) {
  torch::NoGradGuard no_grad;
  const int64_t dim = decoder->config.latent_dim;
  const auto device = decoder->blocks->ptr(0)->as<DecoderBlock>()->conv1->weight.device();
  auto z = randomSphere(n, dim, device);
  const int64_t n_mix = mixedCount(n, w.encoder_mix_fraction, ctx.stage);
  LatentPlan plan = LatentPlan::uniform(z, ctx.stage + 1);
  if (n_mix > 0) {
    const int j = randomSplit(ctx.stage);
    auto zb = torch::cat({z.narrow(0, 0, n - n_mix), randomSphere(n_mix, dim, device)});
    plan = LatentPlan::mixed(z, zb, j, ctx.stage + 1);
  }
  return decoder->forward(plan, ctx.stage, ctx.alpha);
}

}  // namespace

EncoderStepLosses encoderStep(Encoder& encoder, Decoder& decoder, RobustLoss& robust, const torch::Tensor& x,
                              const StepContext& ctx, const LossWeights& w, ImagePool* pool) {
  const int64_t n = x.size(0);
  auto fake = generatedImages(decoder, n, ctx, w);
  if (pool) fake = pool->query(fake);
  // One encoder pass over real and generated images (one power iteration, one big GEMM).
  auto z = encoder->forward(torch::cat({x, fake}), ctx.stage, ctx.alpha);
  auto z_real = z.narrow(0, 0, n), z_fake = z.narrow(0, n, n);
  EncoderStepLosses l;
  l.kl_real = batchKL(z_real);
  l.kl_fake = batchKL(z_fake);
  auto recon = decoder->forward(z_real, ctx.stage, ctx.alpha);
  l.rec = w.robust ? robust->forward(recon - x) : (recon - x).abs().mean();
  l.total = encoderTotal(l.kl_real, l.kl_fake, l.rec, ctx, w, &l.gap);
  return l;
}

// ---------------------------------------------------------------------------------------------
// Decoder step

DecoderStepLosses decoderStep(Encoder& encoder, Decoder& decoder, int64_t batch, const StepContext& ctx,
                              const LossWeights& w) {
  const int64_t dim = decoder->config.latent_dim;
  const auto device = decoder->blocks->ptr(0)->as<DecoderBlock>()->conv1->weight.device();
  const int64_t n_mix = mixedCount(batch, w.decoder_mix_fraction, ctx.stage);
  const int64_t n_plain = batch - n_mix;
  DecoderStepLosses l;
  auto z = randomSphere(batch, dim, device);  // plain codes, then the z_A of the mixed ones
  LatentPlan plan = LatentPlan::uniform(z, ctx.stage + 1);
  if (n_mix > 0) {
    l.split = randomSplit(ctx.stage);
    auto zb = torch::cat({z.narrow(0, 0, n_plain), randomSphere(n_mix, dim, device)});
    plan = LatentPlan::mixed(z, zb, l.split, ctx.stage + 1);
  }
  auto dec = decodeKeepingCanvas(decoder, plan, ctx.stage, ctx.alpha, l.split);
  auto z_hat = encoder->forward(dec.image, ctx.stage, ctx.alpha);
  l.kl_fake = batchKL(z_hat);
  auto zero = torch::zeros({}, z.options());
  l.cos = n_plain > 0 ? (1.0 - (z.narrow(0, 0, n_plain) * z_hat.narrow(0, 0, n_plain)).sum(1)).mean() : zero;
  l.layer = n_mix > 0 ? layerLoss(decoder, dec.canvas.narrow(0, n_plain, n_mix), z_hat.narrow(0, n_plain, n_mix), l.split)
                      : zero;
  l.total = w.kl * l.kl_fake + w.cos * l.cos + w.layer * l.layer;
  return l;
}

void updateEma(Decoder& ema, Decoder& decoder, double decay) {
  torch::NoGradGuard no_grad;
  auto src = decoder->parameters(true);
  auto dst = ema->parameters(true);
  TORCH_CHECK(src.size() == dst.size(), "EMA decoder does not match the decoder");
  for (size_t i = 0; i < src.size(); ++i) dst[i].lerp_(src[i], 1.0 - decay);
  auto sb = decoder->buffers(true);
  auto db = ema->buffers(true);
  for (size_t i = 0; i < sb.size() && i < db.size(); ++i) db[i].copy_(sb[i]);
}

}  // namespace automod
