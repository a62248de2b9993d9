#include "training/losses.h"

#include "training/distributed.h"
#include "training/draws.h"

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
  if (auto* source = DrawScope::current()) return source->sphere(n, dim, device);
  return normaliseLatent(randnRows({n, dim}, torch::TensorOptions().device(device)));
}

LatentPlan flipInvariantPlan(const torch::Tensor& z, int blocks) {
  TORCH_CHECK(z.dim() == 2 && z.size(0) % 2 == 0, "flip-invariance pairs need an even batch of codes, got ", z.sizes());
  auto partner = z.view({-1, 2, z.size(1)}).flip({1}).reshape({-1, z.size(1)});
  return LatentPlan::mixed(z, partner, std::min(2, blocks), blocks);
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
  auto coin = torch::rand({n}, torch::kFloat32);
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

int randomSplit(int last_block) {
  // j ~ U{1..last_block} (= U{1..s} without the extra 8×8 block)
  if (auto* source = DrawScope::current()) return source->splitBlock(last_block);
  return 1 + static_cast<int>(torch::randint(last_block, {1}, torch::kLong).item<int64_t>());
}

int64_t mixedCount(int64_t batch, double fraction, int blocks) {
  if (blocks <= 1 || fraction <= 0.0) return 0;
  return std::clamp<int64_t>(std::llround(double(batch) * fraction), 0, batch);
}

// Data-parallel steps (docs/design.md §3 "Scaling out"): N ranks with batch b must compute what one process
// with batch N·b computes. Every rank draws every random number for the global batch from the same
// generator state and keeps its own rows; plain/mixed counts come from the global batch (the mixed
// codes are its last rows, so a rank may hold plain rows, mixed rows or both); and each loss term that
// is a mean over some rows is written as this rank's sum over the global count, times N, because the
// trainer then averages the gradients over the ranks.

/// Rows [offset, offset + local) of a global batch of `global` rows.
struct Rows {
  int64_t offset = 0, local = 0, global = 0;
  BatchRows batchRows() const { return {offset, global}; }
};

/// This rank's rows of the step's batch (local batch n; all ranks use the same n).
Rows stepRows(int64_t n) {
  if (auto* d = GlobalBatchScope::current()) return {d->rank() * n, n, d->worldSize() * n};
  return {0, n, n};
}

/// Of the `count` global rows starting at global row `start`, those in `rows`, indexed from `start`.
Rows subRows(const Rows& rows, int64_t start, int64_t count) {
  const int64_t lo = std::clamp(rows.offset, start, start + count);
  const int64_t hi = std::clamp(rows.offset + rows.local, start, start + count);
  return {lo - start, hi - lo, count};
}

/// Mean over the global rows of per-row values `t` ([local, ...]), as this rank's share (see above);
/// the plain mean in one process.
torch::Tensor rowMean(const torch::Tensor& t, const Rows& rows) {
  auto* d = GlobalBatchScope::current();
  if (!d) return t.mean();
  int64_t per_row = 1;
  for (int64_t k = 1; k < t.dim(); ++k) per_row *= t.size(k);
  return t.sum() * (static_cast<double>(d->worldSize()) / static_cast<double>(rows.global * per_row));
}

/// Multi-rank: replaces the values of the given terms (this rank's shares of means over the global
/// batch) by the global values, the same on every rank, keeping their gradients.
void globalValues(std::initializer_list<torch::Tensor*> terms) {
  auto* d = GlobalBatchScope::current();
  if (!d) return;
  std::vector<torch::Tensor> values;
  for (auto* t : terms) values.push_back(t->detach().reshape({1}).to(torch::kFloat64));
  std::vector<torch::Tensor> io{torch::cat(values)};
  d->allReduceSum(io);
  int64_t i = 0;
  for (auto* t : terms) {
    auto global = (io[0][i++] / d->worldSize()).to(t->scalar_type());
    *t = *t + (global - t->detach());
  }
}

/// z and, for a mixed batch, the plan that mixes its first rows: as the authors' code, the first
/// n_mix rows decode z_A = z for blocks < j and a fresh code z_B from block j on; the other rows are
/// plain. Draws in the authors' order: the codes, the fresh codes of the mixed rows, the split block.
struct MixedCodes {
  torch::Tensor z;
  LatentPlan plan;
  int split = 0;
  Rows mixed, plain;
};

MixedCodes mixedCodes(const Rows& rows, int64_t dim, const torch::Device& device, double fraction, int blocks) {
  MixedCodes c;
  const int64_t n_mix = mixedCount(rows.global, fraction, blocks);
  c.mixed = subRows(rows, 0, n_mix);
  c.plain = subRows(rows, n_mix, rows.global - n_mix);
  c.z = randomSphere(rows.local, dim, device);  // z_A of the mixed rows, then the plain codes
  c.plan = LatentPlan::uniform(c.z, blocks);
  if (n_mix > 0) {
    torch::Tensor fresh;
    {
      BatchRowsScope scope(c.mixed.batchRows());
      fresh = randomSphere(c.mixed.local, dim, device);
    }
    c.split = randomSplit(blocks - 1);
    auto zb = torch::cat({fresh, c.z.narrow(0, c.mixed.local, c.plain.local)});
    c.plan = LatentPlan::mixed(c.z, zb, c.split, blocks);
  }
  return c;
}

}  // namespace

