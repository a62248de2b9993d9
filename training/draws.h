#pragma once
// Where training's random draws come from (docs/design.md §3): the codes on the unit sphere and the
// style-mixing split block j. Normally the global LibTorch generator; inside a DrawScope a
// DrawSource supplies them instead, so that a test can replay an iteration recorded from another
// implementation (the authors' code) draw for draw. Image-pool swaps, flips and layer noise keep
// using the generator.
#include <torch/types.h>

#include <deque>
#include <string>

namespace automod {

class DrawSource {
 public:
  virtual ~DrawSource() = default;
  /// `n` codes of size `dim` on the unit sphere.
  virtual torch::Tensor sphere(int64_t n, int64_t dim, const torch::Device& device) = 0;
  /// A style-mixing split block, uniform in [1, last].
  virtual int splitBlock(int last) = 0;
};

/// Draws given in advance: codes and split blocks, each kind consumed in order. Asking for more than
/// was recorded, or for codes of another shape, throws automod::Error naming the draw.
class RecordedDraws : public DrawSource {
 public:
  void addSphere(const torch::Tensor& z) { spheres_.push_back(z); }
  void addSplit(int j) { splits_.push_back(j); }
  torch::Tensor sphere(int64_t n, int64_t dim, const torch::Device& device) override;
  int splitBlock(int last) override;
  /// Draws recorded but not used yet.
  size_t remaining() const { return spheres_.size() + splits_.size(); }

 private:
  std::deque<torch::Tensor> spheres_;
  std::deque<int> splits_;
  int sphere_count_ = 0, split_count_ = 0;
};

/// Makes `source` the draw source of this thread while alive (scopes nest).
class DrawScope {
 public:
  explicit DrawScope(DrawSource& source);
  ~DrawScope();
  DrawScope(const DrawScope&) = delete;
  DrawScope& operator=(const DrawScope&) = delete;
  /// The innermost scope's source, or null.
  static DrawSource* current();

 private:
  DrawSource* previous_;
};

}  // namespace automod
