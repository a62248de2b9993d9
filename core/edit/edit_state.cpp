#include "core/edit/edit_state.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <tuple>

#include "core/edit/interpolate.h"
#include "core/edit/plan.h"
#include "core/edit/sampling.h"
#include "core/edit/source_intake.h"
#include "core/io/image.h"
#include "core/metrics/image_quality.h"
#include "core/model/automodulator.h"
#include "core/model/layers.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<float> floats(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

torch::Tensor codeFromJson(const json& j, int dim, const std::string& where) {
  if (!j.is_array() || static_cast<int>(j.size()) != dim)
    throw Error(where + ": a code needs " + std::to_string(dim) + " numbers");
  std::vector<float> v;
  v.reserve(j.size());
  for (const auto& x : j) {
    if (!x.is_number()) throw Error(where + ": a code is a list of numbers");
    v.push_back(jsonFloat(x, where, "code"));
  }
  return torch::tensor(v, torch::kFloat32).reshape({1, dim});
}

bool uniformCodes(const LatentPlan& codes) {
  if (codes.hasOffsets()) return false;
  for (int b = 1; b < codes.size(); ++b)
    if (!torch::equal(codes[b], codes[0])) return false;
  return true;
}

/// "s1", "s2", ... sorted by their number (std::map sorts "s10" before "s2").
int sourceNumber(const std::string& name) {
  if (name.size() < 2 || name[0] != 's' || name.find_first_not_of("0123456789", 1) != std::string::npos) return -1;
  return name.size() > 9 ? -1 : std::stoi(name.substr(1));
}

}  // namespace

ModelBinding ModelBinding::of(Automodulator& model, const fs::path& path) {
  ModelBinding b;
  b.path = path;
  b.identity = modelIdentity(model);
  b.layout = BlockLayout::of(model);
  b.resolution = model.resolution();
  b.latent_dim = static_cast<int>(model.config().latent_dim);
  b.channels = static_cast<int>(model.config().image_channels);
  b.style_widths = styleWidths(model);
  return b;
}

int EditState::indexOf(uint64_t id) const {
  for (size_t i = 0; i < sources.size(); ++i)
    if (sources[i].id == id) return static_cast<int>(i);
  return -1;
}

uint64_t EditState::newId() const {
  uint64_t id = 1;
  for (const auto& s : sources) id = std::max(id, s.id + 1);
  return id;
}

bool EditState::ready() const {
  if (sources.empty()) return false;
  for (const auto& s : sources)
    if (s.codes.size() != blocks()) return false;
  return true;
}

void EditState::normaliseWeights() {
  const size_t n = sources.size();
  weights.resize(static_cast<size_t>(std::max(blocks(), 0)));
  for (auto& row : weights) {
    const size_t old = row.size();
    row.resize(n);
    for (size_t i = old; i < n; ++i) row[i] = i == 0 ? 1.0 : 0.0;
  }
}

namespace {

// Calls f(first, b) for every block b after the first block `first` of each named scale the layout has
// (only blocks with a row in `weights`).
template <class F>
void forLaterBlocksOfEachScale(const BlockLayout& layout, size_t rows, F&& f) {
  for (Scale scale : allScales()) {
    if (!hasScale(scale, layout)) continue;
    const auto range = scaleRange(scale, layout);
    for (int b = range.first + 1; b <= range.last && b < static_cast<int>(rows); ++b)
      f(static_cast<size_t>(range.first), static_cast<size_t>(b));
  }
}

}  // namespace

bool EditState::mixedPerBlock() const {
  bool mixed = false;
  forLaterBlocksOfEachScale(model.layout, weights.size(),
                            [&](size_t first, size_t b) { mixed = mixed || weights[b] != weights[first]; });
  return mixed;
}

void EditState::mixByScales() {
  forLaterBlocksOfEachScale(model.layout, weights.size(), [&](size_t first, size_t b) { weights[b] = weights[first]; });
}

