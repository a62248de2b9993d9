#include <torch/torch.h>

#include "ui/project_io.h"

#include <QFileInfo>
#include <QSaveFile>
#include <QSettings>

#include <fstream>

#include "core/edit/edit_state.h"
#include "core/edit/recipe.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "core/util/json_limits.h"
#include "ui/studio_controller.h"
#include "ui/tensor_image.h"

namespace automod::ui {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr int kMaxRecent = 8;

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

bool samePath(const QString& a, const QString& b) {
  if (a.isEmpty() || b.isEmpty()) return false;
  const QFileInfo fa(a), fb(b);
  return fa.canonicalFilePath().isEmpty() ? fa.absoluteFilePath() == fb.absoluteFilePath()
                                          : fa.canonicalFilePath() == fb.canonicalFilePath();
}
}  // namespace

ProjectIO::ProjectIO(StudioController* controller) : QObject(controller), controller_(controller) {}

bool ProjectIO::save(const QString& path, QString* error) {
  try {
    if (!controller_->hasModel()) throw Error("no model is loaded");
    const auto& state = controller_->document()->state();
    Recipe r = state.toRecipe();
    r.editor = state.viewJson(toPngBase64);
    const auto text = r.toJson(QFileInfo(path).absolutePath().toStdString()).dump(1);
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly) || file.write(text.data(), qint64(text.size())) != qint64(text.size()) ||
        !file.commit())
      throw Error("cannot write " + path.toStdString() + ": " + file.errorString().toStdString());
    controller_->document()->setFilePath(path);
    controller_->document()->setSaved();
    remember(path);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return false;
  }
}

bool ProjectIO::open(const QString& path, QString* error) {
  try {
    std::ifstream f(path.toStdString());
    if (!f) throw Error("cannot read " + path.toStdString() + ": no such file or no permission");
    const json root = parseJsonLimited(f, "the project");
    Recipe recipe;
    json view;
    if (root.is_object() && root.value("kind", std::string()) == "automod-recipe") {
      recipe = Recipe::fromJson(root, fs::absolute(path.toStdString()).parent_path(), "the project");
      if (!recipe.editor.is_object())
        throw Error("this recipe was not saved by the editor (run it with automod apply)");
      view = recipe.editor.value("format", std::string()) == "automod-studio-project" ? viewFromSecondFormat(recipe.editor)
                                                                                     : recipe.editor;
    } else if (root.is_object() && root.value("format", std::string()) == "automod-studio-project") {
      std::tie(recipe, view) = fromFirstFormat(root);
    } else {
      throw Error("not an Automodulator Studio project");
    }
    // The model the project names, unless it is the current one.
    const QString model = QString::fromStdString(recipe.model.string());
    if (!model.isEmpty() && !samePath(model, controller_->modelPath())) {
      QString use = QFileInfo(model).isFile() ? model : (locate_ ? locate_(model) : QString());
      if (use.isEmpty() && !QFileInfo(model).isFile())
        Q_EMIT message(tr("The project's model %1 is missing: its photos are encoded by %2")
                           .arg(QFileInfo(model).fileName(), controller_->modelName()));
      if (!use.isEmpty()) {
        QString why;
        if (!controller_->openModel(use, &why)) throw Error("cannot open the project's model " + use.toStdString() + ": " + why.toStdString());
      }
    }
    if (!controller_->hasModel()) throw Error("no model is loaded");
    const auto& binding = controller_->document()->state().model;
    if (recipe.resolution && recipe.resolution != binding.resolution) {
      // Made for another size: its weights are carried over by named scale, like a model change.
      Recipe at_own = recipe;
      ModelBinding own;
      own.layout = BlockLayout::forResolution(recipe.resolution, false);
      own.resolution = recipe.resolution;
      own.latent_dim = binding.latent_dim;
      own.channels = binding.channels;
      controller_->replaceState(rebind(EditState::fromRecipe(at_own, view, own, fromPngBase64), binding));
    } else {
      controller_->replaceState(EditState::fromRecipe(recipe, view, binding, fromPngBase64));
    }
    controller_->document()->setFilePath(path);
    controller_->document()->setSaved();
    remember(path);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return false;
  }
}

QStringList ProjectIO::recentProjects() const {
  QStringList out;
  for (const auto& p : QSettings().value("recentProjects").toStringList())
    if (QFileInfo(p).isFile()) out << p;
  return out;
}

void ProjectIO::clearRecentProjects() {
  QSettings().remove("recentProjects");
  Q_EMIT recentProjectsChanged();
}

void ProjectIO::remember(const QString& path) {
  QSettings settings;
  auto recent = settings.value("recentProjects").toStringList();
  const QString absolute = QFileInfo(path).absoluteFilePath();
  recent.removeAll(absolute);
  recent.prepend(absolute);
  while (recent.size() > kMaxRecent) recent.removeLast();
  settings.setValue("recentProjects", recent);
  Q_EMIT recentProjectsChanged();
}

}  // namespace automod::ui
