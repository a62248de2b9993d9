#include "core/metrics/swd.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional.h>
#include <torch/torch.h>

namespace automod {
namespace F = torch::nn::functional;
using torch::indexing::Slice;

namespace {

torch::Tensor gaussKernel(int64_t c) {
  auto g = torch::tensor({1.0, 4.0, 6.0, 4.0, 1.0}, torch::kFloat32) / 16.0;
  return torch::outer(g, g).expand({c, 1, 5, 5}).contiguous();
}

torch::Tensor blur(const torch::Tensor& x, const torch::Tensor& k) {
  auto padded = F::pad(x, F::PadFuncOptions({2, 2, 2, 2}).mode(torch::kReflect));
  return F::conv2d(padded, k, F::Conv2dFuncOptions().groups(x.size(1)));
}

torch::Tensor pyrDown(const torch::Tensor& x, const torch::Tensor& k) {
  return blur(x, k).index({Slice(), Slice(), Slice(torch::indexing::None, torch::indexing::None, 2),
                           Slice(torch::indexing::None, torch::indexing::None, 2)});
}

torch::Tensor pyrUp(const torch::Tensor& x, const torch::Tensor& k) {
  auto up = torch::zeros({x.size(0), x.size(1), x.size(2) * 2, x.size(3) * 2}, x.options());
  up.index_put_({Slice(), Slice(), Slice(torch::indexing::None, torch::indexing::None, 2),
                 Slice(torch::indexing::None, torch::indexing::None, 2)},
                x);
  return blur(up, k) * 4.0;
}

torch::Tensor toFloat(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4, "SWD expects images [N, C, H, W]");
  auto x = images.detach().to(torch::kCPU);
  // uint8 and [−1, 1] floats end up on the same 0..255 scale (descriptors are normalised anyway).
  return x.scalar_type() == torch::kUInt8 ? x.to(torch::kFloat32) : (x.to(torch::kFloat32) + 1.0) * 127.5;
}

// [N·P, C·patch²] descriptors from random patch positions, normalised per channel over the set.
torch::Tensor descriptors(const torch::Tensor& level, int patch, int per_image, at::Generator& gen) {
  const int64_t n = level.size(0), c = level.size(1), h = level.size(2), w = level.size(3);
  TORCH_CHECK(h >= patch && w >= patch, "SWD: pyramid level of ", h, "×", w, " is smaller than a ", patch, " px patch");
  auto windows = level.unfold(2, patch, 1).unfold(3, patch, 1);  // [N, C, H', W', p, p], a view
  const int64_t k = n * per_image;
  auto idx_n = torch::arange(n, torch::kInt64).repeat_interleave(per_image);
  auto idx_y = torch::randint(0, h - patch + 1, {k}, gen, torch::kInt64);
  auto idx_x = torch::randint(0, w - patch + 1, {k}, gen, torch::kInt64);
  auto d = windows.index({idx_n, Slice(), idx_y, idx_x});  // [K, C, p, p]
  auto mean = d.mean({0, 2, 3}, true);
  auto std = d.std({0, 2, 3}, false, true).clamp_min(1e-8);
  return ((d - mean) / std).reshape({k, -1});
}

}  // namespace

std::vector<torch::Tensor> laplacianPyramid(const torch::Tensor& images, int min_resolution) {
  auto x = images.to(torch::kFloat32);
  std::vector<torch::Tensor> levels{x};
  auto k = gaussKernel(x.size(1));
  while (levels.back().size(2) / 2 >= min_resolution && levels.back().size(3) / 2 >= min_resolution &&
         levels.back().size(2) % 2 == 0 && levels.back().size(3) % 2 == 0) {
    auto down = pyrDown(levels.back(), k);
    levels.back() = levels.back() - pyrUp(down, k);
    levels.push_back(down);
  }
  return levels;
}

double slicedWasserstein(const torch::Tensor& a, const torch::Tensor& b, int directions, int repeats, uint64_t seed) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.sizes() == b.sizes(), "sliced Wasserstein needs two [K, D] sets of one shape");
  auto gen = at::detail::createCPUGenerator(seed);
  double total = 0.0;
  for (int r = 0; r < repeats; ++r) {
    auto dirs = torch::randn({a.size(1), directions}, gen, torch::kFloat32);
    dirs = dirs / dirs.norm(2, 0, true);
    auto pa = std::get<0>(a.matmul(dirs).sort(0));
    auto pb = std::get<0>(b.matmul(dirs).sort(0));
    total += (pa - pb).abs().mean().item<double>();
  }
  return total / repeats;
}

SwdResult slicedWassersteinDistance(const torch::Tensor& a, const torch::Tensor& b, const SwdOptions& o) {
  TORCH_CHECK(a.dim() == 4 && b.dim() == 4 && a.sizes().slice(1) == b.sizes().slice(1),
              "SWD needs two image sets [N, C, H, W] with the same C, H, W");
  TORCH_CHECK(a.size(0) > 0 && b.size(0) > 0, "SWD needs at least one image in each set");
  torch::NoGradGuard no_grad;
  auto pa = laplacianPyramid(toFloat(a), o.min_resolution);
  auto pb = laplacianPyramid(toFloat(b), o.min_resolution);
  SwdResult result;
  auto gen = at::detail::createCPUGenerator(o.seed);
  for (size_t l = 0; l < pa.size(); ++l) {
    auto da = descriptors(pa[l], o.patch, o.patches_per_image, gen);
    auto db = descriptors(pb[l], o.patch, o.patches_per_image, gen);
    const int64_t k = std::min(da.size(0), db.size(0));
    if (da.size(0) > k) da = da.index_select(0, torch::randperm(da.size(0), gen, torch::kInt64).narrow(0, 0, k));
    if (db.size(0) > k) db = db.index_select(0, torch::randperm(db.size(0), gen, torch::kInt64).narrow(0, 0, k));
    const double d = slicedWasserstein(da, db, o.directions, o.repeats, o.seed + 1000003ull * (l + 1));
    result.resolutions.push_back(static_cast<int>(pa[l].size(2)));
    result.per_level.push_back(d * 1e3);
  }
  for (double v : result.per_level) result.average += v;
  result.average /= static_cast<double>(result.per_level.size());
  return result;
}

}  // namespace automod
