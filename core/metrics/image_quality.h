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

}  // namespace automod