void EditState::addSource(EditSource source) {
  if (source.id == 0 || indexOf(source.id) >= 0) source.id = newId();
  sources.push_back(std::move(source));
  normaliseWeights();
}

void EditState::removeSource(int index) {
  if (index < 0 || index >= static_cast<int>(sources.size())) return;
  sources.erase(sources.begin() + index);
  for (auto& row : weights) {
    if (index < static_cast<int>(row.size())) row.erase(row.begin() + index);
    // A block that took only the removed source takes the first remaining one (a block needs a source).
    if (!row.empty() && std::all_of(row.begin(), row.end(), [](double w) { return w == 0.0; })) row[0] = 1.0;
  }
  if (morph.a >= static_cast<int>(sources.size()) || morph.a == index) morph.a = 0;
  if (morph.b >= static_cast<int>(sources.size()) || morph.b == index) morph.b = std::min<int>(1, int(sources.size()) - 1);
  normaliseWeights();
}

void EditState::setWeight(const BlockRange& range, int source, double weight) {
  if (source < 0 || source >= static_cast<int>(sources.size()) || !(weight >= 0)) return;
  normaliseWeights();
  for (int b = std::max(range.first, 0); b <= range.last && b < blocks(); ++b) weights[b][source] = weight;
}

void EditState::assignRange(const BlockRange& range, int source) {
  if (source < 0 || source >= static_cast<int>(sources.size())) return;
  normaliseWeights();
  for (int b = std::max(range.first, 0); b <= range.last && b < blocks(); ++b)
    for (size_t i = 0; i < weights[b].size(); ++i) weights[b][i] = static_cast<int>(i) == source ? 1.0 : 0.0;
}

double EditState::weight(const BlockRange& range, int source) const {
  if (range.first < 0 || range.first >= static_cast<int>(weights.size()) || source < 0 ||
      source >= static_cast<int>(weights[range.first].size()))
    return 0.0;
  return weights[range.first][source];
}

LatentPlan EditState::mixPlan() const {
  if (sources.empty()) throw Error("the mix has no sources: add a photo first");
  for (const auto& s : sources)
    if (s.codes.size() != blocks())
      throw Error(s.name + " is not encoded by this model yet (" + std::to_string(s.codes.size()) + " of " +
                  std::to_string(blocks()) + " block codes)");
  // Block b blends the sources' own codes of block b (a refined source has one per block); a block
  // without any weight takes source 0 — the rule of plan.h's blockMixPlan.
  // A refined source's style offsets go with its codes (blended with the same weights).
  LatentPlan plan;
  for (int b = 0; b < blocks(); ++b) {
    std::vector<torch::Tensor> codes, offsets;
    std::vector<double> w;
    if (b < static_cast<int>(weights.size()))
      for (size_t i = 0; i < weights[b].size() && i < sources.size(); ++i) {
        if (!(weights[b][i] >= 0.0)) throw Error("block " + std::to_string(b) + ": weights must be non-negative");
        if (weights[b][i] > 0.0) {
          codes.push_back(sources[i].codes[b]);
          offsets.push_back(sources[i].codes.offset(b));
          w.push_back(weights[b][i]);
        }
      }
    if (codes.empty()) {
      plan.latents.push_back(sources.front().codes[b]);
      offsets.push_back(sources.front().codes.offset(b));
    } else {
      plan.latents.push_back(blendLatents(codes, w));
    }
    if (auto o = blendOffsets(offsets, codes.empty() ? std::vector<double>{} : w); o.defined()) plan.setOffset(b, o);
  }
  return plan;
}

LatentPlan EditState::plan() const {
  auto p = mixPlan();
  if (!attribute || attribute->strength == 0.0 || !attribute->vector.vector.defined()) return p;
  return applyAttribute(p, attribute->vector, attribute->strength);
}

