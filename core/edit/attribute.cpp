#include "core/edit/attribute.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include "core/model/layers.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;

int AttributeVector::numBlocks() const {
  return blocks > 0 ? blocks : ModelConfig::blockForResolution(resolution) + 1;
}

nlohmann::json AttributeVector::toJson() const {
  auto v = vector.to(torch::kCPU, torch::kFloat32).contiguous();
  nlohmann::json j;
  j["kind"] = "automod-attribute";
  j["version"] = 1;
  j["name"] = name;
  j["resolution"] = resolution;
  j["latent_dim"] = latent_dim;
  j["blocks"] = numBlocks();
  j["scales"] = rangesToString(ranges);
  j["positives"] = positives;
  j["negatives"] = negatives;
  j["vector"] = std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
  return j;
}

void AttributeVector::save(const fs::path& path) const {
  std::ofstream f(path);
  f << toJson().dump(1) << "\n";
  if (!f) throw Error("cannot write attribute file " + path.string());
}

AttributeVector AttributeVector::load(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw Error("cannot read attribute file " + path.string() + ": no such file or no permission");
  nlohmann::json j = parseJsonLimited(f, "attribute file " + path.string());
  return fromJson(j, "attribute file " + path.string());
}

AttributeVector AttributeVector::fromJson(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  auto need = [&](const char* key, bool ok) {
    if (!j.contains(key)) throw Error(where + ": missing field '" + key + "'");
    if (!ok) throw Error(where + ": field '" + std::string(key) + "' has the wrong type");
  };
  need("resolution", j.contains("resolution") && j["resolution"].is_number_integer());
  need("vector", j.contains("vector") && j["vector"].is_array() && !j["vector"].empty());
  need("scales", j.contains("scales") && j["scales"].is_string());
  AttributeVector a;
  a.name = j.value("name", std::string());
  a.resolution = jsonInt(j["resolution"], where, "resolution", 4, 1 << 16);
  std::vector<float> v;
  for (auto& x : j["vector"]) v.push_back(jsonFloat(x, where, "vector"));
  a.vector = torch::tensor(v, torch::kFloat32);
  a.latent_dim = j.contains("latent_dim") ? jsonInt(j["latent_dim"], where, "latent_dim", 1, 1 << 20)
                                          : static_cast<int>(v.size());
  if (a.latent_dim != static_cast<int>(v.size())) throw Error(where + ": 'vector' does not have latent_dim entries");
  int implied = 0;
  try {
    implied = ModelConfig::blockForResolution(a.resolution) + 1;
  } catch (const std::exception&) {
    throw Error(where + ": field 'resolution' is not a power of two of at least 4");
  }
  a.blocks = implied;
  if (j.contains("blocks")) {
    // A flip-invariance model has one block more than its resolution implies.
    if (!j["blocks"].is_number_integer() || (j["blocks"] != implied && j["blocks"] != implied + 1))
      throw Error(where + ": field 'blocks' must be " + std::to_string(implied) + " or " +
                  std::to_string(implied + 1) + " for a " + std::to_string(a.resolution) + " px model");
    a.blocks = j["blocks"].get<int>();
  }
  try {
    a.ranges = parseBlockRanges(j["scales"].get<std::string>(),
                                BlockLayout::forResolution(a.resolution, a.blocks == implied + 1));
  } catch (const Error& e) {
    throw Error(where + ": field 'scales': " + e.what());
  }
  for (const char* key : {"positives", "negatives"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_array()) throw Error(where + ": field '" + std::string(key) + "' must be a list of file names");
    for (auto& s : j[key]) {
      if (!s.is_string()) throw Error(where + ": field '" + std::string(key) + "' must be a list of file names");
      (std::string(key) == "positives" ? a.positives : a.negatives).push_back(s.get<std::string>());
    }
  }
  return a;
}

AttributeVector attributeFromLatents(Automodulator& model, const std::vector<torch::Tensor>& positives,
                                     const std::vector<torch::Tensor>& negatives, const std::vector<BlockRange>& ranges,
                                     const std::string& name) {
  if (positives.size() < 2 || negatives.size() < 2)
    throw Error("an attribute needs at least 2 positive and 2 negative exemplars (got " +
                std::to_string(positives.size()) + " + " + std::to_string(negatives.size()) + ")");
  if (ranges.empty()) throw Error("an attribute needs at least one scale range");
  for (auto& r : ranges)
    if (r.first < 0 || r.last >= model.numBlocks() || r.first > r.last)
      throw Error("scale range " + r.toString() + " is outside the model's blocks 0-" +
                  std::to_string(model.numBlocks() - 1));
  const int64_t dim = model.config().latent_dim;
  auto mean = [&](const std::vector<torch::Tensor>& zs) {
    std::vector<torch::Tensor> rows;
    for (auto& z : zs) {
      if (z.numel() != dim) throw Error("an exemplar was encoded by another model (its code is not " + std::to_string(dim) + "-d)");
      rows.push_back(z.reshape({1, dim}).to(torch::kCPU, torch::kFloat32));
    }
    return torch::cat(rows).mean(0);
  };
  AttributeVector a;
  a.name = name;
  a.ranges = ranges;
  a.resolution = model.resolution();
  a.blocks = model.numBlocks();
  a.latent_dim = static_cast<int>(dim);
  a.vector = mean(positives) - mean(negatives);
  return a;
}

AttributeVector buildAttribute(SourceCache& sources, Automodulator& model, const std::vector<SourceSpec>& positives,
                               const std::vector<SourceSpec>& negatives, const std::vector<BlockRange>& ranges,
                               const std::string& name) {
  if (positives.size() < 2 || negatives.size() < 2)  // before encoding anything
    throw Error("an attribute needs at least 2 positive and 2 negative exemplars (got " +
                std::to_string(positives.size()) + " + " + std::to_string(negatives.size()) + ")");
  auto encode = [&](const std::vector<SourceSpec>& specs, std::vector<std::string>& names) {
    std::vector<torch::Tensor> zs;
    for (auto& s : specs) {
      zs.push_back(sources.latent(s));
      names.push_back(s.describe());
    }
    return zs;
  };
  std::vector<std::string> pos_names, neg_names;
  auto pos = encode(positives, pos_names);
  auto neg = encode(negatives, neg_names);
  auto a = attributeFromLatents(model, pos, neg, ranges, name);
  a.positives = pos_names;
  a.negatives = neg_names;
  return a;
}

LatentPlan applyAttribute(const LatentPlan& plan, const AttributeVector& a, double strength) {
  const int blocks = plan.size();
  if (blocks != a.numBlocks())
    throw Error("the attribute was built for a " + std::to_string(a.resolution) + " px model with " +
                std::to_string(a.numBlocks()) + " blocks but this one has " + std::to_string(blocks));
  if (plan.size() && plan[0].size(1) != a.vector.numel())
    throw Error("the attribute has " + std::to_string(a.vector.numel()) + "-d vectors but the model uses " +
                std::to_string(plan[0].size(1)) + "-d latents");
  // Strength 0 is the unedited image exactly (renormalising would change the last bits).
  if (strength == 0.0) return plan;
  LatentPlan out = plan;
  torch::NoGradGuard ng;
  for (int b = 0; b < blocks; ++b) {
    if (!rangesContain(a.ranges, b)) continue;
    const auto& z = plan[b];
    out[b] = normaliseLatent(z + strength * a.vector.to(z.device(), z.scalar_type()).unsqueeze(0));
  }
  return out;
}

}  // namespace automod
