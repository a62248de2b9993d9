#pragma once
// Project files: a project *is* the recipe of the document's state (core's EditState::toRecipe, what
// `automod apply --recipe` replays) plus the editor's view-only section (names, pictures, figures
// and the codes already computed, so that a project reopens without encoding or refining again).
// Opening a project opens the model it names (asking where it is when the file is missing). Projects
// of the two earlier formats still open.
#include <QObject>
#include <QStringList>

#include <functional>

namespace automod::ui {

class StudioController;

class ProjectIO : public QObject {
  Q_OBJECT
 public:
  explicit ProjectIO(StudioController* controller);

  /// Saves the document as a project (written atomically) and marks it saved.
  bool save(const QString& path, QString* error = nullptr);
  /// Opens a project: its model first (unless it is the current one), then its sources, mix,
  /// attribute and morph; sources its cached codes do not cover are encoded in the background.
  /// Nothing changes when it cannot be opened, and `error` says why.
  bool open(const QString& path, QString* error = nullptr);

  /// Asked when a project names a model file that does not exist: return another path to use, or an
  /// empty string to keep the current model (the photos are encoded by it). Unset: keep the current one.
  void setModelLocator(std::function<QString(const QString& missing)> locate) { locate_ = std::move(locate); }

  /// The projects opened or saved last, newest first (File → Recent Projects).
  QStringList recentProjects() const;
  void clearRecentProjects();

 Q_SIGNALS:
  void recentProjectsChanged();
  /// A line for the status bar (the model a project named was missing, say).
  void message(const QString& text);

 private:
  void remember(const QString& path);
  StudioController* controller_;
  std::function<QString(const QString&)> locate_;
};

}  // namespace automod::ui
