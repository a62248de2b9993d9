#include "core/model/networks.h"

#include <torch/nn/functional.h>

#include <cmath>

namespace automod {
namespace F = torch::nn::functional;

namespace {
torch::Tensor lrelu(const torch::Tensor& x) { return F::leaky_relu(x, F::LeakyReLUFuncOptions().negative_slope(0.2)); }

// Leaky ReLU of a block's own temporary: without autograd (inference) in place, which at 256 px and up
// spares a pass over a 32–64 MB feature map and its allocation.
torch::Tensor activate(const torch::Tensor& t) {
  if (torch::GradMode::is_enabled()) return lrelu(t);
  return F::leaky_relu(t, F::LeakyReLUFuncOptions().negative_slope(0.2).inplace(true));
}
}  // namespace

torch::Tensor upsample2(const torch::Tensor& x) {
  // Nearest ×2 as a broadcast copy: cheaper than interpolate on CPU and bit-identical.
  const auto n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  return x.unsqueeze(3).unsqueeze(5).expand({n, c, h, 2, w, 2}).reshape({n, c, 2 * h, 2 * w});
}

torch::Tensor downsample2(const torch::Tensor& x) { return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2)); }

// ---------------------------------------------------------------------------------------------
// Decoder

DecoderBlockImpl::DecoderBlockImpl(const DecoderBlockOptions& o, const ModelConfig& c)
    : first(o.first()), upsample(o.upsample()) {
  const int64_t out = o.out();
  auto adain = [&] {
    return AdaIN(AdaINOptions(out, c.latent_dim)
                     .eps(c.adain_eps)
                     .plain(c.plain_modulation)
                     .unbiased(c.adain_unbiased)
                     .init(o.init()));
  };
  auto conv = [&](int64_t from) {
    return EqualConv2d(EqualConv2dOptions(from, out, 3).learned_gain(c.learned_gain).init(o.init()));
  };
  auto noise = [&] { return NoiseInjection(NoiseInjectionOptions(out).per_element(c.noise_per_element).init(o.init())); };
  conv1 = register_module("conv1", conv(o.in()));
  adain1 = register_module("adain1", adain());
  if (!first) {
    noise1 = register_module("noise1", noise());
    conv2 = register_module("conv2", conv(out));
    noise2 = register_module("noise2", noise());
    adain2 = register_module("adain2", adain());
  }
}

int64_t DecoderBlockImpl::styleWidth() const {
  return adain1->styleWidth() + (first ? 0 : adain2->styleWidth());
}

torch::Tensor DecoderBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& z, bool noise,
                                        const torch::Tensor& offset) {
  // Without autograd (inference) the elementwise passes run in place on the block's own temporaries
  // (leaky ReLU, AdaIN's normalise-and-modulate as one multiply-add), which at 256 px and up spares
  // several passes over 32 MB feature maps and their allocations.
  const bool in_place = !torch::GradMode::is_enabled();
  if (offset.defined())
    TORCH_CHECK(offset.dim() == 2 && offset.size(1) == styleWidth(), "decoder block: style offsets ", offset.sizes(),
                " do not have the block's ", styleWidth(), " styles");
  auto part = [&](int layer) {
    if (!offset.defined()) return torch::Tensor();
    return offset.narrow(1, layer * adain1->styleWidth(), adain1->styleWidth());
  };
  auto modulate = [&](AdaIN& adain, const torch::Tensor& t, int layer) {
    return in_place ? adain->forwardInPlace(t, z, part(layer)) : adain->forward(t, z, part(layer));
  };
  if (first) return modulate(adain1, activate(conv1->forward(x)), 0);
  auto h = upsample ? blur3x3(conv1->forward(upsample2(x))) : conv1->forward(x);
  if (noise) h = noise1->forward(h);
  h = modulate(adain1, activate(h), 0);
  h = conv2->forward(h);
  if (noise) h = noise2->forward(h);
  return modulate(adain2, activate(h), 1);
}

int64_t DecoderBlockImpl::macsPerImage(int resolution) const {
  const int64_t px = int64_t(resolution) * resolution;
  return conv1->macsPerPixel() * px + (first ? 0 : conv2->macsPerPixel() * px);
}

