#include <torch/torch.h>

#include "ui/studio_controller.h"

#include <QDir>
#include <QFileInfo>

#include "core/align/photo.h"
#include "core/edit/edit_state.h"
#include "core/edit/source_intake.h"
#include "core/io/default_model.h"
#include "core/io/model_file.h"
#include "core/model/automodulator.h"
#include "core/util/device.h"
#include "core/util/error.h"
#include "ui/attribute_controller.h"
#include "ui/morph_controller.h"
#include "ui/photo_intake.h"
#include "ui/project_io.h"
#include "ui/render_scheduler.h"
#include "ui/result_exporter.h"

namespace automod::ui {

StudioController::StudioController(QObject* parent)
    : QObject(parent),
      document_(new StudioDocument(this)),
      worker_(new InferenceWorker(this)),
      photos_(new PhotoIntake(this)),
      render_(new RenderScheduler(this)),
      morph_(new MorphController(this)),
      attributes_(new AttributeController(this)),
      exporter_(new ResultExporter(this)),
      project_(new ProjectIO(this)) {}

StudioController::~StudioController() {
  // The jobs capture the model and post to the sub-controllers: stop them before anything goes.
  delete worker_;
  worker_ = nullptr;
}

bool StudioController::openModel(const QString& path, QString* error) {
  try {
    std::shared_ptr<Automodulator> model = loadModel(path.toStdString(), resolveDevice("auto"));
    setModel(std::move(model), QFileInfo(path).completeBaseName(), path);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return false;
  }
}

void StudioController::openDefaultModel(const QString& file) {
  default_model_problem_.clear();
  QString path = file;
  try {
    if (file.isEmpty()) {
      path = QString::fromStdString(defaultModelPath().string());  // for the message, should it not read
      auto d = automod::openDefaultModel(resolveDevice("auto"));
      path = QString::fromStdString(d.path.string());
      setModel(std::shared_ptr<Automodulator>(std::move(d.model)),
               d.untrained ? tr("untrained 64 px model") : QFileInfo(path).completeBaseName(), path);
    } else {
      setModel(std::shared_ptr<Automodulator>(loadModel(file.toStdString(), resolveDevice("auto"))),
               QFileInfo(file).completeBaseName(), file);
    }
  } catch (const std::exception& e) {
    // The default model's file is there but does not read (truncated, damaged, a newer format): the
    // editor still opens, on core's untrained stand-in, and says why (defaultModelProblem()).
    default_model_problem_ = tr("The default model %1 cannot be read: %2")
                                 .arg(QDir::toNativeSeparators(path), QString::fromStdString(errorMessage(e)));
    setModel(std::shared_ptr<Automodulator>(untrainedDefaultModel(resolveDevice("auto"))), tr("untrained 64 px model"));
  }
}

void StudioController::setModel(std::shared_ptr<Automodulator> model, const QString& name, const QString& path) {
  // Nothing computed for the old model is wanted any more; results still on their way are dropped by
  // the generation check.
  worker_->cancelAll();
  ++generation_;
  reencode_total_ = 0;
  model_ = std::move(model);
  model_name_ = name;
  model_path_ = path;
  untrained_ = model_ && model_->metadata.value("untrained", false);
  // Without an "evaluation" in the metadata, `automod eval -o <model>-eval.json` beside the file.
  quality_ = model_ ? qualityReference(model_->metadata, path.toStdString()) : QualityReference{};
  const bool had_sources = !document_->sources().isEmpty();
  if (model_) {
    // Core's rebind: the same sources (to be encoded again), the mix, the attribute and the morph.
    document_->resetState(rebind(document_->state(), ModelBinding::of(*model_, path.toStdString())));
  } else {
    document_->resetState(EditState{});
  }
  if (had_sources) document_->setModifiedOutsideUndo();
  Q_EMIT modelChanged();
  if (model_) encodeMissingSources();
}

int StudioController::modelResolution() const { return model_ ? model_->resolution() : 0; }

PhotoOptions StudioController::photoOptions() const {
  PhotoOptions options = model_ ? photoOptionsForModel(model_->metadata) : PhotoOptions{};
  // The editor never refuses a photo without a face: it is centre-cropped with a note.
  options.center_crop_fallback = true;
  options.detect.exhaustive_search = search_everywhere_;
  return options;
}

QString StudioController::qualityHint(double psnr) const {
  return QString::fromStdString(automod::qualityHint(quality_, psnr));
}

QString StudioController::modelInfo() const {
  if (!model_) return tr("No model is loaded.");
  nlohmann::json j;
  j["config"] = model_->config().toJson();
  j["stage"] = model_->stage();
  j["resolution"] = model_->resolution();
  j["decoder_blocks"] = BlockLayout::of(*model_).size();
  if (!model_path_.isEmpty()) j["file"] = model_path_.toStdString();
  j["metadata"] = model_->metadata;
  return QString::fromStdString(j.dump(2));
}

QString StudioController::deviceName() const {
  return model_ ? QString::fromStdString(describeDevice(model_->device())) : QString();
}

void StudioController::replaceState(const EditState& state) {
  // A batch still encoding the previous state's sources refers to them by id, and the new state
  // numbers its sources afresh: nothing of it may arrive.
  if (batch_job_) worker_->cancel(batch_job_);
  ++batch_;
  if (reencode_total_ > 0) {
    reencode_total_ = 0;
    Q_EMIT busyChanged(false);
  }
  document_->resetState(state);
  encodeMissingSources();
}

bool StudioController::idle() const { return !worker_->isBusy() && !reencoding(); }

void StudioController::encodeMissingSources() {
  if (!model_) return;
  const EditState& state = document_->state();
  const auto ids = sourcesToEncode(state);
  const bool attribute = state.attribute && !state.attribute->vector.vector.defined();
  if (ids.empty() && !attribute) {
    Q_EMIT reencodeFinished(0, 0);
    return;
  }
  std::vector<EditSource> todo;
  for (auto id : ids) todo.push_back(state.sources[static_cast<size_t>(state.indexOf(id))]);
  std::optional<EditAttribute> old_attribute;
  if (attribute) old_attribute = state.attribute;
  const BlockLayout old_layout = [&] {
    // The layout the attribute's ranges were made for: the model it was built with.
    if (!old_attribute) return state.model.layout;
    return BlockLayout::forResolution(old_attribute->vector.resolution,
                                      old_attribute->vector.numBlocks() >
                                          ModelConfig::blockForResolution(old_attribute->vector.resolution) + 1);
  }();
  reencode_total_ = static_cast<int>(todo.size());
  Q_EMIT busyChanged(true);
  Q_EMIT reencodeProgress(0, reencode_total_);
  const auto model = model_;
  const auto options = photoOptions();
  const quint64 generation = generation_;
  const quint64 batch = ++batch_;
  struct Tally {
    int done = 0, dropped = 0;
  };
  auto tally = std::make_shared<Tally>();
  batch_job_ = worker_->submit(JobQueue::Intake, [this, model, options, generation, batch, todo, old_attribute,
                                                  old_layout, tally](JobQueue::Control& control) {
    // One batch (core's SourceEncoder): the next photo is read and aligned on another thread while the
    // current one encodes, so that a model change costs about the encoder's time.
    SourceEncoder encoder(*model, todo, options);
    while (!encoder.done()) {
      if (control.cancelled()) return;
      auto result = encoder.next();
      const EditSource s = std::move(result.source);
      const QString error = QString::fromStdString(result.error);
      InferenceWorker::deliver(this, [this, s, error, generation, batch, tally] {
        if (generation != generation_ || batch != batch_) return;
        ++tally->done;
        if (error.isEmpty()) {
          EditSource shown = s;
          if (const auto hint = qualityHint(s.psnr); !hint.isEmpty())
            shown.note = s.note.empty() ? hint.toStdString() : s.note + "; " + hint.toStdString();
          document_->updateSource(shown);
        } else {
          ++tally->dropped;
          EditState st = document_->state();
          st.removeSource(st.indexOf(s.id));
          document_->resetState(st, true);
        }
        Q_EMIT reencodeProgress(tally->done, reencode_total_);
      });
    }
    QString attribute_error;
    std::optional<EditAttribute> rebuilt;
    if (old_attribute && !control.cancelled()) {
      try {
        rebuilt = rebuildAttribute(*model, *old_attribute, old_layout, options);
      } catch (const std::exception& e) {
        attribute_error = QString::fromStdString(errorMessage(e));
      }
    }
    InferenceWorker::deliver(this, [this, generation, batch, tally, rebuilt, attribute_error, old_attribute] {
      if (generation != generation_ || batch != batch_) return;
      batch_job_ = 0;
      if (old_attribute) {
        EditState st = document_->state();
        if (rebuilt)
          st.attribute = rebuilt;
        else
          st.attribute.reset();
        document_->resetState(st, true);
      }
      const int total = reencode_total_;
      reencode_total_ = 0;
      Q_EMIT reencodeFinished(total - tally->dropped, tally->dropped,
                              attribute_error.isEmpty() ? QString() : tr("the attribute could not be rebuilt: %1").arg(attribute_error));
      Q_EMIT busyChanged(false);
    });
  });
}

}  // namespace automod::ui