LatentPlan EditState::galleryPlan(Automodulator& model, const std::vector<BlockRange>& locked, uint64_t seed,
                                  int count) const {
  std::vector<RangeAssignment> locks;
  if (!sources.empty() && !locked.empty()) {
    const auto mix = mixPlan();
    for (const auto& range : locked)
      for (int b = range.first; b <= range.last && b < mix.size(); ++b)
        locks.push_back({BlockRange{b, b}, {mix[b].to(model.device())}, {}});
  }
  SamplingOptions options;
  options.count = std::max(1, count);
  options.seed = seed;
  auto p = conditionalPlan(model, locks, options);
  // The locked blocks keep the mix's style offsets too (a refined photo's detail at those scales).
  if (!locks.empty()) {
    const auto mix = mixPlan();
    for (const auto& lock : locks)
      if (auto o = mix.offset(lock.range.first); o.defined())
        p.setOffset(lock.range.first, o.to(model.device()).expand({p.batch(), o.size(1)}));
  }
  if (!attribute || attribute->strength == 0.0 || !attribute->vector.vector.defined()) return p;
  return applyAttribute(p, attribute->vector, attribute->strength);
}

std::vector<BlockRange> EditState::morphRanges() const {
  if (morph.scales.empty()) return {BlockRange{0, blocks() - 1}};
  // Each part on its own: a named scale this model lacks ("fine" on a 32 px model) moves nothing.
  std::vector<BlockRange> out;
  std::stringstream parts(morph.scales);
  for (std::string part; std::getline(parts, part, ',');) {
    try {
      out.push_back(parseBlockRange(part, model.layout));
    } catch (const Error&) {
    }
  }
  return out;
}

LatentPlan EditState::morphPlan(double t) const {
  const int n = static_cast<int>(sources.size());
  if (morph.a < 0 || morph.b < 0 || morph.a >= n || morph.b >= n) throw Error("choose two photos to morph between");
  const auto& a = sources[morph.a];
  const auto& b = sources[morph.b];
  if (a.codes.size() != blocks() || b.codes.size() != blocks())
    throw Error("the photos are not encoded by this model yet");
  const auto ranges = morphRanges();
  LatentPlan plan;
  const double u = std::clamp(t, 0.0, 1.0);
  for (int k = 0; k < blocks(); ++k) {
    const bool moving = rangesContain(ranges, k);
    plan.latents.push_back(moving ? slerp(a.codes[k], b.codes[k], u) : a.codes[k]);
    // Style offsets (refined photos) move linearly with the codes.
    auto o = moving ? blendOffsets({a.codes.offset(k), b.codes.offset(k)}, {1.0 - u, u}) : a.codes.offset(k);
    if (o.defined()) plan.setOffset(k, o);
  }
  return plan;
}

Recipe EditState::toRecipe() const {
  Recipe r;
  r.resolution = model.resolution;
  r.model = model.path;
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto& s = sources[i];
    SourceSpec spec;
    if (s.fromPhotoFile()) {
      spec = s.spec;
    } else {
      if (!s.hasCodes()) throw Error(s.name + " has no code to save yet");
      // A kept sample or a refined picture has one code per block; `automod apply` replays them as they are.
      spec = uniformCodes(s.codes) ? SourceSpec::inlineCode(floats(s.codes[0]))
                                   : SourceSpec::inlineCodes(s.z.defined() ? s.z : s.codes[0], s.codes);
    }
    r.sources[Recipe::sourceName(static_cast<int>(i))] = spec;
  }
  if (!sources.empty()) {
    // Consecutive blocks with the same weights form one assignment; blocks without any weight take
    // the base, the first source (mixPlan's rule).
    r.base = Recipe::sourceName(0);
    for (int b = 0; b < static_cast<int>(weights.size());) {
      int e = b;
      while (e + 1 < static_cast<int>(weights.size()) && weights[e + 1] == weights[b]) ++e;
      Recipe::Assignment a;
      a.scales = BlockRange{b, e}.toString();
      for (size_t i = 0; i < weights[b].size(); ++i)
        if (weights[b][i] > 0) a.sources.push_back({Recipe::sourceName(static_cast<int>(i)), weights[b][i]});
      if (!a.sources.empty()) r.assignments.push_back(a);
      b = e + 1;
    }
  }
  if (attribute && attribute->vector.vector.defined() && attribute->strength != 0.0) {
    Recipe::AttributeEdit e;
    e.inline_attribute = attribute->vector;
    e.strength = attribute->strength;
    r.attributes.push_back(e);
  }
  const int n = static_cast<int>(sources.size());
  if (morph.a >= 0 && morph.b >= 0 && morph.a < n && morph.b < n) {
    Recipe::Morph m;
    m.a = Recipe::sourceName(morph.a);
    m.b = Recipe::sourceName(morph.b);
    m.scales = morph.scales;
    m.t = morph.t;
    m.frames = morph.frames;
    m.fps = morph.fps;
    r.morph = m;
  }
  return r;
}

