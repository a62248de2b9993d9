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
  QTabWidget* tabs() const { return tabs_; }
  /// The last message shown in the status bar (errors included).
  QString lastMessage() const { return last_message_; }

  void openStartupFiles(const QString& model, const QStringList& files);
  bool openProject(const QString& path);
  bool saveProject(const QString& path);
  /// Waits until the photos are encoded and the mix decoded, then saves one PNG per tab into
  /// `dir` (mix.png, sample.png, ...) and emits screenshotsTaken (packaging/screenshots.sh).
  void takeScreenshots(const QString& dir);

 Q_SIGNALS:
  void screenshotsTaken(bool ok);

 public:

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
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
  void copyResult();
  void saveProjectAs();
  void showModelInfo();
  void showAbout();

  StudioController* controller_;
  PhotoStrip* strip_;
  QTabWidget* tabs_;
  MixTab* mix_;
  TrainTab* train_;
  SampleTab* sample_;
  QLabel* device_label_;
  QLabel* timing_label_;
  QMenu* recent_menu_ = nullptr;
  QAction* save_action_ = nullptr;
  QAction* export_action_ = nullptr;
  QAction* copy_action_ = nullptr;
  QString last_message_;
};

}  // namespace automod::ui
