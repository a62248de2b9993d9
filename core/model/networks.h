#pragma once
// The automodulator's decoder θ and encoder φ (docs/design.md §2). Both are built for the configured final
// resolution; training grows them by raising `stage` (the index of the top block in use), so every
// weight trained at a lower resolution is kept.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "core/model/config.h"
#include "core/model/latent_plan.h"
#include "core/model/layers.h"

namespace automod {

struct DecoderBlockOptions {
  DecoderBlockOptions(int64_t in, int64_t out) : in_(in), out_(out) {}
  /// Input and output channels.
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, out);
  /// Block 0: one modulated layer on the 4×4 input, no upsampling, no noise.
  TORCH_ARG(bool, first) = false;
  /// Upsample ×2 (and blur) before the first convolution; off for the extra 8×8 block.
  TORCH_ARG(bool, upsample) = true;
  TORCH_ARG(WeightInit, init) = WeightInit::Random;
};

/// Decoder block b: block 0 has one modulated layer, later blocks upsample and have two. The extra
/// 8×8 block of ModelConfig::extra_8x8_block has two layers and does not upsample (nor blur).
struct DecoderBlockImpl : torch::nn::Module {
  /// Layer options (latent size, AdaIN ε and std, plain modulation, learned gains, noise) come
  /// from `config`.
  DecoderBlockImpl(const DecoderBlockOptions& options, const ModelConfig& config);
  /// `offset`: the block's style offsets [N, styleWidth()] (LatentPlan::offsets) or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z, bool noise, const torch::Tensor& offset = {});
  int64_t macsPerImage(int resolution) const;
  /// Styles of the block's AdaIN layers together (2 × channels per layer): the width of its offsets.
  int64_t styleWidth() const;

  bool first;
  bool upsample;
  EqualConv2d conv1{nullptr}, conv2{nullptr};
  NoiseInjection noise1{nullptr}, noise2{nullptr};
  AdaIN adain1{nullptr}, adain2{nullptr};
};
TORCH_MODULE(DecoderBlock);

struct DecoderImpl : torch::nn::Module {
  /// With WeightInit::None every parameter is left uninitialised for a loader to replace.
  explicit DecoderImpl(const ModelConfig& config, WeightInit init = WeightInit::Random);

  /// ξ⁽⁰⁾: the fixed (or learned) C₀×4×4 input for a batch of n.
  torch::Tensor input(int64_t n, const torch::Device& device) const;
  /// Decoder blocks are indexed 0 .. config.decoderBlocks() − 1; with the extra 8×8 block there is
  /// one more block than stages (ModelConfig::blocksAtStage), and a LatentPlan holds one latent per block.
  int blocksAtStage(int stage) const { return config.blocksAtStage(stage); }
  /// Runs blocks [from, to) from canvas ξ⁽from⁾ (ignored when from == 0) and returns ξ⁽to⁾.
  torch::Tensor runBlocks(const torch::Tensor& canvas, const LatentPlan& plan, int from, int to);
  /// Like runBlocks, but also stores every intermediate canvas: canvases[k] = ξ⁽k+1⁾ for k in [from, to).
  torch::Tensor runBlocks(const torch::Tensor& canvas, const LatentPlan& plan, int from, int to,
                          std::vector<torch::Tensor>* canvases);
  /// toRGB of block b applied to its canvas ξ⁽b+1⁾ (one toRGB per resolution: the extra 8×8 block
  /// and block 1 share the 8 px one).
  torch::Tensor toRGB(int block, const torch::Tensor& canvas);
  /// The image at resolution 4·2^stage, fading in block `stage` with weight alpha.
  torch::Tensor forward(const LatentPlan& plan, int stage, double alpha = 1.0);
  torch::Tensor forward(const torch::Tensor& z, int stage, double alpha = 1.0);

  /// Per-pixel noise: on during training, off by default at inference.
  void setNoise(bool on) { noise_enabled = on; }
  bool noise() const { return noise_enabled; }
  /// Multiply-accumulates of one image decoded at `stage` (α = 1).
  int64_t macsPerImage(int stage) const;
  /// The parameters of every AdaIN's style linear (flip-invariance training also updates them in
  /// the encoder step).
  std::vector<torch::Tensor> styleParameters() const;
  /// Each block's style width (DecoderBlockImpl::styleWidth): the offsets a LatentPlan may carry.
  std::vector<int64_t> styleWidths() const;

  ModelConfig config;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::ModuleList to_rgb{nullptr};
  torch::Tensor learned_input;
  bool noise_enabled = false;
};
TORCH_MODULE(Decoder);

struct EncoderBlockOptions {
  EncoderBlockOptions(int64_t in, int64_t out) : in_(in), out_(out) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, out);
  /// The width changes in the first convolution (the authors') instead of the second.
  TORCH_ARG(bool, widen_first) = false;
  /// The spectral norm's power iteration inside the autograd graph (SNConv2dOptions::in_graph).
  TORCH_ARG(bool, sn_in_graph) = false;
  TORCH_ARG(WeightInit, init) = WeightInit::Random;
};

/// Encoder block at resolution r > 4: conv3×3 → lrelu → conv3×3 → lrelu → avgpool 2×2. The width
/// changes in the second convolution, or in the first with `widen_first` (the authors').
struct EncoderBlockImpl : torch::nn::Module {
  explicit EncoderBlockImpl(const EncoderBlockOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  SNConv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(EncoderBlock);

struct EncoderImpl : torch::nn::Module {
  /// With WeightInit::None every parameter and spectral-norm vector is left uninitialised for a loader.
  explicit EncoderImpl(const ModelConfig& config, WeightInit init = WeightInit::Random);
  /// Images [N, C, R, R] with R = 4·2^stage, in [−1, 1] → unit-norm latents [N, latent_dim].
  torch::Tensor forward(const torch::Tensor& x, int stage, double alpha = 1.0);
  /// The latent before L2 normalisation (used by the losses' batch statistics).
  torch::Tensor forwardRaw(const torch::Tensor& x, int stage, double alpha = 1.0);
  int64_t macsPerImage(int stage) const;
  /// All spectral-norm layers, for saving and checking their u/v vectors.
  std::vector<SNConv2d> spectralLayers() const;
  /// fromRGB of resolution level `stage` (spectrally normalised, or plain with plain_from_rgb).
  torch::Tensor fromRGB(int stage, const torch::Tensor& x);

  ModelConfig config;
  torch::nn::ModuleList blocks{nullptr};   // blocks[b] works at resolution 4·2^b, b >= 1 (index 0 unused)
  torch::nn::ModuleList from_rgb{nullptr};
  SNConv2d final_conv{nullptr}, final_out{nullptr};
};
TORCH_MODULE(Encoder);

/// Nearest-neighbour ×2 upsampling and 2×2 average pooling, as used by fade-in.
torch::Tensor upsample2(const torch::Tensor& x);
torch::Tensor downsample2(const torch::Tensor& x);

}  // namespace automod
