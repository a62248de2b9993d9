#pragma once
// An automodulator as the editor and the CLI use it: encoder φ, decoder θ, the EMA decoder that
// inference uses, the config, and the training metadata (resolution reached, images seen, ...).
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "core/model/config.h"
#include "core/model/latent_plan.h"
#include "core/model/networks.h"

namespace automod {

class Automodulator {
 public:
  explicit Automodulator(const ModelConfig& config, torch::Device device = torch::kCPU);
  /// With WeightInit::None the three networks are allocated but not initialised (nor the EMA decoder
  /// copied from the decoder): for loaders, which replace every tensor of namedState() before use.
  Automodulator(const ModelConfig& config, torch::Device device, WeightInit init);

  const ModelConfig& config() const { return config_; }
  torch::Device device() const { return device_; }
  void to(torch::Device device);

  /// The top block trained so far; the model works at resolution 4·2^stage.
  int stage() const { return stage_; }
  /// `alpha` in [0, 1): the top block is still fading in (a checkpoint saved mid-fade-in); encode() and
  /// decode() blend it with the block below at that weight, as the networks do during training.
  void setStage(int stage, double alpha = 1.0);
  /// The fade-in weight of the top block (1 once it has faded in).
  double alpha() const { return alpha_; }
  int resolution() const { return ModelConfig::blockResolution(stage_); }
  /// Decoder blocks in use (the size of a LatentPlan): stage() + 1, plus one for a model with the
  /// extra 8×8 block (ModelConfig::extra_8x8_block) past 4 px.
  int numBlocks() const { return config_.blocksAtStage(stage_); }
  /// Output resolution of decoder block b.
  int blockResolution(int block) const { return config_.decoderBlockResolution(block); }

  /// Images [N, C, R, R] in [−1, 1] at resolution() → unit-norm latents. Eval mode, no grad.
  torch::Tensor encode(const torch::Tensor& images);
  /// A plan (one latent per block) → images at resolution(), by the EMA decoder. Eval, no grad.
  torch::Tensor decode(const LatentPlan& plan);
  torch::Tensor decode(const torch::Tensor& z);
  /// n random codes on the unit sphere, from the given generator seed.
  torch::Tensor randomLatents(int64_t n, uint64_t seed) const;

  /// Copies the decoder's weights into the EMA decoder.
  void resetEma();

  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  Decoder ema{nullptr};
  /// Free-form metadata saved with the model: images_seen, created, tool_version, training preset...
  nlohmann::json metadata = nlohmann::json::object();

 private:
  ModelConfig config_;
  torch::Device device_;
  int stage_;
  double alpha_ = 1.0;
};

/// Named tensors (parameters and buffers) of the three networks: "encoder.*", "decoder.*", "ema.*".
std::vector<std::pair<std::string, torch::Tensor>> namedState(Automodulator& model);

}  // namespace automod
