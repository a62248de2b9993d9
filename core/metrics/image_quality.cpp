#include "core/metrics/image_quality.h"

#include <torch/nn/functional.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace automod {
namespace F = torch::nn::functional;

namespace {

struct Prepared {
  torch::Tensor a, b;
  double peak;
};

Prepared prepare(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes(), "image metrics need images of the same shape, got ", a.sizes(), " and ",
              b.sizes());
  TORCH_CHECK(a.dim() == 3 || a.dim() == 4, "image metrics expect [N, C, H, W] or [C, H, W]");
  TORCH_CHECK((a.scalar_type() == torch::kUInt8) == (b.scalar_type() == torch::kUInt8),
              "compare uint8 with uint8 and float with float images");
  const double peak = a.scalar_type() == torch::kUInt8 ? 255.0 : 2.0;
  auto cvt = [](const torch::Tensor& t) {
    auto x = t.detach().to(torch::kCPU, torch::kFloat64);
    return x.dim() == 3 ? x.unsqueeze(0) : x;
  };
  return {cvt(a), cvt(b), peak};
}

}  // namespace

torch::Tensor psnrPerImage(const torch::Tensor& a, const torch::Tensor& b) {
  auto p = prepare(a, b);
  auto mse = (p.a - p.b).pow(2).flatten(1).mean(1);
  return (p.peak * p.peak / mse).log10() * 10.0;  // mse 0 → +inf
}

double psnr(const torch::Tensor& a, const torch::Tensor& b) { return psnrPerImage(a, b).mean().item<double>(); }

namespace {

struct SsimTerms {
  torch::Tensor ssim, cs;  // [N]: SSIM and its contrast-structure part, averaged over channels and positions
};

// SSIM (and cs) per image of [N, C, H, W] images in their own dtype, differentiable: the Gaussian
// window is separable, so it runs as a vertical then a horizontal depthwise convolution over the
// five statistics at once.
SsimTerms ssimTerms(const torch::Tensor& a, const torch::Tensor& b, double peak) {
  const int64_t c = a.size(1), h = a.size(2), w = a.size(3);
  int win = static_cast<int>(std::min<int64_t>(11, std::min(h, w)));
  if (win % 2 == 0) --win;
  const double sigma = 1.5;
  auto coords = torch::arange(win, a.options()) - (win - 1) / 2.0;
  auto g = (-(coords * coords) / (2 * sigma * sigma)).exp();
  g = g / g.sum();
  const int64_t k = 5 * c;
  auto gv = g.view({1, 1, win, 1}).expand({k, 1, win, 1}).contiguous();
  auto gh = g.view({1, 1, 1, win}).expand({k, 1, 1, win}).contiguous();
  auto stats = torch::cat({a, b, a * a, b * b, a * b}, 1);
  auto f = F::conv2d(F::conv2d(stats, gv, F::Conv2dFuncOptions().groups(k)), gh, F::Conv2dFuncOptions().groups(k));
  auto mu_a = f.narrow(1, 0, c), mu_b = f.narrow(1, c, c);
  auto var_a = f.narrow(1, 2 * c, c) - mu_a * mu_a;
  auto var_b = f.narrow(1, 3 * c, c) - mu_b * mu_b;
  auto cov = f.narrow(1, 4 * c, c) - mu_a * mu_b;
  const double c1 = std::pow(0.01 * peak, 2), c2 = std::pow(0.03 * peak, 2);
  auto cs = (2 * cov + c2) / (var_a + var_b + c2);
  auto map = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1) * cs;
  return {map.flatten(1).mean(1), cs.flatten(1).mean(1)};
}

}  // namespace

torch::Tensor ssimPerImage(const torch::Tensor& a, const torch::Tensor& b) {
  auto p = prepare(a, b);
  return ssimTerms(p.a, p.b, p.peak).ssim;
}

torch::Tensor msSsimPerImage(const torch::Tensor& a, const torch::Tensor& b, double peak) {
  TORCH_CHECK(a.sizes() == b.sizes() && a.dim() == 4, "MS-SSIM needs two [N, C, H, W] batches of the same shape, got ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.is_floating_point() && b.is_floating_point(), "MS-SSIM takes float images");
  static const double kWeights[] = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333};
  int levels = 1;
  for (int64_t s = std::min(a.size(2), a.size(3)) / 2; s >= 16 && levels < 5; s /= 2) ++levels;
  double total = 0;
  for (int i = 0; i < levels; ++i) total += kWeights[i];
  torch::Tensor x = a, y = b, out;
  for (int i = 0; i < levels; ++i) {
    auto t = ssimTerms(x, y, peak);
    auto term = (i + 1 == levels ? t.ssim : t.cs).clamp_min(1e-6).pow(kWeights[i] / total);
    out = out.defined() ? out * term : term;
    if (i + 1 < levels) {
      x = F::avg_pool2d(x, F::AvgPool2dFuncOptions(2));
      y = F::avg_pool2d(y, F::AvgPool2dFuncOptions(2));
    }
  }
  return out;
}

double ssim(const torch::Tensor& a, const torch::Tensor& b) { return ssimPerImage(a, b).mean().item<double>(); }

}  // namespace automod
