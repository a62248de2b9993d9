#pragma once
// The editor's main window: photo strip, tabs, menus, status bar. All logic is in the controller
// and the document; the window wires widgets to them and shows errors with their reason.
#include <QLabel>
#include <QMainWindow>
#include <QTabWidget>

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
  /// The last message shown in the status bar (errors included).
  QString lastMessage() const { return last_message_; }
  /// The face picker on screen (a photo with several faces), or null.
  FacePicker* facePicker() const { return face_picker_; }
  QAction* exportPastedAction() const { return export_pasted_action_; }
  QAction* exportGridAction() const { return export_grid_action_; }
  QAction* copyAction() const { return copy_action_; }

  void openStartupFiles(const QString& model, const QStringList& files);
  bool openProject(const QString& path);
  bool saveProject(const QString& path);
  /// Waits until the photos are encoded and the mix decoded, then saves one PNG per tab into
  /// `dir` (mix.png, sample.png, attributes.png, morph.png, ...) and emits screenshotsTaken (packaging/screenshots.sh).
  void takeScreenshots(const QString& dir);

 Q_SIGNALS:
  void screenshotsTaken(bool ok);

 public:

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  /// The Train tab's screenshot, during a short tiny-preset run; emits screenshotsTaken(ok && saved).
  void grabTrainingTab(const QString& dir, bool ok);
  void createActions();
  void updateActions();
  void updateTitle();
  void showMessage(const QString& text, int timeout_ms = 0);
  void openPhotosDialog();
  void openModelDialog();
  void openModelFile(const QString& path);
  void rebuildRecentMenu();
  void paste();
  void exportResult();
  void exportPastedBack();
  void exportGrid();
  void copyResult();
  void showNextFacePicker();
  void saveProjectAs();
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
  QMenu* recent_menu_ = nullptr;
  QAction* save_action_ = nullptr;
  QAction* export_action_ = nullptr;
  QAction* copy_action_ = nullptr;
  QAction* export_pasted_action_ = nullptr;
  QAction* export_grid_action_ = nullptr;
  FacePicker* face_picker_ = nullptr;
  QStringList face_queue_;  // photos waiting for the picker (one dialog at a time)
  QString last_message_;
};

}  // namespace automod::ui
