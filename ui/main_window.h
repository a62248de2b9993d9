#pragma once
// The editor's main window: photo strip, tabs, menus, status bar. All logic is in the controller
// and the document; the window wires widgets to them and shows errors with their reason.
#include <QElapsedTimer>
#include <QLabel>
#include <QMainWindow>
#include <QMessageBox>
#include <QTabWidget>
#include <QUrl>

class QProgressBar;
class QToolButton;

#include <functional>

namespace automod::ui {

class StudioController;
class PhotoStrip;
class MixTab;
class TrainTab;
class SampleTab;
class AttributeTab;
class MorphTab;
class FacePicker;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  /// Without a controller the window makes its own (and opens the default model).
  explicit MainWindow(StudioController* controller = nullptr, QWidget* parent = nullptr);
  ~MainWindow() override;

  StudioController* controller() const { return controller_; }
  PhotoStrip* photoStrip() const { return strip_; }
  MixTab* mixTab() const { return mix_; }
  TrainTab* trainTab() const { return train_; }
  SampleTab* sampleTab() const { return sample_; }
  AttributeTab* attributeTab() const { return attributes_; }
  MorphTab* morphTab() const { return morph_; }
  QTabWidget* tabs() const { return tabs_; }
  /// How long a message without a timeout of its own (errors, notes) stays in the status bar.
  static constexpr int kLongMessageMs = 30000;
  /// The last message shown in the status bar (errors included).
  QString lastMessage() const { return last_message_; }
  /// The face picker on screen (a photo with several faces), or null.
  FacePicker* facePicker() const { return face_picker_; }
  QAction* exportPastedAction() const { return export_pasted_action_; }
  QAction* exportGridAction() const { return export_grid_action_; }
  QAction* copyAction() const { return copy_action_; }

  void openStartupFiles(const QString& model, const QStringList& files);
  /// Opens a project, replacing the current work after asking about unsaved changes.
  bool openProject(const QString& path);
  bool saveProject(const QString& path);
  /// File → New Project: empties the strip, the mix and the history (after asking).
  bool newProject();
  /// Opens a model file (Model → Open, recent models, the Train tab's "Open in Editor"): the photos
  /// stay and are encoded again; asks first when unsaved changes would lose their undo history.
  bool openModelFile(const QString& path);

  /// Model → Library: the dialog (shown, not modal); a chosen model opens in the editor. `base`
  /// replaces the authors' download address (tests: a loopback server).
  class ModelLibraryDialog* openModelLibrary(const QUrl& base = {});
  /// Model → Import Checkpoint: imports an authors' checkpoint into the library in the background
  /// (progress and errors in the status bar; nothing half-loaded), then opens it.
  void importCheckpoint(const QString& path);
  bool importRunning() const { return import_running_; }

  /// Before anything replaces the current work: when the document has unsaved changes, asks Save /
  /// Discard / Cancel (`consequence` says what will happen); Save saves (asking for a file name when
  /// the project has none). True when the caller may go on.
  bool maybeSave(const QString& consequence);
  /// Tests answer the unsaved-changes question instead of a dialog: the function gets the question's
  /// text and returns Save, Discard or Cancel. Save-as names come from `saveAsPath` then.
  void setUnsavedChangesAnswer(std::function<QMessageBox::StandardButton(const QString&)> answer,
                               std::function<QString()> saveAsPath = {});
  /// The photos of the last batch that could not be used ("name: why"), as the dialog listed them.
  QStringList lastFailureList() const { return last_failure_list_; }
  /// The side in pixels File → Export writes (0: the model's resolution); File → Export Size.
  int exportSide() const { return export_side_; }
  void setExportSide(int side);
  /// Waits until the photos are encoded and the mix decoded, then saves one PNG per tab into
  /// `dir` (mix.png, sample.png, attributes.png, morph.png, ...) and emits screenshotsTaken (packaging/screenshots.sh).
  void takeScreenshots(const QString& dir);

 Q_SIGNALS:
  void screenshotsTaken(bool ok);

 public:

 protected:
  void closeEvent(QCloseEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;

 private:
  /// The Train tab's screenshot, during a short tiny-preset run; emits screenshotsTaken(ok && saved).
  void grabTrainingTab(const QString& dir, bool ok);
  void createActions();
  void updateActions();
  void updateTitle();
  void showMessage(const QString& text, int timeout_ms = 0);
  void showElidedMessage(int timeout_ms);
  /// The last message in full (the status bar's "…" button).
  void showFullMessage();
  void openPhotosDialog();
  void openModelDialog();
  void openDefaultModel();
  void rebuildExportSizeMenu();
  void rebuildRecentMenu();
  void rebuildRecentProjectsMenu();
  void paste();
  void exportResult();
  void exportPastedBack();
  void exportGrid();
  void copyResult();
  void showNextFacePicker();
  bool saveProjectAs();
  void showModelInfo();
  void showAbout();

  StudioController* controller_;
  PhotoStrip* strip_;
  QTabWidget* tabs_;
  MixTab* mix_;
  TrainTab* train_;
  SampleTab* sample_;
  AttributeTab* attributes_;
  MorphTab* morph_;
  QLabel* device_label_;
  QLabel* timing_label_;
  QToolButton* more_button_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  QMenu* recent_projects_menu_ = nullptr;
  QAction* save_action_ = nullptr;
  QAction* export_action_ = nullptr;
  QAction* copy_action_ = nullptr;
  QAction* export_pasted_action_ = nullptr;
  QAction* export_grid_action_ = nullptr;
  FacePicker* face_picker_ = nullptr;
  QStringList face_queue_;  // photos waiting for the picker (one dialog at a time)
  QString last_message_;
  int message_timeout_ms_ = 0;
  QElapsedTimer message_clock_;
  QMenu* export_size_menu_ = nullptr;
  int export_side_ = 0;
  bool import_running_ = false;
  QStringList failed_photos_, last_failure_list_;
  QProgressBar* import_progress_ = nullptr;
  std::function<QMessageBox::StandardButton(const QString&)> unsaved_answer_;
  std::function<QString()> save_as_path_;
};

}  // namespace automod::ui
