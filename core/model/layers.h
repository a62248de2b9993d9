#pragma once
// Building blocks of the automodulator (SPEC §2): equalised-learning-rate convolutions and linears,
// spectrally normalised convolutions with a persisted power-iteration vector, AdaIN, per-pixel
// noise and the [1,2,1] blur.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace automod {

struct EqualConv2dOptions {
  EqualConv2dOptions(int64_t in, int64_t out, int64_t kernel) : in_(in), out_(out), kernel_(kernel) {}
  /// Input channels.
  TORCH_ARG(int64_t, in);
  /// Output channels.
  TORCH_ARG(int64_t, out);
  /// Square kernel size.
  TORCH_ARG(int64_t, kernel);
  /// Zero padding; -1 means "same" (kernel / 2).
  TORCH_ARG(int64_t, padding) = -1;
};

/// Convolution with weights ~ N(0,1) scaled at run time by sqrt(2 / fan_in), bias 0.
struct EqualConv2dImpl : torch::nn::Module {
  explicit EqualConv2dImpl(const EqualConv2dOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  /// Multiply-accumulates per output pixel (for FLOP counts).
  int64_t macsPerPixel() const { return options.in() * options.kernel() * options.kernel() * options.out(); }

  EqualConv2dOptions options;
  torch::Tensor weight, bias;
  double scale;
};
TORCH_MODULE(EqualConv2d);

/// Linear layer with the equalised learning rate.
struct EqualLinearImpl : torch::nn::Module {
  EqualLinearImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  double scale;
};
TORCH_MODULE(EqualLinear);

struct SNConv2dOptions {
  SNConv2dOptions(int64_t in, int64_t out, int64_t kernel) : in_(in), out_(out), kernel_(kernel) {}
  /// Input channels.
  TORCH_ARG(int64_t, in);
  /// Output channels.
  TORCH_ARG(int64_t, out);
  /// Square kernel size.
  TORCH_ARG(int64_t, kernel);
  /// Zero padding; -1 means "same" (kernel / 2).
  TORCH_ARG(int64_t, padding) = -1;
};

/// Spectrally normalised convolution. In training mode each forward runs one power iteration and
/// stores u and v; in eval mode the stored vectors are used unchanged (updating them at test time
/// collapses the outputs). u and v are buffers, so they are saved with the model.
struct SNConv2dImpl : torch::nn::Module {
  explicit SNConv2dImpl(const SNConv2dOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  /// The normalised weight the next forward would use (no power iteration).
  torch::Tensor normalisedWeight() const;
  int64_t macsPerPixel() const { return options.in() * options.kernel() * options.kernel() * options.out(); }

  SNConv2dOptions options;
  torch::Tensor weight_orig, bias, u, v;
};
TORCH_MODULE(SNConv2d);

/// Adaptive instance normalisation driven by a latent: (s, m) = Linear(z); out = s·(x−μ)/(σ+ε) + m.
/// Starts near identity (scale bias 1, shift bias 0).
struct AdaINImpl : torch::nn::Module {
  AdaINImpl(int64_t channels, int64_t latent_dim, double eps);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z);
  EqualLinear style{nullptr};
  int64_t channels;
  double eps;
};
TORCH_MODULE(AdaIN);

/// Adds per-pixel N(0,1) noise times a learnable per-channel scale (initialised to 0).
struct NoiseInjectionImpl : torch::nn::Module {
  explicit NoiseInjectionImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
};
TORCH_MODULE(NoiseInjection);

/// Depthwise [1,2,1]⊗[1,2,1]/16 blur with padding 1.
torch::Tensor blur3x3(const torch::Tensor& x);

/// Pixel-wise L2 normalisation of latents along dim 1 (onto the unit sphere).
torch::Tensor normaliseLatent(const torch::Tensor& z);

}  // namespace automod