json EditState::viewJson(const std::function<std::string(const torch::Tensor&)>& encode_png) const {
  json list = json::array();
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto& s = sources[i];
    json o = {{"source", Recipe::sourceName(static_cast<int>(i))}, {"name", s.name}, {"note", s.note},
              {"model", model.identity}};
    if (std::isfinite(s.psnr)) o["psnr"] = s.psnr;
    if (std::isfinite(s.ssim)) o["ssim"] = s.ssim;
    if (s.picture.defined() && encode_png) o["picture_png"] = encode_png(s.picture);
    if (s.reconstruction.defined() && encode_png) o["reconstruction_png"] = encode_png(s.reconstruction);
    if (s.transform) o["transform"] = s.transform->toJson();
    // The codes of a photo (the recipe names only its file) or of a refined source, with the model
    // they belong to: a project reopens on that model without encoding or refining again.
    if (s.hasCodes() && (s.fromPhotoFile() || s.refined() || !uniformCodes(s.codes))) {
      json codes = json::array();
      for (int b = 0; b < s.codes.size(); ++b) codes.push_back(floats(s.codes[b]));
      o["codes"] = {{"model", model.identity}, {"blocks", codes}};
      if (s.codes.hasOffsets()) o["codes"]["offsets"] = offsetValues(s.codes);
      if (s.z.defined()) o["codes"]["z"] = floats(s.z);
    }
    if (s.refined()) o["refine"] = s.refine;
    list.push_back(o);
  }
  return {{"format", "automod-studio-view"}, {"version", 3}, {"sources", list}};
}

