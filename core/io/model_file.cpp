#include "core/io/model_file.h"

#include <chrono>
#include <set>

#include "core/util/error.h"

namespace automod {

TensorArchive modelArchive(Automodulator& model) {
  TensorArchive a;
  a.header["kind"] = "model";
  a.header["format"] = "automodulator";
  a.header["config"] = model.config().toJson();
  a.header["stage"] = model.stage();
  a.header["resolution"] = model.resolution();
  nlohmann::json meta = model.metadata;
  meta["tool_version"] = AUTOMOD_VERSION;
  if (!meta.contains("created"))
    meta["created"] = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  a.header["metadata"] = meta;
  for (auto& [name, t] : namedState(model)) a.add(name, t);
  return a;
}

void saveModel(const std::filesystem::path& path, Automodulator& model) { writeArchive(path, modelArchive(model)); }

std::unique_ptr<Automodulator> modelFromArchive(const TensorArchive& archive, const std::string& source,
                                                torch::Device device) {
  const auto& h = archive.header;
  if (h.value("format", std::string()) != "automodulator" || !h.contains("config"))
    throw Error(source + " is an archive but not an automodulator model");
  ModelConfig config;
  try {
    config = ModelConfig::fromJson(h.at("config"));
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  auto model = std::make_unique<Automodulator>(config, torch::kCPU);
  const int stage = h.value("stage", config.numBlocks() - 1);
  if (stage < 0 || stage >= config.numBlocks()) throw Error(source + ": stage " + std::to_string(stage) + " is invalid");
  model->setStage(stage);
  model->metadata = h.value("metadata", nlohmann::json::object());

  // Check everything before copying anything.
  auto state = namedState(*model);
  std::set<std::string> expected;
  for (auto& [name, t] : state) {
    expected.insert(name);
    if (!archive.has(name)) throw Error(source + " does not match its config: tensor '" + name + "' is missing");
    const auto& s = archive.get(name);
    if (!s.sizes().equals(t.sizes()) || s.scalar_type() != t.scalar_type()) {
      std::ostringstream msg;
      msg << source << " does not match its config: tensor '" << name << "' has shape " << s.sizes() << ", expected "
          << t.sizes();
      throw Error(msg.str());
    }
  }
  for (auto& [name, t] : archive.tensors) {
    const bool is_model = name.rfind("encoder.", 0) == 0 || name.rfind("decoder.", 0) == 0 || name.rfind("ema.", 0) == 0;
    if (is_model && !expected.count(name))
      throw Error(source + " does not match its config: unexpected tensor '" + name + "'");
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : state) t.copy_(archive.get(name));
  }
  model->to(device);
  return model;
}

std::unique_ptr<Automodulator> loadModel(const std::filesystem::path& path, torch::Device device) {
  return modelFromArchive(readArchive(path), path.string(), device);
}

nlohmann::json describeModelFile(const std::filesystem::path& path) {
  auto archive = readArchive(path);
  auto model = modelFromArchive(archive, path.string());  // validates shapes too
  nlohmann::json j;
  j["file"] = path.string();
  j["kind"] = archive.header.value("kind", "model");
  j["config"] = archive.header.at("config");
  j["stage"] = model->stage();
  j["resolution"] = model->resolution();
  j["decoder_blocks"] = model->numBlocks();
  j["metadata"] = model->metadata;
  int64_t params = 0;
  for (auto& p : model->encoder->parameters()) params += p.numel();
  j["encoder_parameters"] = params;
  params = 0;
  for (auto& p : model->decoder->parameters()) params += p.numel();
  j["decoder_parameters"] = params;
  if (archive.header.contains("training")) j["training"] = archive.header["training"];
  return j;
}

}  // namespace automod
