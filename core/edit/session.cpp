#include "core/edit/session.h"

#include <torch/nn/functional/upsampling.h>

#include "core/edit/plan.h"
#include "core/util/error.h"

namespace automod {
namespace {

/// The image of the last canvas; while the model's top block fades in (alpha < 1, a checkpoint saved
/// mid-fade-in), blended with the image of the block below it, as DecoderImpl::forward does.
torch::Tensor finalImage(Automodulator& model, const std::vector<torch::Tensor>& canvases) {
  const int nb = model.numBlocks();
  auto top = model.ema->toRGB(nb - 1, canvases[nb - 1]);
  if (model.alpha() >= 1.0) return top;
  const int prev_nb = model.config().blocksAtStage(model.stage() - 1);
  auto below = upsample2(model.ema->toRGB(prev_nb - 1, canvases[prev_nb - 1]));
  return (1.0 - model.alpha()) * below + model.alpha() * top;
}

}  // namespace

EditSession::EditSession(Automodulator& model, PhotoOptions photo_options)
    : model_(model), sources_(model, photo_options) {}

void EditSession::setPlan(LatentPlan plan) {
  checkPlanFits(plan, numBlocks());
  plan_ = plan.to(model_.device());
}

void EditSession::invalidate() {
  valid_ = 0;
  canvases_.clear();
  image_ = torch::Tensor();
}

bool EditSession::runUpTo(int upto, const std::function<bool(int)>& after_block) {
  if (plan_.size() == 0) throw Error("nothing to decode: no plan has been set");
  const int nb = numBlocks();
  if (static_cast<int>(canvases_.size()) != nb || computed_plan_.size() != plan_.size() ||
      computed_plan_.batch() != plan_.batch())
    invalidate();
  canvases_.resize(nb);
  // Canvases of blocks before the first changed latent are still those of the current plan.
  int start = std::min(valid_, computed_plan_.size() ? plan_.firstDifferentBlock(computed_plan_) : 0);
  if (start < valid_) image_ = torch::Tensor();
  valid_ = start;
  computed_plan_ = plan_;
  last_restart_ = start;
  if (start >= upto) return true;
  torch::NoGradGuard no_grad;
  model_.ema->eval();
  if (!after_block) {
    model_.ema->runBlocks(start == 0 ? torch::Tensor() : canvases_[start - 1], plan_, start, upto, &canvases_);
    valid_ = upto;
    return true;
  }
  for (int b = start; b < upto; ++b) {
    model_.ema->runBlocks(b == 0 ? torch::Tensor() : canvases_[b - 1], plan_, b, b + 1, &canvases_);
    valid_ = b + 1;
    if (!after_block(b)) return false;
  }
  return true;
}

torch::Tensor EditSession::decode() { return decode(std::function<bool(int)>{}); }

torch::Tensor EditSession::decode(const std::function<bool(int block)>& after_block) {
  const int nb = numBlocks();
  if (!runUpTo(nb, after_block) || valid_ < nb) return {};
  if (!image_.defined()) {
    torch::NoGradGuard no_grad;
    image_ = finalImage(model_, canvases_);
  }
  return image_;
}

torch::Tensor EditSession::decode(const LatentPlan& plan) {
  setPlan(plan);
  return decode();
}

torch::Tensor EditSession::decodeFull(const LatentPlan& plan) {
  checkPlanFits(plan, numBlocks());
  torch::NoGradGuard no_grad;
  model_.ema->eval();
  const int nb = numBlocks();
  std::vector<torch::Tensor> canvases(nb);
  model_.ema->runBlocks({}, plan.to(model_.device()), 0, nb, &canvases);
  return finalImage(model_, canvases);
}

torch::Tensor EditSession::preview(int block) {
  const int nb = numBlocks();
  if (block < 0 || block >= nb)
    throw Error("preview block " + std::to_string(block) + " is outside 0-" + std::to_string(nb - 1));
  runUpTo(block + 1);
  return blockImage(block);
}

torch::Tensor EditSession::blockImage(int block, bool upsampled) {
  TORCH_CHECK(block >= 0 && block < valid_, "block ", block, "'s canvas has not been computed");
  torch::NoGradGuard no_grad;
  auto rgb = model_.ema->toRGB(block, canvases_[block]);
  const int64_t r = model_.resolution();
  if (!upsampled || rgb.size(2) == r) return rgb;
  namespace F = torch::nn::functional;
  return F::interpolate(rgb, F::InterpolateFuncOptions().size(std::vector<int64_t>{r, r}).mode(torch::kNearest));
}

}  // namespace automod
