#include "core/edit/recipe.h"

#include <fstream>
#include <set>

#include "core/edit/attribute.h"
#include "core/edit/plan.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string typeName(const json& j) { return j.type_name(); }

[[noreturn]] void fail(const std::string& where, const std::string& field, const std::string& what) {
  throw Error(where + ": " + field + ": " + what);
}

void onlyKeys(const json& j, const std::set<std::string>& allowed, const std::string& where, const std::string& field) {
  if (!j.is_object()) fail(where, field, "expected an object, got " + typeName(j));
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) {
      std::string list;
      for (auto& k : allowed) list += (list.empty() ? "" : ", ") + k;
      fail(where, field.empty() ? it.key() : field + "." + it.key(), "unknown key (expected one of: " + list + ")");
    }
}

const json& get(const json& j, const std::string& key, json::value_t type, const std::string& where,
                const std::string& field) {
  if (!j.contains(key)) fail(where, field, "missing");
  const json& v = j.at(key);
  const bool ok = type == json::value_t::number_float ? v.is_number()
                  : type == json::value_t::number_unsigned ? v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)
                                                           : v.type() == type ||
                                                                 (type == json::value_t::number_integer && v.is_number_integer());
  if (!ok) fail(where, field, "wrong type (" + typeName(v) + ")");
  return v;
}

fs::path resolvePath(const std::string& p, const fs::path& dir, const std::string& where, const std::string& field) {
  if (p.empty()) fail(where, field, "empty path");
  fs::path path = p;
  if (path.is_relative() && !dir.empty()) path = dir / path;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail(where, field, "file not found: " + path.string());
  return path;
}

std::string writePath(const fs::path& p, const fs::path& dir) {
  if (dir.empty()) return p.string();
  auto rel = p.lexically_normal().lexically_relative(dir.lexically_normal());
  if (!rel.empty() && *rel.begin() != "..") return rel.generic_string();
  return p.string();
}

}  // namespace

bool Recipe::usesInput() const {
  if (base == kInput) return true;
  for (auto& a : assignments)
    for (auto& w : a.sources)
      if (w.source == kInput) return true;
  return false;
}

json Recipe::toJson(const fs::path& dir) const {
  json j;
  j["kind"] = "automod-recipe";
  j["version"] = 1;
  if (resolution) j["resolution"] = resolution;
  if (align) j["align"] = *align;
  if (!model.empty()) j["model"] = writePath(model, dir);
  j["sources"] = json::object();
  for (auto& [name, s] : sources) {
    switch (s.kind) {
      case SourceSpec::Kind::Photo: {
        json p = {{"photo", writePath(s.path, dir)}};
        if (s.face >= 0) p["face"] = s.face;
        if (s.center_crop) p["center_crop"] = true;
        j["sources"][name] = p;
        break;
      }
      case SourceSpec::Kind::Code:
        j["sources"][name] = {{"z", s.code}};
        if (!s.block_codes.empty()) j["sources"][name]["z_blocks"] = s.block_codes;
        if (!s.block_offsets.empty()) j["sources"][name]["z_offsets"] = s.block_offsets;
        break;
      case SourceSpec::Kind::Latent:
        j["sources"][name] = {{"latent", writePath(s.path, dir)}, {"index", s.index}};
        break;
      case SourceSpec::Kind::Random: j["sources"][name] = {{"seed", s.seed}}; break;
    }
  }
  if (refine) j["refine"] = refine->toJson();
  j["base"] = base;
  j["assignments"] = json::array();
  for (auto& a : assignments) {
    json sj = json::array();
    for (auto& w : a.sources) sj.push_back({{"source", w.source}, {"weight", w.weight}});
    j["assignments"].push_back({{"scales", a.scales}, {"sources", sj}});
  }
  j["attributes"] = json::array();
  for (auto& a : attributes) {
    json aj = {{"strength", a.strength}};
    if (a.inline_attribute)
      aj["attribute"] = a.inline_attribute->toJson();
    else
      aj["file"] = writePath(a.file, dir);
    if (!a.scales.empty()) aj["scales"] = a.scales;
    j["attributes"].push_back(aj);
  }
  if (morph) {
    j["morph"] = {{"a", morph->a}, {"b", morph->b}, {"t", morph->t}, {"frames", morph->frames}, {"fps", morph->fps}};
    if (!morph->scales.empty()) j["morph"]["scales"] = morph->scales;
  }
  if (!editor.is_null()) j["editor"] = editor;
  return j;
}

