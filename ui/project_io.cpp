#include <torch/torch.h>

#include "ui/project_io.h"

#include <QFileInfo>
#include <QSaveFile>
#include <QSettings>

#include <fstream>

#include "core/edit/edit_state.h"
#include "core/edit/project_file.h"
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
    auto [recipe, view] = readProjectFile(path.toStdString());
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
