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

torch::Tensor ssimPerImage(const torch::Tensor& a, const torch::Tensor& b) {
  auto p = prepare(a, b);
  const int64_t c = p.a.size(1), h = p.a.size(2), w = p.a.size(3);
  int win = static_cast<int>(std::min<int64_t>(11, std::min(h, w)));
  if (win % 2 == 0) --win;
  const double sigma = 1.5;
  auto coords = torch::arange(win, torch::kFloat64) - (win - 1) / 2.0;
  auto g = (-(coords * coords) / (2 * sigma * sigma)).exp();
  g = g / g.sum();
  auto kernel = torch::outer(g, g).expand({c, 1, win, win}).contiguous();
  auto filt = [&](const torch::Tensor& x) { return F::conv2d(x, kernel, F::Conv2dFuncOptions().groups(c)); };
  const double c1 = std::pow(0.01 * p.peak, 2), c2 = std::pow(0.03 * p.peak, 2);
  auto mu_a = filt(p.a), mu_b = filt(p.b);
  auto var_a = filt(p.a * p.a) - mu_a * mu_a;
  auto var_b = filt(p.b * p.b) - mu_b * mu_b;
  auto cov = filt(p.a * p.b) - mu_a * mu_b;
  auto map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
  return map.flatten(1).mean(1);
}

double ssim(const torch::Tensor& a, const torch::Tensor& b) { return ssimPerImage(a, b).mean().item<double>(); }

}  // namespace automod
