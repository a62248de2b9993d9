#pragma once
// Recipes (docs/design.md §1.8): a JSON document describing an edit — named sources, scale assignments with
// blend weights, attribute edits with strengths, seeds — and an `input` role that `automod apply`
// fills with each photo. The editor saves its projects as recipes (ui/studio_controller): the same
// JSON `automod apply` replays, plus an "editor" section only the editor reads.
//
//   {"kind": "automod-recipe", "version": 1, "resolution": 64, "align": true, "model": "m.amod",
//    "sources": {"a": {"photo": "a.png", "face": 1}, "b": {"latent": "b.json", "index": 0},
//                "r": {"seed": 7}, "c": {"z": [0.01, ...]}, "d": {"photo": "d.png", "center_crop": true},
//                "e": {"z": [...], "z_blocks": [[...], ...], "z_offsets": [[...], ...]}},
//    "refine": {"steps": 100, ...},
//    "base": "input",
//    "assignments": [{"scales": "coarse", "source": "a"},
//                    {"scales": "fine", "sources": [{"source": "b", "weight": 2}, {"source": "r"}]}],
//    "attributes": [{"file": "smile.json", "strength": 1.5, "scales": "fine"},
//                   {"attribute": {... an attribute file's JSON ...}, "strength": 0.5}],
//    "morph": {"a": "a", "b": "b", "scales": "coarse,fine", "t": 0.5, "frames": 48, "fps": 24},
//    "editor": {...}}
//
// Relative paths are relative to the recipe file. "input" is a reserved source name. "refine"
// (core/edit/refine.h's options; missing fields take the defaults) refines every photo source and
// the input before the plan is built; "z_blocks" stores a source's per-block codes (a refined photo's)
// and "z_offsets" their style offsets (core/model/latent_plan.h).
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/edit/attribute.h"
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
    /// The attribute file, or (when `inline_attribute` is set) empty.
    std::filesystem::path file;
    std::optional<AttributeVector> inline_attribute;
    double strength = 1.0;
    /// Overrides the attribute's own ranges when not empty.
    std::string scales;
  };
  /// A morph between two sources (the editor's Morph tab): which blocks move, where, how long.
  struct Morph {
    std::string a, b;
    std::string scales;  ///< empty: every block
    double t = 0.5;
    int frames = 48;
    double fps = 24.0;
  };

  /// The model resolution the recipe was made for (0 = any).
  int resolution = 0;
  /// The model the recipe was made with (`automod apply` uses it when no MODEL is given).
  std::filesystem::path model;
  std::optional<Morph> morph;
  /// What only the editor reads (its sources' thumbnails and codes, the exact per-block weights);
  /// carried through untouched.
  nlohmann::json editor;
  /// Face alignment of photos (unset = the caller's choice).
  std::optional<bool> align;
  /// How photos (sources and the input) are refined (unset = the caller's choice: the SourceCache's).
  std::optional<RefineOptions> refine;
  std::map<std::string, SourceSpec> sources;
  /// The source of blocks no assignment covers.
  std::string base = "input";
  std::vector<Assignment> assignments;
  std::vector<AttributeEdit> attributes;

  static constexpr const char* kInput = "input";
  /// Whether the recipe refers to the `input` role (then it needs a photo to run).
  bool usesInput() const;

  /// The source names a recipe uses for the i-th of several: "s1", "s2", ...
  static std::string sourceName(int index) { return "s" + std::to_string(index + 1); }
  /// Paths are written relative to `dir` when they lie under it.
  nlohmann::json toJson(const std::filesystem::path& dir = {}) const;
  /// Checks every key and type; relative paths are resolved against `dir`; missing files throw.
  /// Every error is an automod::Error of the form "<where>: <field>: <problem>".
  static Recipe fromJson(const nlohmann::json& j, const std::filesystem::path& dir, const std::string& where);
  void save(const std::filesystem::path& path) const;
  static Recipe load(const std::filesystem::path& path);
};

/// The recipe's plan for a model with `num_blocks` blocks; `input` fills the input role. Every source
/// contributes its per-block codes (SourceCache::codes, refined with the recipe's `refine` options or,
/// when it has none, the cache's). Throws automod::Error for a recipe made for another resolution,
/// unknown source names, bad scales, or a recipe that needs an input when none is given.
LatentPlan recipePlan(const Recipe& recipe, SourceCache& sources, Automodulator& model,
                      const std::optional<SourceSpec>& input = std::nullopt);

}  // namespace automod
