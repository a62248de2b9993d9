#pragma once
// The Train tab: data (folder, synthetic faces, Fashion-MNIST), preset, output folder; start /
// pause / resume / stop; progress with ETA, a live loss chart, preview grids, the log, and
// "Open in Editor" for a finished or stopped run.
#include <QWidget>

#include "ui/train_controller.h"

class QComboBox;
class QLineEdit;
class QPushButton;
class QProgressBar;
class QPlainTextEdit;
class QLabel;
class QSpinBox;
class QLineSeries;
class QValueAxis;
class QChart;

namespace automod::ui {

class TrainTab : public QWidget {
  Q_OBJECT
 public:
  explicit TrainTab(QWidget* parent = nullptr);
  TrainController* controller() { return &controller_; }

  QComboBox* dataCombo() const { return data_; }
  QComboBox* presetCombo() const { return preset_; }
  QLineEdit* folderEdit() const { return folder_; }
  QLineEdit* outputEdit() const { return out_; }
  QSpinBox* maxImagesSpin() const { return max_images_; }
  QPushButton* startButton() const { return start_; }
  QPushButton* pauseButton() const { return pause_; }
  QPushButton* stopButton() const { return stop_; }
  QPushButton* openButton() const { return open_; }
  /// A fresh run folder for the current preset and data (the output field's text until the user
  /// edits it; every new run gets one).
  QString proposedRunFolder() const;
  /// What Start does with an output folder that holds another run; tests set it instead of
  /// answering the question.
  enum class ExistingRun { Ask, Resume, NewFolder, Cancel };
  void setExistingRunChoice(ExistingRun choice) { existing_choice_ = choice; }
  QProgressBar* progressBar() const { return progress_; }
  int lossPoints() const;

 Q_SIGNALS:
  void openModelRequested(const QString& path);

 private:
  void startTraining();
  void updateButtons();
  /// The form, in parts.
  QWidget* createForm();
  QLayout* createButtons();
  QLayout* createMonitor();
  /// Proposes a fresh output folder unless the user typed one.
  void proposeOutput();
  void onProgress(const TrainProgressInfo& info);
  void onPreview(const TrainPreviewImages& images);
  void log(const QString& text);

  TrainController controller_;
  QComboBox* data_;
  QLineEdit* folder_;
  QSpinBox* faces_;
  QComboBox* preset_;
  QLineEdit* out_;
  QSpinBox* max_images_;
  QPushButton *start_, *pause_, *stop_, *open_;
  QProgressBar* progress_;
  QLabel* status_;
  QLabel *samples_, *recons_, *mixes_;
  QPlainTextEdit* log_;
  QLineSeries *enc_series_, *dec_series_;
  QValueAxis *axis_x_, *axis_y_;
  double y_min_ = 0, y_max_ = 1;
  bool out_edited_ = false;
  ExistingRun existing_choice_ = ExistingRun::Ask;
};

}  // namespace automod::ui