Recipe Recipe::fromJson(const json& j, const fs::path& dir, const std::string& where) {
  using T = json::value_t;
  onlyKeys(j, {"kind", "version", "resolution", "align", "sources", "base", "assignments", "attributes", "name",
               "description", "model", "morph", "editor", "refine"},
           where, "");
  Recipe r;
  if (j.contains("kind") && j["kind"] != "automod-recipe") fail(where, "kind", "not an automod recipe");
  if (j.contains("version") && get(j, "version", T::number_integer, where, "version").get<int>() > 1)
    fail(where, "version", "made by a newer version of automod");
  if (j.contains("resolution")) r.resolution = get(j, "resolution", T::number_integer, where, "resolution").get<int>();
  if (j.contains("align")) r.align = get(j, "align", T::boolean, where, "align").get<bool>();
  if (j.contains("model")) {
    // Not required to exist: `automod apply MODEL` overrides it, and only a recipe run without one
    // needs the file (it says so then).
    fs::path m = get(j, "model", T::string, where, "model").get<std::string>();
    r.model = m.is_relative() && !dir.empty() ? dir / m : m;
  }
  if (j.contains("editor")) r.editor = j.at("editor");
  if (j.contains("refine")) r.refine = RefineOptions::fromJson(j.at("refine"), where + ": refine");
  if (j.contains("sources")) {
    const auto& src = get(j, "sources", T::object, where, "sources");
    for (auto it = src.begin(); it != src.end(); ++it) {
      const std::string field = "sources." + it.key();
      if (it.key() == kInput) fail(where, field, "'input' is reserved for the photo the recipe is applied to");
      const json& s = it.value();
      if (s.is_string()) {
        r.sources[it.key()] = SourceSpec::photo(resolvePath(s.get<std::string>(), dir, where, field));
        continue;
      }
      onlyKeys(s, {"photo", "latent", "index", "seed", "z", "z_blocks", "z_offsets", "face", "center_crop"}, where, field);
      const int kinds =
          int(s.contains("photo")) + int(s.contains("latent")) + int(s.contains("seed")) + int(s.contains("z"));
      if (kinds != 1) fail(where, field, "give exactly one of photo, latent, seed or z");
      if ((s.contains("face") || s.contains("center_crop")) && !s.contains("photo"))
        fail(where, field, "face and center_crop belong to a photo");
      if (s.contains("z_blocks") && !s.contains("z"))
        fail(where, field, "z_blocks (per-block codes) go with the source's encoder code z");
      if (s.contains("z_offsets") && !s.contains("z_blocks"))
        fail(where, field, "z_offsets (style offsets) go with the source's per-block codes z_blocks");
      if (s.contains("photo")) {
        auto p = get(s, "photo", T::string, where, field + ".photo").get<std::string>();
        auto spec = SourceSpec::photo(resolvePath(p, dir, where, field + ".photo"));
        if (s.contains("face")) spec.face = get(s, "face", T::number_unsigned, where, field + ".face").get<int>();
        if (s.contains("center_crop"))
          spec.center_crop = get(s, "center_crop", T::boolean, where, field + ".center_crop").get<bool>();
        r.sources[it.key()] = spec;
      } else if (s.contains("z")) {
        const auto& z = get(s, "z", T::array, where, field + ".z");
        if (z.empty() || z.size() > 8192) fail(where, field + ".z", "a code needs 1 to 8192 numbers");
        auto numbers = [&](const json& list, const std::string& f) {
          std::vector<float> values;
          for (auto& x : list) {
            if (!x.is_number()) fail(where, f, "a code is a list of numbers");
            values.push_back(jsonFloat(x, where, f));
          }
          return values;
        };
        std::vector<std::vector<float>> blocks;
        if (s.contains("z_blocks")) {
          const auto& zb = get(s, "z_blocks", T::array, where, field + ".z_blocks");
          if (zb.empty() || zb.size() > 64) fail(where, field + ".z_blocks", "needs 1 to 64 codes, one per decoder block");
          for (size_t b = 0; b < zb.size(); ++b) {
            const std::string bf = field + ".z_blocks[" + std::to_string(b) + "]";
            if (!zb[b].is_array() || zb[b].size() != z.size()) fail(where, bf, "must be a list of numbers as long as z");
            blocks.push_back(numbers(zb[b], bf));
          }
        }
        std::vector<std::vector<float>> offsets;
        if (s.contains("z_offsets")) {
          offsets = offsetValuesFromJson(s["z_offsets"], where + ": " + field + ".z_offsets");
          if (offsets.size() != blocks.size()) fail(where, field + ".z_offsets", "needs one list per block of z_blocks");
        }
        r.sources[it.key()] = SourceSpec::inlineCode(numbers(z, field + ".z"), std::move(blocks), std::move(offsets));
      } else if (s.contains("latent")) {
        auto p = get(s, "latent", T::string, where, field + ".latent").get<std::string>();
        int index = s.contains("index") ? get(s, "index", T::number_unsigned, where, field + ".index").get<int>() : 0;
        r.sources[it.key()] = SourceSpec::latentFile(resolvePath(p, dir, where, field + ".latent"), index);
      } else {
        r.sources[it.key()] = SourceSpec::random(get(s, "seed", T::number_unsigned, where, field + ".seed").get<uint64_t>());
      }
    }
  }
  auto known = [&](const std::string& name, const std::string& field) {
    if (name != kInput && !r.sources.count(name)) fail(where, field, "unknown source '" + name + "'");
  };
  if (j.contains("base")) r.base = get(j, "base", T::string, where, "base").get<std::string>();
  known(r.base, "base");
  if (j.contains("assignments")) {
    const auto& as = get(j, "assignments", T::array, where, "assignments");
    for (size_t i = 0; i < as.size(); ++i) {
      const std::string field = "assignments[" + std::to_string(i) + "]";
      onlyKeys(as[i], {"scales", "source", "sources"}, where, field);
      Assignment a;
      a.scales = get(as[i], "scales", T::string, where, field + ".scales").get<std::string>();
      if (as[i].contains("source") == as[i].contains("sources")) fail(where, field, "give either source or sources");
      if (as[i].contains("source")) {
        a.sources.push_back({get(as[i], "source", T::string, where, field + ".source").get<std::string>(), 1.0});
      } else {
        const auto& ws = get(as[i], "sources", T::array, where, field + ".sources");
        if (ws.empty()) fail(where, field + ".sources", "empty: a scale range needs at least one source");
        for (size_t k = 0; k < ws.size(); ++k) {
          const std::string wf = field + ".sources[" + std::to_string(k) + "]";
          Weighted w;
          if (ws[k].is_string()) {
            w.source = ws[k].get<std::string>();
          } else {
            onlyKeys(ws[k], {"source", "weight"}, where, wf);
            w.source = get(ws[k], "source", T::string, where, wf + ".source").get<std::string>();
            if (ws[k].contains("weight")) w.weight = get(ws[k], "weight", T::number_float, where, wf + ".weight").get<double>();
            if (!(w.weight >= 0)) fail(where, wf + ".weight", "must be non-negative");
          }
          a.sources.push_back(w);
        }
      }
      for (size_t k = 0; k < a.sources.size(); ++k) known(a.sources[k].source, field + ".sources");
      r.assignments.push_back(a);
    }
  }
  if (j.contains("attributes")) {
    const auto& at = get(j, "attributes", T::array, where, "attributes");
    for (size_t i = 0; i < at.size(); ++i) {
      const std::string field = "attributes[" + std::to_string(i) + "]";
      onlyKeys(at[i], {"file", "attribute", "strength", "scales"}, where, field);
      AttributeEdit e;
      if (at[i].contains("file") == at[i].contains("attribute")) fail(where, field, "give either file or attribute");
      if (at[i].contains("file"))
        e.file = resolvePath(get(at[i], "file", T::string, where, field + ".file").get<std::string>(), dir, where,
                             field + ".file");
      else
        e.inline_attribute = AttributeVector::fromJson(get(at[i], "attribute", T::object, where, field + ".attribute"),
                                                       where + ": " + field + ".attribute");
      if (at[i].contains("strength")) e.strength = get(at[i], "strength", T::number_float, where, field + ".strength").get<double>();
      if (at[i].contains("scales")) e.scales = get(at[i], "scales", T::string, where, field + ".scales").get<std::string>();
      r.attributes.push_back(e);
    }
  }
  if (j.contains("morph")) {
    const auto& m = get(j, "morph", T::object, where, "morph");
    onlyKeys(m, {"a", "b", "scales", "t", "frames", "fps"}, where, "morph");
    Morph morph;
    morph.a = get(m, "a", T::string, where, "morph.a").get<std::string>();
    morph.b = get(m, "b", T::string, where, "morph.b").get<std::string>();
    known(morph.a, "morph.a");
    known(morph.b, "morph.b");
    if (m.contains("scales")) morph.scales = get(m, "scales", T::string, where, "morph.scales").get<std::string>();
    if (m.contains("t")) morph.t = get(m, "t", T::number_float, where, "morph.t").get<double>();
    if (!(morph.t >= 0.0 && morph.t <= 1.0)) fail(where, "morph.t", "must be in [0, 1]");
    if (m.contains("frames")) morph.frames = get(m, "frames", T::number_integer, where, "morph.frames").get<int>();
    if (morph.frames < 2 || morph.frames > 100000) fail(where, "morph.frames", "must be 2 to 100000");
    if (m.contains("fps")) morph.fps = get(m, "fps", T::number_float, where, "morph.fps").get<double>();
    if (!(morph.fps > 0.0 && morph.fps <= 240.0)) fail(where, "morph.fps", "must be in (0, 240]");
    r.morph = morph;
  }
  return r;
}

