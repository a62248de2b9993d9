#include "training/draws.h"

#include <sstream>

#include "core/util/error.h"

namespace automod {
namespace {
thread_local DrawSource* t_source = nullptr;
}

torch::Tensor RecordedDraws::sphere(int64_t n, int64_t dim, const torch::Device& device) {
  ++sphere_count_;
  if (spheres_.empty())
    throw Error("recorded draws: code draw " + std::to_string(sphere_count_) + " was not recorded");
  auto z = spheres_.front();
  spheres_.pop_front();
  if (z.dim() != 2 || z.size(0) != n || z.size(1) != dim) {
    std::ostringstream msg;
    msg << "recorded draws: code draw " << sphere_count_ << " has shape " << z.sizes() << ", the step asks for [" << n
        << ", " << dim << "]";
    throw Error(msg.str());
  }
  return z.to(device);
}

int RecordedDraws::splitBlock(int last) {
  ++split_count_;
  if (splits_.empty())
    throw Error("recorded draws: split draw " + std::to_string(split_count_) + " was not recorded");
  const int j = splits_.front();
  splits_.pop_front();
  if (j < 1 || j > last)
    throw Error("recorded draws: split block " + std::to_string(j) + " is outside 1.." + std::to_string(last));
  return j;
}

DrawScope::DrawScope(DrawSource& source) : previous_(t_source) { t_source = &source; }
DrawScope::~DrawScope() { t_source = previous_; }
DrawSource* DrawScope::current() { return t_source; }

}  // namespace automod