EditState EditState::fromRecipe(const Recipe& recipe, const json& view, const ModelBinding& model,
                                const std::function<torch::Tensor(const std::string&)>& decode_png) {
  const std::string where = "the project";
  if (!view.is_object() || view.value("format", std::string()) != "automod-studio-view")
    throw Error(where + " has no editor section of this version (save it again with this version, or run it with "
                        "automod apply)");
  EditState st;
  st.model = model;
  const int dim = model.latent_dim;
  // The sources in the order the editor numbered them.
  std::vector<std::string> names;
  for (const auto& [name, spec] : recipe.sources) {
    if (sourceNumber(name) < 1) throw Error(where + ": source '" + name + "' was not written by the editor");
    names.push_back(name);
  }
  std::sort(names.begin(), names.end(), [](const auto& a, const auto& b) { return sourceNumber(a) < sourceNumber(b); });
  std::map<std::string, json> views;
  if (view.contains("sources") && view["sources"].is_array())
    for (const auto& o : view["sources"])
      if (o.is_object() && o.contains("source") && o["source"].is_string()) views[o["source"].get<std::string>()] = o;
  std::map<std::string, int> index;
  for (const auto& name : names) {
    const auto& spec = recipe.sources.at(name);
    const json v = views.count(name) ? views[name] : json::object();
    EditSource s;
    s.id = st.newId();
    s.spec = spec;
    s.name = v.value("name", spec.kind == SourceSpec::Kind::Photo ? spec.path.filename().string() : name);
    s.note = v.value("note", std::string());
    if (v.contains("psnr") && v["psnr"].is_number()) s.psnr = v["psnr"].get<double>();
    if (v.contains("ssim") && v["ssim"].is_number()) s.ssim = v["ssim"].get<double>();
    if (decode_png && v.contains("picture_png") && v["picture_png"].is_string())
      s.picture = decode_png(v["picture_png"].get<std::string>());
    if (decode_png && v.contains("reconstruction_png") && v["reconstruction_png"].is_string())
      s.reconstruction = decode_png(v["reconstruction_png"].get<std::string>());
    if (v.contains("transform")) {
      try {
        s.transform = AlignTransform::fromJson(v["transform"]);
      } catch (const Error&) {
        // Paste-back is lost for this source; everything else still opens.
      }
    }
    if (v.contains("refine")) s.refine = v["refine"];
    const std::string field = where + ": " + name;
    switch (spec.kind) {
      case SourceSpec::Kind::Photo: break;
      case SourceSpec::Kind::Code:
        if (static_cast<int>(spec.code.size()) == dim) {
          auto z = torch::tensor(spec.code, torch::kFloat32).reshape({1, dim});
          if (spec.block_codes.empty()) {
            s.codes = LatentPlan::uniform(z, st.blocks());
          } else if (static_cast<int>(spec.block_codes.size()) == st.blocks()) {
            for (const auto& c : spec.block_codes)
              if (static_cast<int>(c.size()) == dim)
                s.codes.latents.push_back(torch::tensor(c, torch::kFloat32).reshape({1, dim}));
            if (s.codes.size() != st.blocks()) s.codes = LatentPlan();
            else setOffsetValues(s.codes, spec.block_offsets, st.model.style_widths, field);
          }
        }
        break;
      default: throw Error(field + ": the editor keeps photos and codes only (this source is " + spec.describe() + ")");
    }
    // Cached codes of the same model win: they may be refined, or a kept sample's per-block codes.
    if (v.contains("codes") && v["codes"].is_object() && v["codes"].value("model", std::string()) == model.identity) {
      const auto& c = v["codes"];
      if (c.contains("blocks") && c["blocks"].is_array() && static_cast<int>(c["blocks"].size()) == st.blocks()) {
        LatentPlan codes;
        for (size_t b = 0; b < c["blocks"].size(); ++b)
          codes.latents.push_back(codeFromJson(c["blocks"][b], dim, field + " codes"));
        if (c.contains("offsets"))
          setOffsetValues(codes, offsetValuesFromJson(c["offsets"], field + " codes"), st.model.style_widths,
                          field + " codes");
        s.codes = codes;
      }
      if (c.contains("z")) s.z = codeFromJson(c["z"], dim, field + " z");
    }
    // A code of another model (a kept sample, a pasted image) is encoded again from its picture.
    if (v.contains("model") && v["model"].is_string() && v["model"].get<std::string>() != model.identity &&
        s.picture.defined())
      s.codes = LatentPlan();
    if (!s.hasCodes()) s.refine = nullptr;  // codes of another model: encoded (and refined) again
    index[name] = static_cast<int>(st.sources.size());
    st.sources.push_back(std::move(s));
  }
  // Per-block weights from the assignments (later ones win) over the base.
  st.weights.assign(static_cast<size_t>(st.blocks()), std::vector<double>(st.sources.size(), 0.0));
  auto indexOfName = [&](const std::string& name, const std::string& field) {
    auto it = index.find(name);
    if (it == index.end()) throw Error(where + ": " + field + " names '" + name + "', which is not one of its sources");
    return it->second;
  };
  if (!st.sources.empty()) {
    const int base = indexOfName(recipe.base, "base");
    for (auto& row : st.weights) row[base] = 1.0;
    for (size_t k = 0; k < recipe.assignments.size(); ++k) {
      const auto& a = recipe.assignments[k];
      const auto ranges = parseBlockRanges(a.scales, model.layout);
      std::vector<double> row(st.sources.size(), 0.0);
      for (const auto& w : a.sources) row[indexOfName(w.source, "assignments")] += w.weight;
      for (const auto& r : ranges)
        for (int b = r.first; b <= r.last; ++b) st.weights[b] = row;
    }
  }
  if (!recipe.attributes.empty()) {
    const auto& e = recipe.attributes.front();
    EditAttribute a;
    a.vector = e.inline_attribute ? *e.inline_attribute : AttributeVector::load(e.file);
    if (!e.scales.empty()) a.vector.ranges = parseBlockRanges(e.scales, model.layout);
    a.strength = e.strength;
    st.attribute = a;
  }
  if (recipe.morph) {
    st.morph.a = index.count(recipe.morph->a) ? index[recipe.morph->a] : 0;
    st.morph.b = index.count(recipe.morph->b) ? index[recipe.morph->b] : 1;
    st.morph.scales = recipe.morph->scales;
    st.morph.t = recipe.morph->t;
    st.morph.frames = recipe.morph->frames;
    st.morph.fps = recipe.morph->fps;
  }
  return st;
}