void Recipe::save(const fs::path& path) const {
  std::ofstream f(path);
  f << toJson(fs::absolute(path).parent_path()).dump(2) << "\n";
  if (!f) throw Error("cannot write recipe " + path.string());
}

Recipe Recipe::load(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw Error("cannot read recipe " + path.string() + ": no such file or no permission");
  const json j = parseJsonLimited(f, "recipe " + path.string());
  return fromJson(j, fs::absolute(path).parent_path(), "recipe " + path.string());
}

LatentPlan recipePlan(const Recipe& r, SourceCache& sources, Automodulator& model, const std::optional<SourceSpec>& input) {
  const int nb = model.numBlocks();
  if (r.resolution && r.resolution != model.resolution())
    throw Error("the recipe was made for a " + std::to_string(r.resolution) + " px model but this one is " +
                std::to_string(model.resolution()) + " px");
  const RefineOptions& refine = r.refine ? *r.refine : sources.refineOptions();
  auto codesOf = [&](const std::string& name) {
    if (name == Recipe::kInput) {
      if (!input) throw Error("the recipe uses the 'input' role: give it a photo to apply to");
      return sources.codes(*input, refine);
    }
    auto it = r.sources.find(name);
    if (it == r.sources.end()) throw Error("the recipe names an unknown source '" + name + "'");
    return sources.codes(it->second, refine);
  };
  std::vector<PlanAssignment> assignments;
  for (size_t i = 0; i < r.assignments.size(); ++i) {
    const auto& a = r.assignments[i];
    std::vector<BlockRange> ranges;
    try {
      ranges = parseBlockRanges(a.scales, BlockLayout::of(model));
    } catch (const Error& e) {
      throw Error("recipe assignments[" + std::to_string(i) + "].scales: " + e.what());
    }
    if (a.sources.empty()) throw Error("recipe assignments[" + std::to_string(i) + "] has no sources");
    PlanAssignment pa;
    for (auto& w : a.sources) {
      pa.sources.push_back(codesOf(w.source));
      pa.weights.push_back(w.weight);
    }
    for (auto& range : ranges) {
      pa.range = range;
      assignments.push_back(pa);
    }
  }
  auto plan = buildPlan(nb, codesOf(r.base), assignments);
  for (size_t i = 0; i < r.attributes.size(); ++i) {
    auto attr = r.attributes[i].inline_attribute ? *r.attributes[i].inline_attribute
                                                 : AttributeVector::load(r.attributes[i].file);
    if (!r.attributes[i].scales.empty()) {
      try {
        attr.ranges = parseBlockRanges(r.attributes[i].scales, BlockLayout::of(model));
      } catch (const Error& e) {
        throw Error("recipe attributes[" + std::to_string(i) + "].scales: " + e.what());
      }
    }
    plan = applyAttribute(plan, attr, r.attributes[i].strength);
  }
  return plan;
}

}  // namespace automod
