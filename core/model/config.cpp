#include "core/model/config.h"

#include <nlohmann/json.hpp>

#include <map>

#include "core/util/error.h"

namespace automod {
namespace {

// Widths for resolutions 4, 8, ..., 1024 (SPEC §2). The CPU tables keep the paper's shape at a
// fraction of the cost.
const std::map<std::string, std::vector<int>>& widthTables() {
  static const std::map<std::string, std::vector<int>> tables{
      {"paper", {512, 512, 512, 512, 512, 256, 128, 64, 32}},
      {"paper-small", {512, 512, 512, 512, 256, 128, 64, 32, 16}},
      {"cpu-128", {128, 128, 128, 128, 64, 32, 16, 16, 16}},
      {"cpu-64", {64, 64, 64, 64, 32, 32, 16, 16, 16}},
      {"cpu-32", {32, 32, 32, 32, 32, 16, 16, 16, 16}},
  };
  return tables;
}

}  // namespace

int ModelConfig::numBlocks() const {
  int b = 0;
  while ((4 << b) < resolution) ++b;
  return b + 1;
}

int ModelConfig::blockForResolution(int res) {
  for (int b = 0; b < 12; ++b)
    if ((4 << b) == res) return b;
  throw Error("resolution " + std::to_string(res) + " is not a power of two from 4 up");
}

ModelConfig ModelConfig::fromTable(const std::string& table, int resolution, int image_channels, int latent_dim) {
  auto it = widthTables().find(table);
  if (it == widthTables().end()) {
    std::string names;
    for (auto& n : tableNames()) names += (names.empty() ? "" : ", ") + n;
    throw Error("unknown width table '" + table + "' (known: " + names + ")");
  }
  ModelConfig c;
  c.resolution = resolution;
  c.image_channels = image_channels;
  c.latent_dim = latent_dim;
  c.width_table = table;
  blockForResolution(resolution);
  const int blocks = c.numBlocks();
  if (blocks > static_cast<int>(it->second.size()))
    throw Error("width table '" + table + "' stops at " + std::to_string(4 << (it->second.size() - 1)) + " px");
  c.widths.assign(it->second.begin(), it->second.begin() + blocks);
  return c;
}

std::vector<std::string> ModelConfig::tableNames() {
  std::vector<std::string> names;
  for (auto& [k, v] : widthTables()) names.push_back(k);
  return names;
}

void ModelConfig::validate() const {
  if (resolution < 4 || resolution > 1024 || (resolution & (resolution - 1)) != 0)
    throw Error("config: resolution must be a power of two from 4 to 1024, got " + std::to_string(resolution));
  if (image_channels != 1 && image_channels != 3)
    throw Error("config: image_channels must be 1 or 3, got " + std::to_string(image_channels));
  if (latent_dim < 1 || latent_dim > 8192) throw Error("config: latent_dim out of range: " + std::to_string(latent_dim));
  if (static_cast<int>(widths.size()) != numBlocks())
    throw Error("config: widths needs " + std::to_string(numBlocks()) + " entries for " + std::to_string(resolution) +
                " px, got " + std::to_string(widths.size()));
  for (int w : widths)
    if (w < 1 || w > 4096) throw Error("config: a width is out of range: " + std::to_string(w));
  if (!(adain_eps >= 0)) throw Error("config: adain_eps must be >= 0");
  if (extra_8x8_block && resolution < 8) throw Error("config: extra_8x8_block needs a resolution of at least 8 px");
}

nlohmann::json ModelConfig::toJson() const {
  nlohmann::json j{{"resolution", resolution},     {"image_channels", image_channels}, {"latent_dim", latent_dim},
                   {"widths", widths},             {"learned_input", learned_input},   {"adain_eps", adain_eps},
                   {"width_table", width_table}};
  // Written only when set, so a model without it is saved exactly as before.
  if (extra_8x8_block) j["extra_8x8_block"] = true;
  if (plain_modulation) j["plain_modulation"] = true;
  return j;
}

ModelConfig ModelConfig::fromJson(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("config: expected a JSON object");
  ModelConfig c;
  try {
    c.resolution = j.at("resolution").get<int>();
    c.image_channels = j.value("image_channels", 3);
    c.latent_dim = j.value("latent_dim", 512);
    c.widths = j.at("widths").get<std::vector<int>>();
    c.learned_input = j.value("learned_input", false);
    c.adain_eps = j.value("adain_eps", 1e-8);
    c.width_table = j.value("width_table", std::string("custom"));
    c.extra_8x8_block = j.value("extra_8x8_block", false);
    c.plain_modulation = j.value("plain_modulation", false);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("config: ") + e.what());
  }
  c.validate();
  return c;
}

}  // namespace automod
