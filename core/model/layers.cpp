#include "core/model/layers.h"

#include <torch/nn/functional.h>
#include <torch/nn/init.h>

#include <cmath>
#include <vector>

namespace automod {
namespace F = torch::nn::functional;

namespace {
int64_t samePadding(int64_t padding, int64_t kernel) { return padding < 0 ? kernel / 2 : padding; }

// `make()` for WeightInit::Random, an uninitialised tensor of `shape` for WeightInit::None.
template <typename Make>
torch::Tensor initial(WeightInit init, at::IntArrayRef shape, Make&& make) {
  return init == WeightInit::None ? torch::empty(shape) : make();
}
}  // namespace

EqualConv2dImpl::EqualConv2dImpl(const EqualConv2dOptions& o) : options(o) {
  const int64_t k = o.kernel();
  weight = register_parameter("weight", initial(o.init(), {o.out(), o.in(), k, k},
                                                [&] { return torch::randn({o.out(), o.in(), k, k}); }));
  bias = register_parameter("bias", initial(o.init(), {o.out()}, [&] { return torch::zeros({o.out()}); }));
  if (o.learned_gain()) gain = register_parameter("gain", initial(o.init(), {1}, [] { return torch::ones({1}); }));
  scale = std::sqrt(2.0 / static_cast<double>(o.in() * o.kernel() * o.kernel()));
}

torch::Tensor EqualConv2dImpl::effectiveWeight() const {
  // The authors compute weight_orig * sqrt(2 / fan_in) * weight_gain, in that order. No gradient
  // reaches their weight_gain (their recorded training iteration has none): it is stored, averaged
  // into the EMA decoder, and otherwise fixed.
  auto w = weight * scale;
  return gain.defined() ? w * gain.detach() : w;
}

torch::Tensor EqualConv2dImpl::forward(const torch::Tensor& x) {
  return F::conv2d(x, effectiveWeight(),
                   F::Conv2dFuncOptions().bias(bias).padding(samePadding(options.padding(), options.kernel())));
}

EqualConv2d plainConv1x1(int64_t in, int64_t out, WeightInit init) {
  EqualConv2d conv(EqualConv2dOptions(in, out, 1).init(init));
  conv->scale = 1.0;
  if (init == WeightInit::None) return conv;
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  conv->weight.uniform_(-bound, bound);
  conv->bias.uniform_(-bound, bound);
  return conv;
}

EqualLinearImpl::EqualLinearImpl(int64_t in, int64_t out, WeightInit init) {
  weight = register_parameter("weight", initial(init, {out, in}, [&] { return torch::randn({out, in}); }));
  bias = register_parameter("bias", initial(init, {out}, [&] { return torch::zeros({out}); }));
  scale = std::sqrt(2.0 / static_cast<double>(in));
}

torch::Tensor EqualLinearImpl::forward(const torch::Tensor& x) { return torch::addmm(bias, x, (weight * scale).t()); }

SNConv2dImpl::SNConv2dImpl(const SNConv2dOptions& o) : options(o) {
  const int64_t k = o.kernel(), fan_in = o.in() * k * k;
  weight_orig = register_parameter("weight_orig", torch::empty({o.out(), o.in(), k, k}));
  if (o.init() == WeightInit::Random) torch::nn::init::kaiming_normal_(weight_orig);
  bias = register_parameter("bias", initial(o.init(), {o.out()}, [&] { return torch::zeros({o.out()}); }));
  u = register_buffer("u", initial(o.init(), {o.out()},
                                   [&] { return normaliseLatent(torch::randn({1, o.out()})).squeeze(0); }));
  v = register_buffer("v", initial(o.init(), {fan_in},
                                   [&] { return normaliseLatent(torch::randn({1, fan_in})).squeeze(0); }));
}

namespace {
// The authors' compute_weight: one power iteration from u inside the graph; returns W / (u'ᵀWv).
torch::Tensor powerIterationWeight(const torch::Tensor& weight_orig, const torch::Tensor& u, torch::Tensor* nu_out,
                                   torch::Tensor* nv_out) {
  auto w = weight_orig.reshape({weight_orig.size(0), -1});
  auto nv = torch::mv(w.t(), u);
  nv = nv / nv.norm();
  auto nu = torch::mv(w, nv);
  nu = nu / nu.norm();
  auto sigma = torch::dot(nu, torch::mv(w, nv));
  if (nu_out) *nu_out = nu;
  if (nv_out) *nv_out = nv;
  return weight_orig / sigma;
}
}  // namespace

torch::Tensor SNConv2dImpl::normalisedWeight() const {
  if (options.in_graph()) return powerIterationWeight(weight_orig, u, nullptr, nullptr);
  auto w = weight_orig.reshape({options.out(), -1});
  auto sigma = torch::dot(u, torch::mv(w, v));
  return weight_orig / sigma;
}

torch::Tensor SNConv2dImpl::forward(const torch::Tensor& x) {
  const auto conv_options = F::Conv2dFuncOptions().bias(bias).padding(samePadding(options.padding(), options.kernel()));
  // Eval mode without autograd (encoding): the weight is a constant, the same as below computes.
  if (!is_training() && !torch::GradMode::is_enabled()) return F::conv2d(x, evalWeight(), conv_options);
  if (options.in_graph()) {
    torch::Tensor nu, nv;
    // A copy of u goes into the graph, so that storing the new u below does not invalidate it.
    auto w = powerIterationWeight(weight_orig, is_training() ? u.clone() : u, &nu, &nv);
    if (is_training()) {
      torch::NoGradGuard no_grad;
      u.copy_(nu);
      v.copy_(nv);
    }
    return F::conv2d(x, w, conv_options);
  }
  if (is_training()) {
    torch::Tensor nu, nv;
    {
      torch::NoGradGuard no_grad;
      auto w = weight_orig.reshape({options.out(), -1});
      nv = F::normalize(torch::mv(w.t(), u), F::NormalizeFuncOptions().dim(0).eps(1e-12));
      nu = F::normalize(torch::mv(w, nv), F::NormalizeFuncOptions().dim(0).eps(1e-12));
      v.copy_(nv);
      u.copy_(nu);
    }
    // The graph keeps these copies, not the buffers, which a later forward of this step updates.
    auto sigma = torch::dot(nu, torch::mv(weight_orig.reshape({options.out(), -1}), nv));
    return F::conv2d(x, weight_orig / sigma, conv_options);
  }
  return F::conv2d(x, normalisedWeight(), conv_options);
}

SNConv2dImpl::WeightKey SNConv2dImpl::weightKey() const {
  return {{weight_orig.data_ptr(), u.data_ptr(), v.data_ptr()}, {weight_orig._version(), u._version(), v._version()}};
}

torch::Tensor SNConv2dImpl::evalWeight() {
  std::lock_guard<std::mutex> lock(eval_mutex_);
  const WeightKey key = weightKey();
  if (!eval_weight_.defined() || !(key == eval_key_)) {
    eval_weight_ = normalisedWeight();
    eval_key_ = key;
  }
  return eval_weight_;
}

AdaINImpl::AdaINImpl(const AdaINOptions& o) : channels(o.channels()), eps(o.eps()), unbiased(o.unbiased()) {
  style = register_module("style", EqualLinear(o.latent_dim(), 2 * channels, o.init()));
  if (o.plain()) style->scale = 1.0;
  if (o.init() == WeightInit::None) return;
  torch::NoGradGuard no_grad;
  if (o.plain()) {
    style->weight.normal_(0.0, std::sqrt(2.0 / static_cast<double>(o.latent_dim() + 2 * channels)));
  }
  style->bias.narrow(0, 0, channels).fill_(1.0);
  style->bias.narrow(0, channels, channels).zero_();
}

torch::Tensor AdaINImpl::styles(const torch::Tensor& z, const torch::Tensor& offset) {
  auto st = style->forward(z);
  if (!offset.defined()) return st;
  TORCH_CHECK(offset.dim() == 2 && offset.size(1) == 2 * channels && offset.size(0) == st.size(0),
              "AdaIN: style offsets ", offset.sizes(), " do not fit ", st.size(0), " latents of ", 2 * channels,
              " styles");
  return st + offset;
}

torch::Tensor AdaINImpl::forward(const torch::Tensor& x, const torch::Tensor& z, const torch::Tensor& offset) {
  TORCH_CHECK(z.dim() == 2 && z.size(0) == x.size(0), "AdaIN: latent batch ", z.sizes(), " does not match features ",
              x.sizes());
  auto st = styles(z, offset);
  auto s = st.narrow(1, 0, channels).unsqueeze(2).unsqueeze(3);
  auto m = st.narrow(1, channels, channels).unsqueeze(2).unsqueeze(3);
  auto [var, mean] = torch::var_mean(x, {2, 3}, unbiased, /*keepdim=*/true);
  if (eps == 0.0) return s * ((x - mean) / var.sqrt()) + m;
  return s * ((x - mean) / (var.sqrt() + eps)) + m;
}

torch::Tensor AdaINImpl::forwardInPlace(torch::Tensor x, const torch::Tensor& z, const torch::Tensor& offset) {
  TORCH_CHECK(!torch::GradMode::is_enabled(), "AdaIN::forwardInPlace is for inference without autograd");
  auto st = styles(z, offset);
  auto s = st.narrow(1, 0, channels).unsqueeze(2).unsqueeze(3);
  auto m = st.narrow(1, channels, channels).unsqueeze(2).unsqueeze(3);
  auto [var, mean] = torch::var_mean(x, {2, 3}, unbiased, /*keepdim=*/true);
  auto scale = eps == 0.0 ? s / var.sqrt() : s / (var.sqrt() + eps);
  auto shift = m - mean * scale;
  return x.mul_(scale).add_(shift);
}

namespace {
thread_local const BatchRows* t_batch_rows = nullptr;

template <typename Draw>
torch::Tensor drawRows(at::IntArrayRef shape, Draw&& draw) {
  const BatchRows* rows = t_batch_rows;
  if (!rows || rows->global <= 0) return draw(shape);
  TORCH_CHECK(!shape.empty(), "a row-sliced random draw needs a batch dimension");
  TORCH_CHECK(rows->offset >= 0 && rows->offset + shape[0] <= rows->global, "rows [", rows->offset, ", ",
              rows->offset + shape[0], ") are outside the global batch of ", rows->global);
  std::vector<int64_t> global(shape.begin(), shape.end());
  global[0] = rows->global;
  return draw(global).narrow(0, rows->offset, shape[0]);
}
}  // namespace

BatchRowsScope::BatchRowsScope(BatchRows rows) : previous_(t_batch_rows), rows_(rows) { t_batch_rows = &rows_; }

BatchRowsScope::~BatchRowsScope() { t_batch_rows = previous_; }

const BatchRows* BatchRowsScope::current() { return t_batch_rows; }

torch::Tensor randnRows(at::IntArrayRef shape, const torch::TensorOptions& options) {
  return drawRows(shape, [&](at::IntArrayRef s) { return torch::randn(s, options); });
}

torch::Tensor randRows(at::IntArrayRef shape, const torch::TensorOptions& options) {
  return drawRows(shape, [&](at::IntArrayRef s) { return torch::rand(s, options); });
}

NoiseInjectionImpl::NoiseInjectionImpl(const NoiseInjectionOptions& o) : per_element(o.per_element()) {
  const int64_t channels = o.channels();
  weight = register_parameter("weight", initial(o.init(), {1, channels, 1, 1}, [&] { return torch::zeros({1, channels, 1, 1}); }));
}

torch::Tensor NoiseInjectionImpl::forward(const torch::Tensor& x) {
  auto noise = randnRows({x.size(0), per_element ? x.size(1) : 1, x.size(2), x.size(3)}, x.options());
  return x + weight * noise;
}

torch::Tensor blur3x3(const torch::Tensor& x) {
  const int64_t c = x.size(1);
  auto k1 = torch::tensor({1.0f, 2.0f, 1.0f}, x.options());
  auto k = (k1.unsqueeze(1) * k1.unsqueeze(0)) / 16.0;
  k = k.view({1, 1, 3, 3}).expand({c, 1, 3, 3}).contiguous();
  return F::conv2d(x, k, F::Conv2dFuncOptions().padding(1).groups(c));
}

torch::Tensor normaliseLatent(const torch::Tensor& z) {
  return F::normalize(z, F::NormalizeFuncOptions().dim(1).eps(1e-12));
}

}  // namespace automod
