// StudioController, continued: attributes (the Attributes tab) and morphs (the Morph tab).
#include <torch/torch.h>

#include "ui/studio_controller.h"

#include <QDir>
#include <QFileInfo>
#include <QImageWriter>
#include <QPainter>
#include <QStandardPaths>
#include <QJsonDocument>
#include <QSaveFile>
#include <QTemporaryFile>
#include <QTimer>

#include <cmath>

#include "core/align/photo.h"
#include "core/edit/attribute.h"
#include "core/edit/interpolate.h"
#include "core/edit/ranges.h"
#include "core/edit/recipe.h"
#include "core/io/image.h"
#include "core/io/model_file.h"
#include "core/model/automodulator.h"
#include "core/util/device.h"
#include "core/util/error.h"
#include "core/io/default_model.h"
#include "ui/tensor_image.h"


namespace automod::ui {

void StudioController::connectEditing() {
  connect(&worker_, &InferenceWorker::morphed, this, [this](const MorphResult& r) {
    if (r.request != latest_morph_) return;  // an older frame finished late
    answered_morph_ = r.request;
    if (!r.error.isEmpty()) {
      Q_EMIT morphFailed(r.error);
      return;
    }
    morph_frame_ = r.image;
    Q_EMIT morphFrameReady(r.image, r.t);
  });
  connect(&worker_, &InferenceWorker::morphVideoProgress, this, [this](quint64 id, int done, int total) {
    if (id == video_id_) Q_EMIT morphVideoProgress(done, total);
  });
  connect(&worker_, &InferenceWorker::morphVideoFinished, this, [this](const MorphVideoResult& r) {
    if (r.id != video_id_) return;
    video_running_ = false;
    const bool ok = r.error.isEmpty() && !r.cancelled;
    Q_EMIT morphVideoFinished(ok, r.cancelled, r.path, r.frames, r.cancelled ? tr("cancelled") : r.error);
  });
  connect(this, &StudioController::modelChanged, this, [this] { morph_frame_ = QImage(); });
}

bool StudioController::onExemplarEncoded(const EncodeResult& r) {
  auto it = exemplars_pending_.find(r.id);
  if (it == exemplars_pending_.end()) return false;
  const int tag = *it;
  exemplars_pending_.erase(it);
  worker_.takeOrigin(r.id);  // exemplars are never pasted back
  if (!r.error.isEmpty())
    Q_EMIT photoFailed(r.source.path, r.error);
  else
    Q_EMIT exemplarEncoded(tag, r.source);
  if (pending_.isEmpty() && exemplars_pending_.isEmpty()) Q_EMIT busyChanged(false);
  return true;
}

void StudioController::encodeExemplars(const QStringList& paths, int tag) {
  for (const auto& p : paths) exemplars_pending_.insert(worker_.requestEncode(p, InferenceWorker::LargestFace), tag);
  if (!paths.isEmpty()) Q_EMIT busyChanged(true);
}

std::optional<AttributeEdit> StudioController::buildAttribute(const QVector<QVector<float>>& positives,
                                                              const QVector<QVector<float>>& negatives,
                                                              const QString& scales, const QString& name,
                                                              QString* error) const {
  auto fail = [&](const QString& why) {
    if (error) *error = why;
    return std::nullopt;
  };
  if (!model_) return fail(tr("no model is loaded"));
  if (positives.size() < 2 || negatives.size() < 2)
    return fail(tr("an attribute needs at least 2 positive and 2 negative exemplars (got %1 + %2)")
                    .arg(positives.size())
                    .arg(negatives.size()));
  if (scales.trimmed().isEmpty()) return fail(tr("choose at least one scale range"));
  try {
    std::vector<torch::Tensor> pos, neg;
    for (const auto& z : positives) pos.push_back(fromFloatVector(z));
    for (const auto& z : negatives) neg.push_back(fromFloatVector(z));
    const auto ranges = parseBlockRanges(scales.toStdString(), BlockLayout::of(*model_));
    const auto built = attributeFromLatents(*model_, pos, neg, ranges, name.toStdString());
    AttributeEdit a;
    a.name = name;
    a.scales = scales;
    a.resolution = built.resolution;
    a.blocks = built.blocks;
    a.vector = toFloatVector(built.vector);
    return a;
  } catch (const std::exception& e) {
    return fail(QString::fromStdString(errorMessage(e)));
  }
}

bool StudioController::saveAttribute(const QString& path, const AttributeEdit& edit, QString* error) const {
  try {
    if (edit.isNull()) throw Error("there is no attribute to save");
    if (edit.scales.trimmed().isEmpty()) throw Error("the attribute has no scale range");
    toAttributeVector(edit).save(path.toStdString());
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return false;
  }
}

std::optional<AttributeEdit> StudioController::loadAttribute(const QString& path, QString* error) const {
  try {
    if (!model_) throw Error("no model is loaded");
    const auto a = AttributeVector::load(path.toStdString());
    if (a.resolution != model_->resolution() || a.numBlocks() != model_->numBlocks())
      throw Error("the attribute was built for a " + std::to_string(a.resolution) + " px model with " +
                  std::to_string(a.numBlocks()) + " blocks but this one is " + std::to_string(model_->resolution()) +
                  " px with " + std::to_string(model_->numBlocks()));
    if (a.latent_dim != model_->config().latent_dim)
      throw Error("the attribute has " + std::to_string(a.latent_dim) + "-d vectors but the model uses " +
                  std::to_string(model_->config().latent_dim) + "-d latents");
    AttributeEdit edit;
    edit.name = QString::fromStdString(a.name);
    if (edit.name.isEmpty()) edit.name = QFileInfo(path).completeBaseName();
    for (const auto& p : a.positives) edit.positives << QString::fromStdString(p);
    for (const auto& n : a.negatives) edit.negatives << QString::fromStdString(n);
    edit.resolution = a.resolution;
    edit.blocks = a.blocks;
    edit.vector = toFloatVector(a.vector);
    edit.scales = QString::fromStdString(rangesToString(a.ranges));
    return edit;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return std::nullopt;
  }
}

QString StudioController::scalesOf(Ranges ranges) const {
  return QString::fromStdString(rangesToString(blockRanges(ranges, document_.layout())));
}

Ranges StudioController::rangesOf(const QString& scales) const {
  const auto& layout = document_.layout();
  if (layout.size() < 1 || scales.trimmed().isEmpty()) return {};
  std::vector<BlockRange> parsed;
  try {
    parsed = parseBlockRanges(scales.toStdString(), layout);
  } catch (const std::exception&) {
    return {};
  }
  Ranges set;
  for (Range r : allScales()) {
    if (!hasScale(r, layout)) continue;
    const auto range = scaleRange(r, layout);
    bool all = true;
    for (int b = range.first; b <= range.last; ++b) all = all && rangesContain(parsed, b);
    if (all) set |= flagOf(r);
  }
  return set;
}

void StudioController::requestMorphFrame(int a, int b, Ranges moving, double t) {
  morph_request_ = {a, b, moving, t};
  if (morph_scheduled_) return;
  morph_scheduled_ = true;
  // A burst of scrub moves (one event-loop pass) makes one request; the worker keeps only the latest.
  QTimer::singleShot(0, this, [this] {
    morph_scheduled_ = false;
    const auto& sources = document_.sources();
    const auto r = morph_request_;
    if (!model_ || r.a < 0 || r.b < 0 || r.a >= sources.size() || r.b >= sources.size()) return;
    latest_morph_ = worker_.requestMorph(sources[r.a].latent, sources[r.b].latent, r.moving, r.t);
  });
}

bool StudioController::canWriteVideo() const { return videoAvailable(); }

bool StudioController::exportMorphVideo(const QString& path, int a, int b, Ranges moving, int frames, double fps,
                                        QString* error) {
  auto fail = [&](const QString& why) {
    if (error) *error = why;
    return false;
  };
  const auto& sources = document_.sources();
  if (!model_) return fail(tr("no model is loaded"));
  if (a < 0 || b < 0 || a >= sources.size() || b >= sources.size()) return fail(tr("choose two photos"));
  if (frames < 2) return fail(tr("a morph needs at least 2 frames"));
  if (!canWriteVideo()) return fail(tr("this build cannot write videos (it has no OpenCV)"));
  if (video_running_) return fail(tr("a video is being written already"));
  video_id_ = worker_.requestMorphVideo(path, sources[a].latent, sources[b].latent, moving, frames, fps);
  video_running_ = true;
  return true;
}

void StudioController::cancelMorphVideo() {
  if (video_running_) worker_.cancelMorphVideo(video_id_);
}

}  // namespace automod::ui
