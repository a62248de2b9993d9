#pragma once
// Building blocks of the automodulator (docs/design.md §2): equalised-learning-rate convolutions and linears,
// spectrally normalised convolutions with a persisted power-iteration vector, AdaIN, per-pixel
// noise and the [1,2,1] blur.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <mutex>

namespace automod {

/// How a layer's parameters and buffers start. Random: drawn as for training from scratch. None: only
/// allocated (torch::empty, whose pages the OS provides on first touch), for a loader that replaces
/// every one of them (Tensor::set_data or copy_) before the network is used; a network built this way
/// and run as is computes with garbage. Loading a 330 MB model spent seconds drawing weights it then
/// overwrote.
enum class WeightInit { Random, None };

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
  /// A scalar gain (parameter "gain", initialised to 1) multiplies the scaled weight, as in the
  /// authors' EqualConv2d (their weight_gain). It is a parameter (saved, averaged by the EMA) that
  /// no gradient reaches, as in their training.
  TORCH_ARG(bool, learned_gain) = false;
  /// How weight, bias and gain start.
  TORCH_ARG(WeightInit, init) = WeightInit::Random;
};

/// Convolution with weights ~ N(0,1) scaled at run time by sqrt(2 / fan_in) (and a learned gain
/// when asked), bias 0.
struct EqualConv2dImpl : torch::nn::Module {
  explicit EqualConv2dImpl(const EqualConv2dOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  /// The weight the convolution uses: weight · scale (· gain).
  torch::Tensor effectiveWeight() const;
  /// Multiply-accumulates per output pixel (for FLOP counts).
  int64_t macsPerPixel() const { return options.in() * options.kernel() * options.kernel() * options.out(); }

  EqualConv2dOptions options;
  torch::Tensor weight, bias, gain;
  double scale;
};
TORCH_MODULE(EqualConv2d);

/// A plain 1×1 convolution (PyTorch's nn.Conv2d(in, out, 1) with its default initialisation,
/// U(±1/√in) for weight and bias), as an EqualConv2d with scale 1 so that it saves like one: the
/// toRGB layers of plain-modulation models and the authors' fromRGB.
EqualConv2d plainConv1x1(int64_t in, int64_t out, WeightInit init = WeightInit::Random);

/// Linear layer with the equalised learning rate.
struct EqualLinearImpl : torch::nn::Module {
  EqualLinearImpl(int64_t in, int64_t out, WeightInit init = WeightInit::Random);
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
  /// The authors' spectral norm: every forward (eval too) computes v = n(Wᵀu), u' = n(Wv) from the
  /// stored u inside the autograd graph and divides by u'ᵀWv; training stores u' (detached), eval
  /// keeps u. Off: see below.
  TORCH_ARG(bool, in_graph) = false;
  /// How weight_orig, bias, u and v start.
  TORCH_ARG(WeightInit, init) = WeightInit::Random;
};

/// Spectrally normalised convolution. In training mode each forward runs one power iteration and
/// stores u and v; in eval mode the stored vectors are used unchanged (updating them at test time
/// collapses the outputs). u and v are buffers, so they are saved with the model. With
/// options.in_graph the authors' variant above (v is then only a record of the last iteration).
struct SNConv2dImpl : torch::nn::Module {
  explicit SNConv2dImpl(const SNConv2dOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  /// The normalised weight the next forward would use (no power iteration).
  torch::Tensor normalisedWeight() const;
  int64_t macsPerPixel() const { return options.in() * options.kernel() * options.kernel() * options.out(); }

  SNConv2dOptions options;
  torch::Tensor weight_orig, bias, u, v;

 private:
  /// normalisedWeight() for eval mode without autograd, where u and v are not updated and the weight
  /// is a constant: computed at the first call and again only after weight_orig, u or v changed (an
  /// in-place write raises a tensor's version counter; set_data and to() change its storage). Threads
  /// that encode with one model at the same time share it under a lock.
  torch::Tensor evalWeight();
  struct WeightKey {
    const void* data[3] = {};
    int64_t version[3] = {};
    bool operator==(const WeightKey& o) const {
      for (int i = 0; i < 3; ++i)
        if (data[i] != o.data[i] || version[i] != o.version[i]) return false;
      return true;
    }
  };
  WeightKey weightKey() const;
  std::mutex eval_mutex_;
  torch::Tensor eval_weight_;
  WeightKey eval_key_;
};
TORCH_MODULE(SNConv2d);

struct AdaINOptions {
  AdaINOptions(int64_t channels, int64_t latent_dim) : channels_(channels), latent_dim_(latent_dim) {}
  /// Feature channels modulated.
  TORCH_ARG(int64_t, channels);
  /// Size of the latent that drives it.
  TORCH_ARG(int64_t, latent_dim);
  /// ε added to σ.
  TORCH_ARG(double, eps) = 1e-8;
  /// A plain linear with Xavier-normal weights (the reference) instead of an equalised one.
  TORCH_ARG(bool, plain) = false;
  /// σ is the unbiased standard deviation (N − 1), as in the authors' AdaNorm.
  TORCH_ARG(bool, unbiased) = false;
  /// How the style linear starts.
  TORCH_ARG(WeightInit, init) = WeightInit::Random;
};

/// Adaptive instance normalisation driven by a latent: (s, m) = Linear(z); out = s·(x−μ)/(σ+ε) + m.
/// Starts near identity (scale bias 1, shift bias 0). The linear is equalised (weights N(0,1) times
/// √(2/fan_in) at run time) or, with `plain`, a plain linear with Xavier-normal weights (the reference).
/// An optional style offset [N, 2·channels] (LatentPlan::offsets: scales, then shifts) is added to
/// (s, m) before they modulate.
struct AdaINImpl : torch::nn::Module {
  explicit AdaINImpl(const AdaINOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& z, const torch::Tensor& offset = {});
  /// The same, overwriting `x` (which the caller must own and not need again): x·(s/σ) + (m − μ·s/σ)
  /// in one pass over the feature map, no new allocation. For inference without autograd, where the
  /// memory-bound passes of a 256–512 px decode's narrow high-resolution blocks add up; equal to
  /// forward() up to float rounding.
  torch::Tensor forwardInPlace(torch::Tensor x, const torch::Tensor& z, const torch::Tensor& offset = {});
  /// The styles (s, m) of latents z [N, latent_dim] plus `offset`: [N, 2·channels].
  torch::Tensor styles(const torch::Tensor& z, const torch::Tensor& offset = {});
  /// Width of the styles (and of an offset): 2·channels.
  int64_t styleWidth() const { return 2 * channels; }
  EqualLinear style{nullptr};
  int64_t channels;
  double eps;
  bool unbiased;
};
TORCH_MODULE(AdaIN);

/// Data-parallel training: this process computes rows [offset, offset + n) of a batch of `global`
/// rows. Per-sample random draws (noise, random codes, flips) are then made for all `global` rows
/// and this process's rows are taken, so that N ranks draw exactly what one process with the whole
/// batch draws from the same generator state.
struct BatchRows {
  int64_t offset = 0;
  int64_t global = 0;  ///< 0: the local batch is the whole batch
};

/// Sets the BatchRows of this thread while alive (scopes nest; the innermost wins).
class BatchRowsScope {
 public:
  explicit BatchRowsScope(BatchRows rows);
  ~BatchRowsScope();
  BatchRowsScope(const BatchRowsScope&) = delete;
  BatchRowsScope& operator=(const BatchRowsScope&) = delete;
  /// The innermost scope's rows, or null outside any scope.
  static const BatchRows* current();

