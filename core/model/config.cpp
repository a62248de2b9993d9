#include "core/model/config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace {

// Widths for resolutions 4, 8, ..., 1024 (docs/design.md §2). The CPU tables keep the paper's shape at a
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
  if (table == "reference" || table == "reference-small")
    return reference(resolution, latent_dim, table == "reference-small", image_channels);
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

ModelConfig ModelConfig::reference(int resolution, int latent_dim, bool small, int image_channels) {
  ModelConfig c;
  c.resolution = resolution;
  c.image_channels = image_channels;
  c.latent_dim = latent_dim;
  blockForResolution(resolution);
  const int h = small ? 1 : 2;
  for (int b = 0; b < c.numBlocks(); ++b) {
    // Levels 0-3 (4-32 px) are nz wide; from 64 px on each level halves: nz/2·H, nz/4·H, ...
    c.widths.push_back(b < 4 ? latent_dim : std::max(1, latent_dim * h >> (b - 3)));
    c.encoder_widths.push_back(b < 4 ? latent_dim : std::max(1, latent_dim >> (b - 3)));
  }
  c.width_table = small ? "reference-small" : "reference";
  c.plain_modulation = true;
  c.adain_eps = 0.0;
  c.encoder_widen_first = true;
  c.plain_from_rgb = true;
  c.learned_gain = true;
  c.adain_unbiased = true;
  c.noise_per_element = true;
  c.sn_power_iteration_in_graph = true;
  return c;
}

std::vector<std::string> ModelConfig::tableNames() {
  std::vector<std::string> names;
  for (auto& [k, v] : widthTables()) names.push_back(k);
  names.push_back("reference");
  names.push_back("reference-small");
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
  if (!encoder_widths.empty() && static_cast<int>(encoder_widths.size()) != numBlocks())
    throw Error("config: encoder_widths needs " + std::to_string(numBlocks()) + " entries for " +
                std::to_string(resolution) + " px, got " + std::to_string(encoder_widths.size()));
  for (int w : encoder_widths)
    if (w < 1 || w > 4096) throw Error("config: an encoder width is out of range: " + std::to_string(w));
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
  if (!encoder_widths.empty()) j["encoder_widths"] = encoder_widths;
  if (encoder_widen_first) j["encoder_widen_first"] = true;
  if (plain_from_rgb) j["plain_from_rgb"] = true;
  if (learned_gain) j["learned_gain"] = true;
  if (adain_unbiased) j["adain_unbiased"] = true;
  if (noise_per_element) j["noise_per_element"] = true;
  if (sn_power_iteration_in_graph) j["sn_power_iteration_in_graph"] = true;
  return j;
}

ModelConfig ModelConfig::fromJson(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("config: expected a JSON object");
  ModelConfig c;
  try {
    // Checked before conversion: get<int>() of 1e300 is undefined behaviour (found by fuzz_json).
    c.resolution = jsonInt(j.at("resolution"), "config", "resolution", 1, 1 << 16);
    c.image_channels = j.contains("image_channels") ? jsonInt(j["image_channels"], "config", "image_channels", 1, 4) : 3;
    c.latent_dim = j.contains("latent_dim") ? jsonInt(j["latent_dim"], "config", "latent_dim", 1, 1 << 20) : 512;
    const auto& widths = j.at("widths");
    if (!widths.is_array() || widths.size() > 64) throw Error("config: field 'widths' must be a list of at most 64 channel counts");
    c.widths.clear();
    for (const auto& w : widths) c.widths.push_back(jsonInt(w, "config", "widths", 1, 1 << 16));
    c.learned_input = j.value("learned_input", false);
    c.adain_eps = j.value("adain_eps", 1e-8);
    c.width_table = j.value("width_table", std::string("custom"));
    c.extra_8x8_block = j.value("extra_8x8_block", false);
    c.plain_modulation = j.value("plain_modulation", false);
    c.encoder_widths = j.value("encoder_widths", std::vector<int>{});
    c.encoder_widen_first = j.value("encoder_widen_first", false);
    c.plain_from_rgb = j.value("plain_from_rgb", false);
    c.learned_gain = j.value("learned_gain", false);
    c.adain_unbiased = j.value("adain_unbiased", false);
    c.noise_per_element = j.value("noise_per_element", false);
    c.sn_power_iteration_in_graph = j.value("sn_power_iteration_in_graph", false);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("config: ") + e.what());
  }
  c.validate();
  return c;
}

}  // namespace automod
