#include <torch/torch.h>

#include "ui/train_controller.h"

#include <QMutexLocker>
#include <QtConcurrent>

#include "core/util/device.h"
#include "core/util/error.h"
#include "training/data.h"
#include "training/schedule.h"
#include "training/trainer.h"
#include "ui/tensor_image.h"

namespace automod::ui {

TrainController::TrainController(QObject* parent) : QObject(parent) {
  qRegisterMetaType<automod::ui::TrainProgressInfo>();
  qRegisterMetaType<automod::ui::TrainPreviewImages>();
}

TrainController::~TrainController() { stopAndWait(); }

QStringList TrainController::presets() {
  QStringList out;
  try {
    for (const auto& p : listPresets()) out << QString::fromStdString(p);
  } catch (const std::exception&) {
  }
  return out;
}

void TrainController::setState(State s) {
  if (state_ == s) return;
  state_ = s;
  Q_EMIT stateChanged(s);
}

bool TrainController::start(const TrainRequest& request) {
  if (isActive()) return false;
  if (request.outDir.isEmpty()) {
    error_ = tr("choose an output folder");
    setState(Failed);
    Q_EMIT finished(Failed, {}, error_);
    return false;
  }
  error_.clear();
  latest_.clear();
  stop_requested_ = false;
  setState(Preparing);
  future_ = QtConcurrent::run([this, request] { run(request); });
  return true;
}

void TrainController::pause() {
  QMutexLocker lock(&mutex_);
  if (trainer_ && state_ == Running) {
    trainer_->pause();
    lock.unlock();
    setState(Paused);
  }
}

void TrainController::resume() {
  QMutexLocker lock(&mutex_);
  if (trainer_ && state_ == Paused) {
    trainer_->resume();
    lock.unlock();
    setState(Running);
  }
}

void TrainController::stop() {
  QMutexLocker lock(&mutex_);
  stop_requested_ = true;
  if (trainer_) {
    trainer_->resume();
    trainer_->stop();
  }
}

void TrainController::stopAndWait() {
  stop();
  future_.waitForFinished();
}

void TrainController::run(TrainRequest request) {
  TrainingResult result;
  result.status = TrainingResult::Failed;
  try {
    auto preset = loadPreset(request.preset.toStdString());
    DataSpec spec;
    spec.kind = request.data == TrainRequest::Folder   ? DataSpec::Folder
                : request.data == TrainRequest::Faces ? DataSpec::Faces
                                                      : DataSpec::FashionMnist;
    spec.path = request.folder.toStdString();
    spec.count = request.data == TrainRequest::Faces ? request.faces : 0;
    spec.seed = request.seed;
    spec.max_resolution = preset.resolution;
    spec.channels = request.data == TrainRequest::FashionMnist ? 1 : 3;
    Q_EMIT message(tr("Opening the data…"));
    std::shared_ptr<ImageDataset> data = openDataset(spec);
    Q_EMIT message(QString::fromStdString(data->describe()));

    TrainerConfig config;
    config.preset = preset;
    config.run_dir = request.outDir.toStdString();
    config.seed = request.seed;
    config.max_images = request.maxImages;
    config.resume = request.resume;
    config.overwrite = request.overwrite;
    config.device = resolveDevice("auto");
    Trainer trainer(config, data);
    trainer.onProgress([this](const TrainingProgress& p) {
      TrainProgressInfo info;
      info.imagesSeen = p.images_seen;
      info.targetImages = p.target_images;
      info.iteration = p.iteration;
      info.phase = p.phase;
      info.resolution = p.resolution;
      info.alpha = p.alpha;
      info.encoderLoss = p.losses.encoder_total;
      info.decoderLoss = p.losses.decoder_total;
      info.imagesPerSecond = p.images_per_second;
      info.etaSeconds = p.eta_seconds;
      Q_EMIT progress(info);
    });
    trainer.onPreview([this](const TrainingPreview& p) {
      TrainPreviewImages images;
      images.imagesSeen = p.images_seen;
      if (p.samples.defined()) images.samples = toQImage(p.samples);
      if (p.reconstructions.defined()) images.reconstructions = toQImage(p.reconstructions);
      if (p.mixes.defined()) images.mixes = toQImage(p.mixes);
      Q_EMIT preview(images);
    });
    trainer.onMessage([this](const std::string& m) { Q_EMIT message(QString::fromStdString(m)); });
    {
      QMutexLocker lock(&mutex_);
      trainer_ = &trainer;
      if (stop_requested_) trainer.stop();
    }
    QMetaObject::invokeMethod(this, [this] { if (state_ == Preparing) setState(Running); }, Qt::QueuedConnection);
    result = trainer.run();
    QMutexLocker lock(&mutex_);
    trainer_ = nullptr;
  } catch (const std::exception& e) {
    QMutexLocker lock(&mutex_);
    trainer_ = nullptr;
    result.error = errorMessage(e);
  }
  const State final_state = result.status == TrainingResult::Finished  ? Finished
                            : result.status == TrainingResult::Stopped ? Stopped
                                                                       : Failed;
  const QString latest = QString::fromStdString(result.latest.string());
  const QString error = QString::fromStdString(result.error);
  QMetaObject::invokeMethod(
      this,
      [this, final_state, latest, error] {
        latest_ = latest;
        error_ = error;
        setState(final_state);
        Q_EMIT finished(final_state, latest, error);
      },
      Qt::QueuedConnection);
}

}  // namespace automod::ui
