#pragma once
// Recipes (SPEC §1.8): a JSON document describing an edit — named sources, scale assignments with
// blend weights, attribute edits with strengths, seeds — and an `input` role that `automod apply`
// (and the GUI) fill with each photo. The GUI saves the same document as a project.
//
//   {"kind": "automod-recipe", "version": 1, "resolution": 64, "align": true,
//    "sources": {"a": {"photo": "a.png"}, "b": {"latent": "b.json", "index": 0}, "r": {"seed": 7}},
//    "base": "input",
//    "assignments": [{"scales": "coarse", "source": "a"},
//                    {"scales": "fine", "sources": [{"source": "b", "weight": 2}, {"source": "r"}]}],
//    "attributes": [{"file": "smile.json", "strength": 1.5, "scales": "fine"}]}
//
// Relative paths are relative to the recipe file. "input" is a reserved source name.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/edit/sources.h"
#include "core/model/latent_plan.h"

namespace automod {

struct Recipe {
  struct Weighted {
    std::string source;
    double weight = 1.0;
  };
  struct Assignment {
    /// A scale ("coarse", "fine", "K", "A-B", or a comma list), resolved against the model.
    std::string scales;
    std::vector<Weighted> sources;
  };
  struct AttributeEdit {
    std::filesystem::path file;
    double strength = 1.0;
    /// Overrides the attribute's own ranges when not empty.
    std::string scales;
  };

  /// The model resolution the recipe was made for (0 = any).
  int resolution = 0;
  /// Face alignment of photos (unset = the caller's choice).
  std::optional<bool> align;
  std::map<std::string, SourceSpec> sources;
  /// The source of blocks no assignment covers.
  std::string base = "input";
  std::vector<Assignment> assignments;
  std::vector<AttributeEdit> attributes;

  static constexpr const char* kInput = "input";
  /// Whether the recipe refers to the `input` role (then it needs a photo to run).
  bool usesInput() const;

  /// Paths are written relative to `dir` when they lie under it.
  nlohmann::json toJson(const std::filesystem::path& dir = {}) const;
  /// Checks every key and type; relative paths are resolved against `dir`; missing files throw.
  /// Every error is an automod::Error of the form "<where>: <field>: <problem>".
  static Recipe fromJson(const nlohmann::json& j, const std::filesystem::path& dir, const std::string& where);
  void save(const std::filesystem::path& path) const;
  static Recipe load(const std::filesystem::path& path);
};

/// The recipe's plan for a model with `num_blocks` blocks; `input` fills the input role. Throws
/// automod::Error for a recipe made for another resolution, unknown source names, bad scales, or a
/// recipe that needs an input when none is given.
LatentPlan recipePlan(const Recipe& recipe, SourceCache& sources, Automodulator& model,
                      const std::optional<SourceSpec>& input = std::nullopt);

}  // namespace automod
