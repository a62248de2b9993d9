#include "core/util/finite.h"

#include <cstring>

namespace automod {

bool allFinite(const torch::Tensor& t) {
  if (!t.defined() || !t.is_floating_point()) return true;
  if (t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous()) {
    // An IEEE single is not finite exactly when its exponent bits are all ones. Blocks of 4096
    // elements are OR-reduced without a branch (which the compiler vectorises); a bad block stops it.
    const auto* p = static_cast<const uint8_t*>(t.data_ptr());
    const int64_t n = t.numel();
    constexpr int64_t kBlock = 4096;
    for (int64_t start = 0; start < n; start += kBlock) {
      const int64_t end = std::min(n, start + kBlock);
      uint32_t bad = 0;
      for (int64_t i = start; i < end; ++i) {
        uint32_t bits;
        std::memcpy(&bits, p + 4 * i, 4);
        bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
      }
      if (bad) return false;
    }
    return true;
  }
  return torch::isfinite(t).all().item<bool>();
}

int64_t countNonFinite(const torch::Tensor& t) {
  if (!t.defined() || !t.is_floating_point()) return 0;
  return (~torch::isfinite(t)).sum().item<int64_t>();
}

}  // namespace automod
