#include "core/model/automodulator.h"

#include <torch/serialize.h>
#include <torch/utils.h>

namespace automod {

Automodulator::Automodulator(const ModelConfig& config, torch::Device device)
    : Automodulator(config, device, WeightInit::Random) {}

Automodulator::Automodulator(const ModelConfig& config, torch::Device device, WeightInit init)
    : config_(config), device_(torch::kCPU), stage_(config.numBlocks() - 1) {
  config_.validate();
  encoder = Encoder(config_, init);
  decoder = Decoder(config_, init);
  ema = Decoder(config_, init);
  if (init == WeightInit::Random) resetEma();
  encoder->eval();
  decoder->eval();
  ema->eval();
  to(device);
}

void Automodulator::to(torch::Device device) {
  encoder->to(device);
  decoder->to(device);
  ema->to(device);
  device_ = device;
}

void Automodulator::setStage(int stage, double alpha) {
  TORCH_CHECK(stage >= 0 && stage < config_.numBlocks(), "stage ", stage, " is outside 0..", config_.numBlocks() - 1);
  TORCH_CHECK(alpha >= 0.0 && alpha <= 1.0 && (alpha == 1.0 || stage > 0), "fade-in alpha ", alpha,
              " is outside [0, 1] (or below 1 at stage 0)");
  stage_ = stage;
  alpha_ = alpha;
}

torch::Tensor Automodulator::encode(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  encoder->eval();
  return encoder->forward(images.to(device_), stage_, alpha_);
}

torch::Tensor Automodulator::decode(const LatentPlan& plan) {
  torch::NoGradGuard no_grad;
  ema->eval();
  return ema->forward(plan.to(device_), stage_, alpha_);
}

torch::Tensor Automodulator::decode(const torch::Tensor& z) { return decode(LatentPlan::uniform(z, numBlocks())); }

torch::Tensor Automodulator::randomLatents(int64_t n, uint64_t seed) const {
  auto gen = at::detail::createCPUGenerator(seed);
  auto z = at::randn({n, config_.latent_dim}, gen, torch::TensorOptions().dtype(torch::kFloat32));
  return normaliseLatent(z).to(device_);
}

void Automodulator::resetEma() {
  torch::NoGradGuard no_grad;
  auto src = decoder->named_parameters(true);
  auto dst = ema->named_parameters(true);
  for (auto& item : src) dst[item.key()].copy_(item.value());
  auto sb = decoder->named_buffers(true);
  auto db = ema->named_buffers(true);
  for (auto& item : sb) db[item.key()].copy_(item.value());
}

std::vector<std::pair<std::string, torch::Tensor>> namedState(Automodulator& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  auto add = [&](const std::string& prefix, torch::nn::Module& m) {
    for (auto& p : m.named_parameters(true)) out.emplace_back(prefix + p.key(), p.value());
    for (auto& b : m.named_buffers(true)) out.emplace_back(prefix + b.key(), b.value());
  };
  add("encoder.", *model.encoder);
  add("decoder.", *model.decoder);
  add("ema.", *model.ema);
  return out;
}

}  // namespace automod
