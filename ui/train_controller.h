#pragma once
// Drives a training run from the Train tab: the Trainer runs in its own thread; progress, previews
// and messages come back as values (queued signals); pause/resume/stop are thread-safe; the
// destructor stops (the trainer checkpoints latest.amod) and waits.
#include <QFuture>
#include <QImage>
#include <QMetaType>
#include <QMutex>
#include <QObject>
#include <QStringList>

#include <memory>

namespace automod {
class Trainer;
}

namespace automod::ui {

struct TrainRequest {
  enum Data { Folder, Faces, FashionMnist } data = Faces;
  QString folder;       ///< Folder: the image folder
  int faces = 200;      ///< Faces: how many synthetic faces
  QString preset = "tiny";
  QString outDir;
  qint64 maxImages = 0;  ///< 0 = the preset's length
  quint64 seed = 0;
  /// Continue the run in outDir, or replace it (removing its checkpoints); a folder that holds a
  /// run is refused otherwise (training/run_folder.h).
  bool resume = false;
  bool overwrite = false;
};

struct TrainProgressInfo {
  qint64 imagesSeen = 0, targetImages = 0, iteration = 0;
  int phase = 0, resolution = 4;
  double alpha = 1, encoderLoss = 0, decoderLoss = 0, imagesPerSecond = 0, etaSeconds = -1;
};

struct TrainPreviewImages {
  qint64 imagesSeen = 0;
  QImage samples, reconstructions, mixes;
};

class TrainController : public QObject {
  Q_OBJECT
 public:
  enum State { Idle, Preparing, Running, Paused, Finished, Stopped, Failed };
  Q_ENUM(State)

  explicit TrainController(QObject* parent = nullptr);
  ~TrainController() override;

  static QStringList presets();
  State state() const { return state_; }
  bool isActive() const { return state_ == Preparing || state_ == Running || state_ == Paused; }
  QString errorString() const { return error_; }
  /// The run's latest.amod once it finished or stopped.
  QString latestModel() const { return latest_; }

  bool start(const TrainRequest& request);
  void pause();
  void resume();
  /// Asks the run to stop (it checkpoints first); finished() follows.
  void stop();
  /// stop() and wait for the thread.
  void stopAndWait();

 Q_SIGNALS:
  void stateChanged(automod::ui::TrainController::State state);
  void progress(const automod::ui::TrainProgressInfo& info);
  void preview(const automod::ui::TrainPreviewImages& images);
  void message(const QString& text);
  void finished(automod::ui::TrainController::State state, const QString& latestModel, const QString& error);

 private:
  void setState(State s);
  void run(TrainRequest request);

  State state_ = Idle;
  QString error_, latest_;
  QFuture<void> future_;
  QMutex mutex_;
  Trainer* trainer_ = nullptr;  // valid while a run is active, under mutex_
  bool stop_requested_ = false;
};

}  // namespace automod::ui

Q_DECLARE_METATYPE(automod::ui::TrainProgressInfo)
Q_DECLARE_METATYPE(automod::ui::TrainPreviewImages)
