#pragma once
// Reconstruction quality: PSNR and SSIM (docs/design.md §6).
// Images are [N, C, H, W] (or [C, H, W]), either uint8 (peak 255) or float in [−1, 1] (peak 2);
// both arguments must use the same kind.
#include <torch/types.h>

namespace automod {

/// PSNR per image in dB, [N] float64; +inf where the images are identical.
torch::Tensor psnrPerImage(const torch::Tensor& a, const torch::Tensor& b);
/// Mean PSNR over the images (dB); +inf when all are identical.
double psnr(const torch::Tensor& a, const torch::Tensor& b);

/// SSIM (Wang et al. 2004): Gaussian window 11×11, σ 1.5, K1 0.01, K2 0.03, valid positions only,
/// averaged over channels and positions. Images smaller than 11 px use the largest odd window that
/// fits. [N] float64.
torch::Tensor ssimPerImage(const torch::Tensor& a, const torch::Tensor& b);
double ssim(const torch::Tensor& a, const torch::Tensor& b);

/// Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) of float images [N, C, H, W] with peak-to-peak
/// range `peak` (2 for [−1, 1]), differentiable: computed in the images' own dtype and device and
/// kept in the autograd graph (refinement's loss, core/edit/refine.h). The levels are the image and
/// its 2×2 average-pooled halvings down to 16 px (at most 5; one level, plain SSIM, below 32 px), with
/// the first of Wang's weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) renormalised to sum to 1;
/// each level is SSIM's definition above (a smaller window below 11 px); contrast-structure terms are
/// clamped at 10⁻⁶ before the fractional power. [N].
torch::Tensor msSsimPerImage(const torch::Tensor& a, const torch::Tensor& b, double peak = 2.0);

}  // namespace automod
