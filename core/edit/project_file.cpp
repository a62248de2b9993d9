#include "core/edit/project_file.h"

#include <fstream>

#include "core/util/error.h"
#include "core/util/json_limits.h"

namespace automod {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// The view section of the second format (an "editor" section with its own copy of every source and
/// weight): only what the third format keeps there. Its codes belong to an unknown model, so photos
/// are encoded again and inline codes come from the recipe.
json viewFromSecondFormat(const json& editor) {
  json sources = json::array();
  if (editor.contains("sources") && editor["sources"].is_array()) {
    int k = 0;
    for (const auto& s : editor["sources"]) {
      if (!s.is_object()) continue;
      json v = {{"source", Recipe::sourceName(k++)}};
      for (const char* key : {"name", "note"})
        if (s.contains(key) && s[key].is_string()) v[key] = s[key];
      if (s.contains("aligned_png") && s["aligned_png"].is_string()) v["picture_png"] = s["aligned_png"];
      if (s.contains("reconstruction_png") && s["reconstruction_png"].is_string())
        v["reconstruction_png"] = s["reconstruction_png"];
      sources.push_back(v);
    }
  }
  return {{"format", "automod-studio-view"}, {"version", 3}, {"sources", sources}};
}

/// A first-format project (the editor's state alone, before projects were recipes) as a recipe with
/// a view section: its sources (photo files, else their codes) and per-block weights.
std::pair<Recipe, json> fromFirstFormat(const json& root) {
  Recipe r;
  const auto& list = root.contains("sources") && root["sources"].is_array() ? root["sources"] : json::array();
  int k = 0;
  for (const auto& s : list) {
    if (!s.is_object()) throw Error("the project: a source is not an object");
    const std::string name = Recipe::sourceName(k++);
    const std::string path = s.value("path", std::string());
    if (s.value("from_photo", false) && !path.empty() && fs::is_regular_file(path)) {
      const int face = s.value("face", -1);
      r.sources[name] = face >= 0 ? SourceSpec::photo(path, face) : SourceSpec::centerCropped(path);
    } else {
      std::vector<float> z;
      if (s.contains("latent") && s["latent"].is_array())
        for (const auto& x : s["latent"]) z.push_back(jsonFloat(x, "the project", "latent"));
      if (z.empty()) throw Error("the project: source " + s.value("name", name) + " has no code");
      r.sources[name] = SourceSpec::inlineCode(z);
    }
  }
  r.base = k > 0 ? Recipe::sourceName(0) : Recipe::kInput;
  if (root.contains("mix") && root["mix"].contains("block_weights") && root["mix"]["block_weights"].is_array()) {
    const auto& rows = root["mix"]["block_weights"];
    for (size_t b = 0; b < rows.size(); ++b) {
      if (!rows[b].is_array()) continue;
      Recipe::Assignment a;
      a.scales = std::to_string(b);
      for (size_t i = 0; i < rows[b].size() && static_cast<int>(i) < k; ++i) {
        const double w = rows[b][i].is_number() ? rows[b][i].get<double>() : 0.0;
        if (w > 0) a.sources.push_back({Recipe::sourceName(static_cast<int>(i)), w});
      }
      if (!a.sources.empty()) r.assignments.push_back(a);
    }
  }
  return {r, viewFromSecondFormat(root)};
}

}  // namespace

ProjectFile parseProject(const json& root, const fs::path& dir) try {
  ProjectFile p;
  if (root.is_object() && root.value("kind", std::string()) == "automod-recipe") {
    p.recipe = Recipe::fromJson(root, dir, "the project");
    if (!p.recipe.editor.is_object()) throw Error("this recipe was not saved by the editor (run it with automod apply)");
    p.view = p.recipe.editor.value("format", std::string()) == "automod-studio-project" ? viewFromSecondFormat(p.recipe.editor)
                                                                                       : p.recipe.editor;
  } else if (root.is_object() && root.value("format", std::string()) == "automod-studio-project") {
    std::tie(p.recipe, p.view) = fromFirstFormat(root);
  } else {
    throw Error("not an Automodulator Studio project");
  }
  return p;
} catch (const json::exception& e) {
  // A value of the wrong type anywhere (a null "path", a number for a name): one sentence, as for
  // any other malformed project.
  throw Error(std::string("the project is malformed: ") + e.what());
}

ProjectFile readProjectFile(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw Error("cannot read " + path.string() + ": no such file or no permission");
  const json root = parseJsonLimited(f, "the project");
  return parseProject(root, fs::absolute(path).parent_path());
}

}  // namespace automod
