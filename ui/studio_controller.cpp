#include <torch/torch.h>

#include "ui/studio_controller.h"

#include <QDir>
#include <QFileInfo>
#include <QImageWriter>
#include <QStandardPaths>
#include <QTemporaryFile>
#include <QTimer>

#include "core/io/model_file.h"
#include "core/model/automodulator.h"
#include "core/util/device.h"
#include "core/util/error.h"
#include "ui/model_lookup.h"

namespace automod::ui {

StudioController::StudioController(QObject* parent) : QObject(parent) {
  connect(&worker_, &InferenceWorker::encoded, this, &StudioController::onEncoded);
  connect(&worker_, &InferenceWorker::decoded, this, &StudioController::onDecoded);
  connect(&worker_, &InferenceWorker::sampled, this, [this](const SampleResult& r) {
    if (r.request != latest_sample_request_) return;
    if (!r.error.isEmpty()) {
      Q_EMIT samplesFailed(r.error);
      return;
    }
    samples_ = r.images;
    Q_EMIT samplesReady(r.images, r.seed);
  });
  connect(&document_, &StudioDocument::mixChanged, this, &StudioController::scheduleDecode);
  connect(&document_, &StudioDocument::sourcesChanged, this, &StudioController::scheduleDecode);
}

StudioController::~StudioController() {
  for (const auto& f : temp_files_) QFile::remove(f);
}

bool StudioController::openModel(const QString& path, QString* error) {
  try {
    std::shared_ptr<Automodulator> model = loadModel(path.toStdString(), resolveDevice("auto"));
    setModel(std::move(model), QFileInfo(path).completeBaseName());
    model_path_ = path;
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return false;
  }
}

void StudioController::openDefaultModel() {
  const auto path = defaultModelFile();
  QString error;
  if (!path.isEmpty() && openModel(path, &error)) return;
  torch::manual_seed(0);
  auto model = std::make_shared<Automodulator>(ModelConfig::fromTable("cpu-128", 64), resolveDevice("auto"));
  model->metadata["untrained"] = true;
  setModel(std::move(model), tr("untrained 64 px model"));
  untrained_ = true;
}

void StudioController::setModel(std::shared_ptr<Automodulator> model, const QString& name) {
  model_ = std::move(model);
  model_name_ = name;
  model_path_.clear();
  untrained_ = model_ && model_->metadata.value("untrained", false);
  worker_.setModel(model_);
  // Latents of another model mean nothing here: start a fresh document.
  document_.clear();
  document_.setBlocks(model_ ? model_->numBlocks() : 0);
  result_ = preview_ = QImage();
  Q_EMIT modelChanged();
}

bool StudioController::hasModel() const { return model_ != nullptr; }
int StudioController::modelResolution() const { return model_ ? model_->resolution() : 0; }

QString StudioController::modelInfo() const {
  if (!model_) return tr("No model is loaded.");
  nlohmann::json j;
  j["config"] = model_->config().toJson();
  j["stage"] = model_->stage();
  j["resolution"] = model_->resolution();
  j["metadata"] = model_->metadata;
  return QString::fromStdString(j.dump(2));
}

QString StudioController::deviceName() const {
  return model_ ? QString::fromStdString(describeDevice(model_->device())) : QString();
}

void StudioController::addPhotos(const QStringList& paths, std::optional<Range> range) {
  for (const auto& p : paths) pending_.insert(worker_.requestEncode(p), range);
  Q_EMIT busyChanged(true);
}

void StudioController::addImage(const QImage& image) {
  QTemporaryFile file(QDir::tempPath() + "/automod-paste-XXXXXX.png");
  file.setAutoRemove(false);
  if (!file.open() || !image.save(&file, "PNG")) {
    Q_EMIT photoFailed(tr("pasted image"), tr("cannot write a temporary file"));
    return;
  }
  temp_files_ << file.fileName();
  addPhotos({file.fileName()});
}

void StudioController::onEncoded(const EncodeResult& r) {
  const auto range = pending_.take(r.id);
  if (!r.error.isEmpty()) {
    Q_EMIT photoFailed(r.source.path, r.error);
  } else {
    document_.addSource(r.source);
    const int index = document_.sources().size() - 1;
    if (range) document_.assignRange(*range, index);
    Q_EMIT photoAdded(index);
  }
  if (pending_.isEmpty()) Q_EMIT busyChanged(false);
}

void StudioController::scheduleDecode() {
  if (decode_scheduled_) return;
  decode_scheduled_ = true;
  // Several document signals from one action (or a burst of slider moves) make one request.
  QTimer::singleShot(0, this, [this] {
    decode_scheduled_ = false;
    if (!model_ || document_.sources().isEmpty()) return;
    latest_request_ = worker_.requestDecode(document_.latents(), document_.mix());
  });
}

void StudioController::onDecoded(const DecodeResult& r) {
  if (r.request != latest_request_) return;  // an older request finished late
  if (!r.error.isEmpty() || r.final) answered_request_ = r.request;
  if (!r.error.isEmpty()) {
    Q_EMIT decodeFailed(r.error);
    return;
  }
  if (!r.final) {
    preview_ = r.image;
    Q_EMIT previewReady(r.image);
    return;
  }
  result_ = r.image;
  last_decode_ms_ = r.ms;
  Q_EMIT resultReady(r.image);
}

void StudioController::requestSamples(int locked, quint64 seed, int count) {
  if (!model_) return;
  latest_sample_request_ = worker_.requestSamples(document_.latents(), document_.mix(), locked, seed, count);
}

bool StudioController::exportResult(const QString& path, QString* error) const {
  if (result_.isNull()) {
    if (error) *error = tr("there is no result yet");
    return false;
  }
  QImageWriter writer(path);
  if (!writer.write(result_)) {
    if (error) *error = writer.errorString();
    return false;
  }
  return true;
}

}  // namespace automod::ui