std::vector<BlockRange> carryRanges(const std::vector<BlockRange>& ranges, const BlockLayout& from,
                                    const BlockLayout& to) {
  std::vector<int> blocks;
  std::vector<bool> done(static_cast<size_t>(from.size()), false);
  // Whole named scales map to the same scale of the other model.
  for (Scale scale : allScales()) {
    if (!hasScale(scale, from)) continue;
    const auto r = scaleRange(scale, from);
    bool whole = true;
    for (int b = r.first; b <= r.last; ++b) whole = whole && rangesContain(ranges, b);
    if (!whole) continue;
    for (int b = r.first; b <= r.last; ++b) done[b] = true;
    if (!hasScale(scale, to)) continue;
    const auto t = scaleRange(scale, to);
    for (int b = t.first; b <= t.last; ++b) blocks.push_back(b);
  }
  // Other blocks map to the blocks of the same resolution.
  for (int b = 0; b < from.size(); ++b) {
    if (done[b] || !rangesContain(ranges, b)) continue;
    for (int k = 0; k < to.size(); ++k)
      if (to.resolutions[k] == from.resolutions[b]) blocks.push_back(k);
  }
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  std::vector<BlockRange> out;
  for (int b : blocks) {
    if (!out.empty() && out.back().last + 1 == b)
      out.back().last = b;
    else
      out.push_back({b, b});
  }
  return out;
}

EditState rebind(const EditState& state, const ModelBinding& model) {
  EditState st = state;
  st.model = model;
  const bool same = !model.identity.empty() && model.identity == state.model.identity &&
                    model.layout == state.model.layout;
  if (!same) {
    for (auto& s : st.sources) {
      s.codes = LatentPlan();
      s.z = torch::Tensor();
      s.reconstruction = torch::Tensor();
      s.refine = nullptr;
      s.psnr = s.ssim = std::numeric_limits<double>::quiet_NaN();
    }
    // Weights block by block: a block of the same resolution, else the first block of the same named scale,
    // else the nearest coarser block.
    const auto& from = state.model.layout;
    const auto& to = model.layout;
    std::vector<std::vector<double>> w;
    for (int b = 0; b < to.size(); ++b) {
      int k = -1;
      for (int i = 0; i < from.size() && k < 0; ++i)
        if (from.resolutions[i] == to.resolutions[b]) k = i;
      if (k < 0)
        for (Scale scale : allScales())
          if (hasScale(scale, to) && scaleRange(scale, to).contains(b) && hasScale(scale, from)) k = scaleRange(scale, from).first;
      if (k < 0) k = std::min(b, from.size() - 1);
      w.push_back(k >= 0 && k < static_cast<int>(state.weights.size()) ? state.weights[k]
                                                                       : std::vector<double>(st.sources.size(), 0.0));
    }
    st.weights = w;
    if (st.attribute) {
      st.attribute->vector.ranges = carryRanges(state.attribute->vector.ranges, from, to);
      st.attribute->vector.vector = torch::Tensor();  // rebuildAttribute with the new model
    }
    // Named scales keep their meaning; block ranges are carried like the attribute's.
    if (!st.morph.scales.empty()) {
      try {
        parseBlockRanges(st.morph.scales, to);
      } catch (const Error&) {
        st.morph.scales = rangesToString(carryRanges(parseBlockRanges(state.morph.scales, from), from, to));
      }
    }
  }
  st.normaliseWeights();
  return st;
}