DecodeWithCanvas decodeKeepingCanvas(Decoder& decoder, const LatentPlan& plan, int stage, double alpha, int split) {
  const int nb = decoder->blocksAtStage(stage);
  TORCH_CHECK(split >= 0 && split < nb, "split block ", split, " is outside 0..", nb - 1);
  std::vector<torch::Tensor> canvases(nb);
  DecodeWithCanvas out;
  if (stage == 0 || alpha >= 1.0) {
    auto h = decoder->runBlocks({}, plan, 0, nb, &canvases);
    out.image = decoder->toRGB(nb - 1, h);
  } else {
    const int prev_nb = decoder->blocksAtStage(stage - 1);
    auto prev = decoder->runBlocks({}, plan, 0, prev_nb, &canvases);
    auto old = upsample2(decoder->toRGB(prev_nb - 1, prev));
    if (alpha <= 0.0) {
      out.image = old;
      // The extra 8×8 block makes a split inside the new level possible; its canvas is still needed.
      if (split > prev_nb) decoder->runBlocks(prev, plan, prev_nb, split, &canvases);
    } else {
      auto grown = decoder->runBlocks(prev, plan, prev_nb, nb, &canvases);
      out.image = (1.0 - alpha) * old + alpha * decoder->toRGB(nb - 1, grown);
    }
  }
  if (split > 0) out.canvas = canvases[split - 1];
  return out;
}

namespace {
torch::Tensor layerSquares(Decoder& decoder, const torch::Tensor& canvas_a, const torch::Tensor& z_hat, int split) {
  auto canvas = decoder->runBlocks({}, LatentPlan::uniform(z_hat, split), 0, split);
  return (canvas - canvas_a).square();
}
}  // namespace

torch::Tensor layerLoss(Decoder& decoder, const torch::Tensor& canvas_a, const torch::Tensor& z_hat, int split) {
  return layerSquares(decoder, canvas_a, z_hat, split).mean();
}

// ---------------------------------------------------------------------------------------------
// Encoder step

torch::Tensor encoderTotal(const torch::Tensor& kl_real, const torch::Tensor& kl_fake, const torch::Tensor& rec,
                           const StepContext& ctx, const LossWeights& w, torch::Tensor* gap_out) {
  auto gap = w.gap * (kl_real - kl_fake);
  if (w.gap_clamp == LossWeights::GapClamp::Hinge)
    gap = torch::clamp_min(gap, -ctx.m_gap);
  else if (ctx.m_gap > 0.0)
    gap = torch::clamp(gap, -ctx.m_gap, ctx.m_gap / 2.0);
  if (gap_out) *gap_out = gap;
  const double lambda_x = ctx.lambda_x >= 0.0 ? ctx.lambda_x : ctx.fading() ? w.lambda_x_fade : w.lambda_x_stable;
  return w.kl * kl_real + gap + w.rec * lambda_x * rec;
}

namespace {

// Decoded random codes for the encoder step (this rank's rows), a fraction of them style-mixed. No grad.
torch::Tensor generatedImages(Decoder& decoder, const Rows& rows, const StepContext& ctx, const LossWeights& w) {
  torch::NoGradGuard no_grad;
  const auto device = decoder->blocks->ptr(0)->as<DecoderBlock>()->conv1->weight.device();
  BatchRowsScope scope(rows.batchRows());
  auto codes = mixedCodes(rows, decoder->config.latent_dim, device, w.encoder_mix_fraction,
                          decoder->blocksAtStage(ctx.stage));
  return decoder->forward(codes.plan, ctx.stage, ctx.alpha);
}

// The image pool sees the global batch: every rank keeps the same pool and takes its rows back.
torch::Tensor pooled(ImagePool& pool, const torch::Tensor& fake, const Rows& rows) {
  auto* d = GlobalBatchScope::current();
  if (!d) return pool.query(fake);
  return pool.query(d->allGather(fake)).narrow(0, rows.offset, rows.local);
}

}  // namespace

