#pragma once
// An editor project file read into what core's EditState is made from: its recipe and the editor's
// view section (docs/editor-architecture.md). Three formats open: the current one (a recipe whose
// "editor" section is the view), the second (a recipe with an "editor" section holding its own copy
// of every source and weight: only its view-only parts are kept) and the first (the editor's state
// alone, before projects were recipes: converted to a recipe). Binding the result to a model is
// EditState::fromRecipe.
#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/edit/recipe.h"

namespace automod {

struct ProjectFile {
  Recipe recipe;
  /// The view section (format "automod-studio-view"): per source its name, note, pictures, codes.
  nlohmann::json view;
};

/// Reads a project from `root` (its JSON) saved in folder `dir` (relative paths resolve there).
/// Throws automod::Error with one sentence for anything that is not a project the editor can show: a
/// recipe not saved by the editor, another JSON file, a malformed source or weight.
ProjectFile parseProject(const nlohmann::json& root, const std::filesystem::path& dir);
/// The same from a file (size- and depth-limited JSON).
ProjectFile readProjectFile(const std::filesystem::path& path);

}  // namespace automod