DecoderImpl::DecoderImpl(const ModelConfig& c, WeightInit init) : config(c) {
  config.validate();
  blocks = register_module("blocks", torch::nn::ModuleList());
  to_rgb = register_module("to_rgb", torch::nn::ModuleList());
  const int nb = config.numBlocks();
  for (int b = 0; b < nb; ++b) {
    const int64_t in = b == 0 ? config.widths[0] : config.widths[b - 1];
    blocks->push_back(DecoderBlock(DecoderBlockOptions(in, config.widths[b]).first(b == 0).init(init), config));
    if (b == 1 && config.extra_8x8_block)
      blocks->push_back(
          DecoderBlock(DecoderBlockOptions(config.widths[1], config.widths[1]).upsample(false).init(init), config));
    // Plain modulation: the reference's nn.Conv2d(C, 3, 1) with PyTorch's default initialisation.
    to_rgb->push_back(config.plain_modulation
                          ? plainConv1x1(config.widths[b], config.image_channels, init)
                          : EqualConv2d(EqualConv2dOptions(config.widths[b], config.image_channels, 1).init(init)));
  }
  if (config.learned_input) {
    const std::vector<int64_t> shape{1, config.widths[0], 4, 4};
    learned_input = register_parameter("input", init == WeightInit::None ? torch::empty(shape) : torch::ones(shape));
  }
}

torch::Tensor DecoderImpl::input(int64_t n, const torch::Device& device) const {
  if (learned_input.defined()) return learned_input.expand({n, -1, -1, -1});
  return torch::ones({n, config.widths[0], 4, 4}, torch::TensorOptions().device(device));
}

torch::Tensor DecoderImpl::runBlocks(const torch::Tensor& canvas, const LatentPlan& plan, int from, int to) {
  return runBlocks(canvas, plan, from, to, nullptr);
}

torch::Tensor DecoderImpl::runBlocks(const torch::Tensor& canvas, const LatentPlan& plan, int from, int to,
                                     std::vector<torch::Tensor>* canvases) {
  const int nb = config.decoderBlocks();
  TORCH_CHECK(0 <= from && from <= to && to <= nb, "decoder block range [", from, ", ", to, ") is outside [0, ", nb,
              ")");
  TORCH_CHECK(plan.size() >= to, "the latent plan has ", plan.size(), " blocks but blocks up to ", to, " were asked for");
  torch::Tensor h = canvas;
  if (from == 0) {
    TORCH_CHECK(plan.size() > 0 && plan[0].defined(), "the latent plan is empty");
    h = input(plan.batch(), plan[0].device());
  }
  TORCH_CHECK(h.defined(), "decoding from block ", from, " needs the canvas of block ", from - 1);
  for (int b = from; b < to; ++b) {
    h = blocks->ptr(b)->as<DecoderBlock>()->forward(h, plan[b], noise_enabled, plan.offset(b));
    if (canvases) (*canvases)[b] = h;
  }
  return h;
}

torch::Tensor DecoderImpl::toRGB(int block, const torch::Tensor& canvas) {
  TORCH_CHECK(block >= 0 && block < config.decoderBlocks(), "decoder block ", block, " is outside 0..",
              config.decoderBlocks() - 1);
  return to_rgb->ptr(config.stageOfBlock(block))->as<EqualConv2d>()->forward(canvas);
}

torch::Tensor DecoderImpl::forward(const LatentPlan& plan, int stage, double alpha) {
  TORCH_CHECK(stage >= 0 && stage < config.numBlocks(), "stage ", stage, " is outside the model's ",
              config.numBlocks(), " blocks");
  const int nb = blocksAtStage(stage);
  if (stage == 0 || alpha >= 1.0) return toRGB(nb - 1, runBlocks({}, plan, 0, nb));
  // Fade-in: the blocks of the new resolution (one, or two with the extra 8×8 block) blended in.
  const int prev_nb = blocksAtStage(stage - 1);
  auto prev = runBlocks({}, plan, 0, prev_nb);
  if (alpha <= 0.0) return upsample2(toRGB(prev_nb - 1, prev));
  auto grown = toRGB(nb - 1, runBlocks(prev, plan, prev_nb, nb));
  return (1.0 - alpha) * upsample2(toRGB(prev_nb - 1, prev)) + alpha * grown;
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& z, int stage, double alpha) {
  return forward(LatentPlan::uniform(z, blocksAtStage(stage)), stage, alpha);
}

int64_t DecoderImpl::macsPerImage(int stage) const {
  int64_t macs = 0;
  for (int b = 0; b < blocksAtStage(stage); ++b)
    macs += blocks->ptr(b)->as<DecoderBlock>()->macsPerImage(config.decoderBlockResolution(b));
  const int64_t r = ModelConfig::blockResolution(stage);
  return macs + to_rgb->ptr(stage)->as<EqualConv2d>()->macsPerPixel() * r * r;
}

std::vector<torch::Tensor> DecoderImpl::styleParameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& m : modules(/*include_self=*/false))
    if (auto a = std::dynamic_pointer_cast<AdaINImpl>(m))
      for (auto& p : a->parameters(true)) out.push_back(p);
  return out;
}