EncoderStepLosses encoderStep(Encoder& encoder, Decoder& decoder, RobustLoss& robust, const torch::Tensor& x,
                              const StepContext& ctx, const LossWeights& w, ImagePool* pool) {
  const int64_t n = x.size(0);
  const Rows rows = stepRows(n);
  auto fake = generatedImages(decoder, rows, ctx, w);
  if (pool) fake = pooled(*pool, fake, rows);
  torch::Tensor z_real, z_fake;
  if (w.separate_encoder_passes) {
    // The authors' order: the real batch, then the generated one (each pass its own power iteration).
    z_real = encoder->forward(x, ctx.stage, ctx.alpha);
    z_fake = encoder->forward(fake, ctx.stage, ctx.alpha);
  } else {
    // One encoder pass over real and generated images (one power iteration, one big GEMM).
    auto z = encoder->forward(torch::cat({x, fake}), ctx.stage, ctx.alpha);
    z_real = z.narrow(0, 0, n);
    z_fake = z.narrow(0, n, n);
  }
  EncoderStepLosses l;
  l.kl_real = batchKL(z_real);
  l.kl_fake = batchKL(z_fake);
  torch::Tensor recon;
  {
    BatchRowsScope scope(rows.batchRows());
    recon = ctx.flip_invariance
                ? decoder->forward(flipInvariantPlan(z_real, decoder->blocksAtStage(ctx.stage)), ctx.stage, ctx.alpha)
                : decoder->forward(z_real, ctx.stage, ctx.alpha);
  }
  // A mean over equal per-rank batches: averaging the ranks' gradients gives the global mean's.
  auto diff = recon - x;
  if (w.rec_max_resolution > 0)  // a difference of averages is the average of the differences
    while (diff.size(2) > w.rec_max_resolution) diff = downsample2(diff);
  l.rec = w.robust ? robust->forward(diff, static_cast<int>(x.size(2))) : diff.abs().mean();
  globalValues({&l.rec});
  l.total = encoderTotal(l.kl_real, l.kl_fake, l.rec, ctx, w, &l.gap);
  return l;
}

// ---------------------------------------------------------------------------------------------
// Decoder step

DecoderStepLosses decoderStep(Encoder& encoder, Decoder& decoder, int64_t batch, const StepContext& ctx,
                              const LossWeights& w, const torch::Tensor& x) {
  const int64_t dim = decoder->config.latent_dim;
  const auto device = decoder->blocks->ptr(0)->as<DecoderBlock>()->conv1->weight.device();
  const Rows rows = stepRows(batch);
  BatchRowsScope scope(rows.batchRows());
  auto codes = mixedCodes(rows, dim, device, w.decoder_mix_fraction, decoder->blocksAtStage(ctx.stage));
  const auto& plain = codes.plain;
  const auto& mixed = codes.mixed;
  DecoderStepLosses l;
  l.split = codes.split;
  auto dec = decodeKeepingCanvas(decoder, codes.plan, ctx.stage, ctx.alpha, l.split);
  auto z_hat = encoder->forward(dec.image, ctx.stage, ctx.alpha);
  l.kl_fake = batchKL(z_hat);
  auto zero = torch::zeros({}, codes.z.options());
  if (plain.global == 0) {
    l.cos = zero;
  } else {
    auto products = codes.z.narrow(0, mixed.local, plain.local) * z_hat.narrow(0, mixed.local, plain.local);
    l.cos = w.cycle == LossWeights::Cycle::Reference ? rowMean(2.0 - products, plain) : rowMean(1.0 - products.sum(1), plain);
  }
  if (mixed.global > 0) {
    // Runs even for a rank without mixed rows, so that its noise draws stay in step with the others.
    BatchRowsScope mixed_scope(mixed.batchRows());
    l.layer = rowMean(layerSquares(decoder, dec.canvas.narrow(0, 0, mixed.local), z_hat.narrow(0, 0, mixed.local),
                                   l.split),
                      mixed);
  } else {
    l.layer = zero;
  }
  if (w.decoder_rec > 0.0 && x.defined()) {
    // The real batch through the frozen encoder (no graph), then the decoder with its gradient.
    torch::Tensor z_real;
    {
      torch::NoGradGuard no_grad;
      z_real = encoder->forward(x, ctx.stage, ctx.alpha);
    }
    auto recon = decoder->forward(z_real, ctx.stage, ctx.alpha);
    // A mean over equal per-rank batches: averaging the ranks' gradients gives the global mean's.
    l.rec = (recon - x).abs().mean();
  } else {
    l.rec = zero;
  }
  globalValues({&l.cos, &l.layer, &l.rec});
  l.total = w.kl * l.kl_fake + w.cos * l.cos + w.layer * l.layer + w.decoder_rec * l.rec;
  return l;
}

double emaDecayAt(double decay, int64_t step) {
  const double s = static_cast<double>(std::max<int64_t>(step, 0));
  return std::min(decay, (1.0 + s) / (10.0 + s));
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