 private:
  const BatchRows* previous_;
  BatchRows rows_;
};

/// torch::randn / torch::rand of `shape` (global generator) whose first dimension is this process's
/// rows: inside a BatchRowsScope the draw is made for all global rows and rows [offset, offset +
/// shape[0]) are returned (shape[0] may be 0: the generator still advances as for the whole batch);
/// outside one it is the plain call.
torch::Tensor randnRows(at::IntArrayRef shape, const torch::TensorOptions& options = {});
torch::Tensor randRows(at::IntArrayRef shape, const torch::TensorOptions& options = {});

struct NoiseInjectionOptions {
  explicit NoiseInjectionOptions(int64_t channels) : channels_(channels) {}
  TORCH_ARG(int64_t, channels);
  /// One noise value per element (the authors') instead of one map per sample shared by the channels.
  TORCH_ARG(bool, per_element) = false;
  TORCH_ARG(WeightInit, init) = WeightInit::Random;
};

/// Adds N(0,1) noise times a learnable per-channel scale (initialised to 0): one map per sample
/// shared by the channels, or with `per_element` one value per element (the authors'). The noise
/// is drawn with randnRows (per sample of the global batch in data-parallel training).
struct NoiseInjectionImpl : torch::nn::Module {
  explicit NoiseInjectionImpl(const NoiseInjectionOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  bool per_element;
};
TORCH_MODULE(NoiseInjection);

/// Depthwise [1,2,1]⊗[1,2,1]/16 blur with padding 1.
torch::Tensor blur3x3(const torch::Tensor& x);

/// Pixel-wise L2 normalisation of latents along dim 1 (onto the unit sphere).
torch::Tensor normaliseLatent(const torch::Tensor& z);

}  // namespace automod
