#pragma once
// EditSession: what the GUI and the CLI drive (docs/design.md §1, §4). It holds the model, the sources cache,
// the current plan and the decoder canvases ξ⁽ᵏ⁾ of the last decode, so that a change touching only
// blocks ≥ k recomputes from block k (incremental decoding), and it offers a coarse-to-fine preview:
// the image of an earlier block (toRGB, upsampled to full size) before the full decode has run.
// Decoding uses the EMA decoder in eval mode without autograd. Not thread-safe: one session per
// worker thread.
#include <torch/types.h>

#include <functional>
#include <vector>

#include "core/edit/sources.h"
#include "core/model/automodulator.h"

namespace automod {

class EditSession {
 public:
  explicit EditSession(Automodulator& model, PhotoOptions photo_options = {});

  Automodulator& model() { return model_; }
  SourceCache& sources() { return sources_; }
  int numBlocks() const { return model_.numBlocks(); }

  /// Makes `plan` current; throws automod::Error when it does not fit the model. Nothing is decoded
  /// until decode() or preview() asks.
  void setPlan(LatentPlan plan);
  const LatentPlan& plan() const { return plan_; }

  /// The current plan's images [N, C, R, R] in [−1, 1], recomputing only from the first block whose
  /// latent changed since the canvases were computed. Bit-identical to a full decode.
  torch::Tensor decode();
  /// decode(), calling `after_block(b)` each time block b's canvas has been computed; when it returns
  /// false the decode stops there and returns an undefined tensor (the canvases computed so far stay
  /// valid for the current plan, so the next decode continues from them). This is how an editor
  /// shows each stage as it sharpens and drops a decode that a newer request has replaced.
  torch::Tensor decode(const std::function<bool(int block)>& after_block);
  /// Same as decode() after setPlan(plan).
  torch::Tensor decode(const LatentPlan& plan);
  /// A full decode from ξ⁽⁰⁾ that neither uses nor changes the cached canvases.
  torch::Tensor decodeFull(const LatentPlan& plan);
  /// The image of block `block` (toRGB of ξ⁽block+1⁾), nearest-upsampled to the model's resolution.
  /// Its canvases are kept, so the full decode that follows continues from there.
  torch::Tensor preview(int block);
  /// The same image from the canvas already computed (block < validCanvases()), at the block's own
  /// resolution (upsampled = false) or the model's.
  torch::Tensor blockImage(int block, bool upsampled = true);

  /// The block the last decode() or preview() restarted from (numBlocks() when nothing was run).
  int lastRestartBlock() const { return last_restart_; }
  /// canvases()[k] = ξ⁽k+1⁾ of the current plan for k < validCanvases().
  const std::vector<torch::Tensor>& canvases() const { return canvases_; }
  int validCanvases() const { return valid_; }
  /// Forgets the cached canvases (after the model's weights change).
  void invalidate();

 private:
  /// Brings canvases up to date for blocks [0, upto), one block at a time when `after_block` is
  /// given (false from it stops early). Returns whether all of [0, upto) are valid.
  bool runUpTo(int upto, const std::function<bool(int)>& after_block = {});

  Automodulator& model_;
  SourceCache sources_;
  LatentPlan plan_;
  LatentPlan computed_plan_;  // the plan the valid canvases belong to
  std::vector<torch::Tensor> canvases_;
  int valid_ = 0;
  int last_restart_ = 0;
  torch::Tensor image_;  // toRGB of the last block, when valid_ == numBlocks()
};

}  // namespace automod