std::vector<int64_t> DecoderImpl::styleWidths() const {
  std::vector<int64_t> out;
  for (size_t b = 0; b < blocks->size(); ++b) out.push_back(blocks->ptr(b)->as<DecoderBlock>()->styleWidth());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoder

EncoderBlockImpl::EncoderBlockImpl(const EncoderBlockOptions& o) {
  const int64_t mid = o.widen_first() ? o.out() : o.in();
  conv1 = register_module("conv1", SNConv2d(SNConv2dOptions(o.in(), mid, 3).in_graph(o.sn_in_graph()).init(o.init())));
  conv2 = register_module("conv2", SNConv2d(SNConv2dOptions(mid, o.out(), 3).in_graph(o.sn_in_graph()).init(o.init())));
}

torch::Tensor EncoderBlockImpl::forward(const torch::Tensor& x) {
  return downsample2(activate(conv2->forward(activate(conv1->forward(x)))));
}

EncoderImpl::EncoderImpl(const ModelConfig& c, WeightInit init) : config(c) {
  config.validate();
  blocks = register_module("blocks", torch::nn::ModuleList());
  from_rgb = register_module("from_rgb", torch::nn::ModuleList());
  const int nb = config.numBlocks();
  const bool in_graph = config.sn_power_iteration_in_graph;
  for (int b = 0; b < nb; ++b) {
    const int64_t width = config.encoderWidth(b);
    if (config.plain_from_rgb)
      from_rgb->push_back(plainConv1x1(config.image_channels, width, init));
    else
      from_rgb->push_back(SNConv2d(SNConv2dOptions(config.image_channels, width, 1).in_graph(in_graph).init(init)));
    // blocks[0] is a placeholder so that blocks[b] is the block at resolution 4·2^b.
    if (b == 0)
      blocks->push_back(torch::nn::Identity());
    else
      blocks->push_back(EncoderBlock(EncoderBlockOptions(width, config.encoderWidth(b - 1))
                                         .widen_first(config.encoder_widen_first)
                                         .sn_in_graph(in_graph)
                                         .init(init)));
  }
  const int64_t w0 = config.encoderWidth(0);
  final_conv = register_module("final_conv", SNConv2d(SNConv2dOptions(w0, w0, 3).in_graph(in_graph).init(init)));
  final_out = register_module(
      "final_out", SNConv2d(SNConv2dOptions(w0, config.latent_dim, 4).padding(0).in_graph(in_graph).init(init)));
}

torch::Tensor EncoderImpl::fromRGB(int stage, const torch::Tensor& x) {
  if (config.plain_from_rgb) return from_rgb->ptr(stage)->as<EqualConv2d>()->forward(x);
  return from_rgb->ptr(stage)->as<SNConv2d>()->forward(x);
}

torch::Tensor EncoderImpl::forwardRaw(const torch::Tensor& x, int stage, double alpha) {
  TORCH_CHECK(stage >= 0 && stage < config.numBlocks(), "stage ", stage, " is outside the model's ",
              config.numBlocks(), " blocks");
  const int64_t r = ModelConfig::blockResolution(stage);
  TORCH_CHECK(x.dim() == 4 && x.size(1) == config.image_channels && x.size(2) == r && x.size(3) == r,
              "the encoder at stage ", stage, " takes [N, ", config.image_channels, ", ", r, ", ", r, "] images, got ",
              x.sizes());
  auto h = fromRGB(stage, x);
  if (stage > 0) {
    h = blocks->ptr(stage)->as<EncoderBlock>()->forward(h);
    if (alpha < 1.0) {
      auto skip = fromRGB(stage - 1, downsample2(x));
      h = alpha * h + (1.0 - alpha) * skip;
    }
    for (int b = stage - 1; b >= 1; --b) h = blocks->ptr(b)->as<EncoderBlock>()->forward(h);
  }
  h = final_out->forward(activate(final_conv->forward(h)));
  return h.flatten(1);
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& x, int stage, double alpha) {
  return normaliseLatent(forwardRaw(x, stage, alpha));
}

int64_t EncoderImpl::macsPerImage(int stage) const {
  int64_t r = ModelConfig::blockResolution(stage);
  int64_t macs = int64_t(config.image_channels) * config.encoderWidth(stage) * r * r;
  for (int b = stage; b >= 1; --b, r /= 2) {
    auto blk = blocks->ptr(b)->as<EncoderBlock>();
    macs += (blk->conv1->macsPerPixel() + blk->conv2->macsPerPixel()) * r * r;
  }
  return macs + final_conv->macsPerPixel() * 16 + final_out->macsPerPixel();
}

std::vector<SNConv2d> EncoderImpl::spectralLayers() const {
  std::vector<SNConv2d> out;
  for (const auto& m : modules(/*include_self=*/false))
    if (auto sn = std::dynamic_pointer_cast<SNConv2dImpl>(m)) out.emplace_back(sn);
  return out;
}

}  // namespace automod