std::vector<uint64_t> sourcesToEncode(const EditState& state) {
  std::vector<uint64_t> out;
  for (const auto& s : state.sources)
    if (s.codes.size() != state.blocks()) out.push_back(s.id);
  return out;
}

RefineOptions editorRefinement(int steps) {
  RefineOptions o;
  // 100 steps with style offsets (RefineOptions' defaults): +4.4 dB on the bundled model's held-out
  // faces, editability kept (docs/refinement.md).
  o.steps = steps > 0 ? steps : 100;
  return o;
}

namespace {

// PSNR and SSIM of a reconstruction against its picture (both uint8 [S, S, C]).
std::pair<double, double> pictureQuality(const torch::Tensor& picture, const torch::Tensor& reconstruction) {
  const auto a = picture.permute({2, 0, 1}).unsqueeze(0), b = reconstruction.permute({2, 0, 1}).unsqueeze(0);
  return {psnr(a, b), ssim(a, b)};
}

}  // namespace

EncodedPicture encodePicture(Automodulator& model, const torch::Tensor& picture) {
  torch::NoGradGuard no_grad;
  EncodedPicture e;
  e.picture = picture;
  auto z = model.encode(toModelInput(picture).to(model.device()));
  e.reconstruction = toImage(model.decode(z).cpu()).squeeze(0);
  e.z = z.cpu();
  std::tie(e.psnr, e.ssim) = pictureQuality(picture, e.reconstruction);
  return e;
}

bool refineSource(Automodulator& model, EditSource& source, const RefineOptions& options,
                  const std::function<bool(int step, int steps)>& progress) {
  if (!source.picture.defined()) throw Error(source.name + " has no picture to refine against");
  const auto images = toModelInput(source.picture).to(model.device());
  torch::Tensor z;
  {
    torch::NoGradGuard no_grad;
    z = source.z.defined() ? source.z.to(model.device()) : model.encode(images);
  }
  auto result = refineCodes(model, images, z, options, progress);
  if (result.cancelled) return false;
  torch::NoGradGuard no_grad;
  source.codes = result.codes.to(torch::kCPU);
  source.z = z.cpu();
  source.refine = options.toJson();
  source.refine["steps"] = result.steps_run;
  source.reconstruction = toImage(model.decode(result.codes).cpu()).squeeze(0);
  std::tie(source.psnr, source.ssim) = pictureQuality(source.picture, source.reconstruction);
  return true;
}

void encodeSource(Automodulator& model, EditSource& source, const PhotoOptions& options) {
  encodeSourcePicture(model, source, sourcePicture(model, source, options));
}

EditAttribute rebuildAttribute(Automodulator& model, const EditAttribute& attribute, const BlockLayout& from,
                               const PhotoOptions& options) {
  SourceCache cache(model, options);
  auto encodeAll = [&](const std::vector<std::string>& files) {
    std::vector<torch::Tensor> out;
    for (const auto& f : files) {
      if (!fs::is_regular_file(f)) continue;
      try {
        out.push_back(cache.latent(SourceSpec::photo(f)));
      } catch (const std::exception&) {
        // An exemplar that no longer reads is left out; attributeFromLatents says when too few remain.
      }
    }
    return out;
  };
  const auto pos = encodeAll(attribute.vector.positives), neg = encodeAll(attribute.vector.negatives);
  const auto layout = BlockLayout::of(model);
  auto ranges = carryRanges(attribute.vector.ranges, from, layout);
  if (ranges.empty()) ranges = attribute.vector.ranges;
  EditAttribute out = attribute;
  out.vector = attributeFromLatents(model, pos, neg, ranges, attribute.vector.name);
  out.vector.positives = attribute.vector.positives;
  out.vector.negatives = attribute.vector.negatives;
  return out;
}

}  // namespace automod
