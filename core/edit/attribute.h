#pragma once
// Attribute vectors (docs/design.md §1.4, §4, paper Sec. 4 / Fig. 5b): v = mean φ(positives) − mean φ(negatives),
// restricted to chosen scale ranges and applied as z' = normalise(z + s·v) on those blocks only.
// Saved as a small JSON file listing its exemplars, ranges, model resolution and the vector.
#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/model/ranges.h"
#include "core/edit/sources.h"
#include "core/model/latent_plan.h"

namespace automod {

struct AttributeVector {
  std::string name;
  std::vector<std::string> positives, negatives;
  std::vector<BlockRange> ranges;
  /// Resolution and latent size of the model it was built with.
  int resolution = 0;
  int latent_dim = 0;
  /// Decoder blocks of that model: one more than the resolution implies for a flip-invariance model
  /// (its extra 8×8 block). 0 = what the resolution implies (files written before this field).
  int blocks = 0;
  int numBlocks() const;
  /// The direction, float [latent_dim] on the CPU.
  torch::Tensor vector;

  /// The file's JSON (what save writes) and back; `where` names the source in errors.
  nlohmann::json toJson() const;
  static AttributeVector fromJson(const nlohmann::json& j, const std::string& where);
  void save(const std::filesystem::path& path) const;
  /// Throws automod::Error naming the file and field for missing files, bad JSON or wrong types.
  static AttributeVector load(const std::filesystem::path& path);
};

/// v = mean(positives) − mean(negatives) of already encoded exemplars ([1, D] or [D] each), for
/// `model`; throws automod::Error for fewer than 2 + 2, no ranges, ranges the model lacks, or codes
/// of another size.
AttributeVector attributeFromLatents(Automodulator& model, const std::vector<torch::Tensor>& positives,
                                     const std::vector<torch::Tensor>& negatives, const std::vector<BlockRange>& ranges,
                                     const std::string& name = {});

/// Builds an attribute from at least two positive and two negative exemplars.
AttributeVector buildAttribute(SourceCache& sources, Automodulator& model, const std::vector<SourceSpec>& positives,
                               const std::vector<SourceSpec>& negatives, const std::vector<BlockRange>& ranges,
                               const std::string& name = {});

/// z' = normalise(z + strength·v) on the attribute's blocks; other blocks keep their very tensors, and
/// strength 0 returns the plan unchanged.
/// Throws automod::Error when the attribute was built for a model with another number of blocks
/// (another resolution) or latent size.
LatentPlan applyAttribute(const LatentPlan& plan, const AttributeVector& attribute, double strength);

}  // namespace automod
