#include <torch/torch.h>

#include "ui/studio_controller.h"

#include <QDir>
#include <QFileInfo>
#include <QImageWriter>
#include <QPainter>
#include <QStandardPaths>
#include <QJsonDocument>
#include <QJsonObject>
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
#include "core/metrics/quality_reference.h"
#include "ui/tensor_image.h"

namespace automod::ui {

StudioController::StudioController(QObject* parent) : QObject(parent) {
  connect(&worker_, &InferenceWorker::encoded, this, &StudioController::onEncoded);
  connect(&worker_, &InferenceWorker::facesFound, this, &StudioController::onFacesFound);
  connect(&worker_, &InferenceWorker::decoded, this, &StudioController::onDecoded);
  connect(&worker_, &InferenceWorker::sampled, this, [this](const SampleResult& r) {
    if (r.request != latest_sample_request_) return;
    if (!r.error.isEmpty()) {
      Q_EMIT samplesFailed(r.error);
      return;
    }
    samples_ = r.images;
    samples_seed_ = r.seed;
    Q_EMIT samplesReady(r.images, r.seed);
  });
  connect(&document_, &StudioDocument::mixChanged, this, &StudioController::scheduleDecode);
  connect(&document_, &StudioDocument::sourcesChanged, this, &StudioController::scheduleDecode);
  connect(&document_, &StudioDocument::attributeChanged, this, &StudioController::scheduleDecode);
  connectEditing();
}

StudioController::~StudioController() {
  for (const auto& f : temp_files_) QFile::remove(f);
}

bool StudioController::openModel(const QString& path, QString* error) {
  try {
    std::shared_ptr<Automodulator> model = loadModel(path.toStdString(), resolveDevice("auto"));
    setModel(std::move(model), QFileInfo(path).completeBaseName());
    model_path_ = path;
    // Without an "evaluation" in the metadata, `automod eval -o <model>-eval.json` beside the file.
    quality_ = qualityReference(model_->metadata, path.toStdString());
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return false;
  }
}

void StudioController::openDefaultModel() {
  const auto path = defaultModelPath();
  QString error;
  if (!path.empty() && openModel(QString::fromStdString(path.string()), &error)) return;
  // Not installed (or unreadable): core's stand-in, which untrainedModel() reports.
  setModel(std::shared_ptr<Automodulator>(untrainedDefaultModel(resolveDevice("auto"))), tr("untrained 64 px model"));
  untrained_ = true;
}

void StudioController::setModel(std::shared_ptr<Automodulator> model, const QString& name) {
  model_ = std::move(model);
  model_name_ = name;
  model_path_.clear();
  untrained_ = model_ && model_->metadata.value("untrained", false);
  quality_ = model_ ? qualityReference(model_->metadata) : QualityReference{};
  worker_.setModel(model_);
  // Codes of another model mean nothing here, but the photos stay: each one that came from a photo
  // on disk is encoded again by the new model (in the background); the mix is restored once they
  // are back when the new model has the same blocks. The undo history cannot survive (its steps
  // hold the old codes): reencodeFinished says so.
  const QVector<Source> previous = document_.sources();
  const MixSettings previous_mix = document_.mix();
  const MorphSettings previous_morph = document_.morph();
  const int previous_blocks = document_.blocks();
  origins_.clear();
  // Photos still being encoded again for the model before this one come back for nothing.
  for (quint64 id : reencode_.ids) {
    pending_.remove(id);
    stale_encodes_.insert(id);
  }
  reencode_ = {};
  document_.clear();
  document_.setMorph(previous_morph);  // the Morph tab keeps its mode across models
  document_.setLayout(model_ ? BlockLayout::of(*model_) : BlockLayout{});
  result_ = preview_ = QImage();
  Q_EMIT modelChanged();
  if (!model_ || previous.isEmpty()) return;
  QVector<int> kept;
  for (int i = 0; i < previous.size(); ++i) {
    const auto& s = previous[i];
    if (!s.fromPhoto || !QFileInfo(s.path).isFile()) {
      ++reencode_.dropped;
      continue;
    }
    const int face = s.face >= 0 ? s.face : InferenceWorker::LargestFace;
    const quint64 id = worker_.requestEncode(s.path, face);
    pending_.insert(id, std::nullopt);
    reencode_.ids.insert(id);
    kept << i;
  }
  reencode_.total = int(reencode_.ids.size());
  if (previous_blocks == document_.blocks() && !kept.isEmpty()) {
    // The old mix over the photos that come back (columns of dropped sources removed).
    MixSettings mix;
    for (const auto& row : previous_mix.weights) {
      QVector<double> r;
      for (int i : kept) r << (i < row.size() ? row[i] : 0.0);
      mix.weights << r;
    }
    reencode_.mix = mix;
  }
  if (reencode_.total > 0) {
    Q_EMIT busyChanged(true);
    Q_EMIT reencodeProgress(0, reencode_.total);
  } else {
    Q_EMIT reencodeFinished(0, reencode_.dropped);
  }
}

bool StudioController::hasModel() const { return model_ != nullptr; }
int StudioController::modelResolution() const { return model_ ? model_->resolution() : 0; }

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

QString StudioController::qualityHint(const Source& source) const {
  return QString::fromStdString(automod::qualityHint(quality_, source.psnr));
}

QString StudioController::deviceName() const {
  return model_ ? QString::fromStdString(describeDevice(model_->device())) : QString();
}

void StudioController::addPhotos(const QStringList& paths, std::optional<Range> range) {
  const int face = face_mode_ == FaceMode::Ask ? InferenceWorker::AskFace : InferenceWorker::LargestFace;
  for (const auto& p : paths) pending_.insert(worker_.requestEncode(p, face), range);
  Q_EMIT busyChanged(true);
}

void StudioController::onFacesFound(quint64 id, const FaceCandidates& faces) {
  const auto range = pending_.take(id);
  awaiting_.insert(faces.path, Awaiting{faces, range});
  if (pending_.isEmpty()) Q_EMIT busyChanged(false);
  Q_EMIT facesFound(faces.path, faces.boxes, faces.crops);
}

FaceCandidates StudioController::faceCandidates(const QString& path) const {
  return awaiting_.value(path).faces;
}

void StudioController::chooseFaces(const QString& path, const QVector<int>& faces) {
  auto it = awaiting_.find(path);
  if (it == awaiting_.end()) return;
  const Awaiting a = *it;
  awaiting_.erase(it);
  bool first = true;
  for (int f : faces) {
    if (f < 0 || f >= a.faces.boxes.size()) continue;
    // A drop on a range panel assigns that range to the first chosen face only.
    pending_.insert(worker_.requestEncode(path, f), first ? a.range : std::nullopt);
    first = false;
  }
  if (!first) Q_EMIT busyChanged(true);
}

void StudioController::chooseAllFaces(const QString& path) {
  QVector<int> all;
  for (int i = 0; i < faceCandidates(path).boxes.size(); ++i) all << i;
  chooseFaces(path, all);
}

void StudioController::addImage(const QImage& image, const QString& name) {
  QTemporaryFile file(QDir::tempPath() + "/automod-paste-XXXXXX.png");
  file.setAutoRemove(false);
  if (!file.open() || !image.save(&file, "PNG")) {
    Q_EMIT photoFailed(tr("pasted image"), tr("cannot write a temporary file"));
    return;
  }
  temp_files_ << file.fileName();
  temp_names_.insert(file.fileName(), name.isEmpty() ? tr("pasted image %1").arg(++pasted_count_) : name);
  addPhotos({file.fileName()});
}

void StudioController::onEncoded(const EncodeResult& r) {
  if (onExemplarEncoded(r)) return;
  if (stale_encodes_.remove(r.id)) {
    worker_.takeOrigin(r.id);
    return;
  }
  const auto range = pending_.take(r.id);
  const auto origin = worker_.takeOrigin(r.id);
  const bool reencoded = reencode_.ids.remove(r.id);
  if (!r.error.isEmpty()) {
    Q_EMIT photoFailed(r.source.path, r.error);
  } else {
    Source source = r.source;
    if (origin) {
      origins_.insert(originKey(source), *origin);
      // A photo on disk (not a pasted image's temporary file): the project names it.
      source.fromPhoto = !temp_files_.contains(origin->path);
      source.face = origin->face;
    }
    if (const auto hint = qualityHint(source); !hint.isEmpty())
      source.note = source.note.isEmpty() ? hint : source.note + "; " + hint;
    // A pasted image or kept sample is named for what it is, not after its temporary file.
    if (const auto name = temp_names_.constFind(source.path); name != temp_names_.constEnd()) source.name = *name;
    document_.addSource(source);
    const int index = document_.sources().size() - 1;
    if (range) document_.assignRange(*range, index);
    Q_EMIT photoAdded(index);
  }
  if (reencoded) {
    if (!r.error.isEmpty()) ++reencode_.dropped;
    Q_EMIT reencodeProgress(reencode_.total - int(reencode_.ids.size()), reencode_.total);
    if (reencode_.ids.isEmpty()) {
      // Every photo is back: the old mix, when it still fits, without an undo step of its own.
      if (reencode_.mix && reencode_.dropped == 0 && reencode_.mix->weights.size() == document_.blocks())
        document_.setMix(*reencode_.mix, tr("Restore the mix"));
      const bool modified = document_.isModified();
      document_.undoStack()->clear();
      if (modified) document_.setModifiedOutsideUndo();
      Q_EMIT reencodeFinished(reencode_.total - reencode_.dropped, reencode_.dropped);
      reencode_ = {};
    }
  }
  if (pending_.isEmpty()) Q_EMIT busyChanged(false);
}

bool StudioController::saveProject(const QString& path, QString* error) {
  try {
    if (!model_) throw Error("no model is loaded");
    const auto& sources = document_.sources();
    Recipe r;
    r.resolution = model_->resolution();
    if (!model_path_.isEmpty()) r.model = QFileInfo(model_path_).absoluteFilePath().toStdString();
    for (int i = 0; i < sources.size(); ++i) {
      const auto& s = sources[i];
      SourceSpec spec;
      if (s.fromPhoto && QFileInfo(s.path).isFile())
        spec = s.face >= 0 ? SourceSpec::photo(s.path.toStdString(), s.face) : SourceSpec::centerCropped(s.path.toStdString());
      else
        spec = SourceSpec::inlineCode(std::vector<float>(s.latent.begin(), s.latent.end()));
      r.sources[Recipe::sourceName(i)] = spec;
    }
    if (!sources.isEmpty()) {
      // The mix: consecutive blocks with the same weights form one assignment; blocks without any
      // weight take the first source (blockMixPlan's rule, which the editor decodes with).
      r.base = Recipe::sourceName(0);
      const auto& weights = document_.mix().weights;
      for (int b = 0; b < weights.size();) {
        int e = b;
        while (e + 1 < weights.size() && weights[e + 1] == weights[b]) ++e;
        Recipe::Assignment a;
        a.scales = BlockRange{b, e}.toString();
        for (int i = 0; i < weights[b].size(); ++i)
          if (weights[b][i] > 0) a.sources.push_back({Recipe::sourceName(i), weights[b][i]});
        if (!a.sources.empty()) r.assignments.push_back(a);
        b = e + 1;
      }
    }
    const auto& attribute = document_.attribute();
    if (!attribute.isNull() && attribute.strength != 0.0) {
      Recipe::AttributeEdit e;
      e.inline_attribute = toAttributeVector(attribute);
      e.strength = attribute.strength;
      r.attributes.push_back(e);
    }
    const auto& morph = document_.morph();
    if (morph.a >= 0 && morph.b >= 0 && morph.a < sources.size() && morph.b < sources.size()) {
      Recipe::Morph m;
      m.a = Recipe::sourceName(morph.a);
      m.b = Recipe::sourceName(morph.b);
      m.scales = morph.moving == allRanges() ? "" : rangesToString(blockRanges(morph.moving, document_.layout()));
      m.t = morph.t;
      m.frames = morph.frames;
      m.fps = morph.fps;
      r.morph = m;
    }
    r.editor = nlohmann::json::parse(QJsonDocument(document_.editorState()).toJson(QJsonDocument::Compact).toStdString());
    const auto json = r.toJson(QFileInfo(path).absolutePath().toStdString()).dump(1);
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly) || file.write(json.data(), qint64(json.size())) != qint64(json.size()) ||
        !file.commit())
      throw Error("cannot write " + path.toStdString() + ": " + file.errorString().toStdString());
    document_.setFilePath(path);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(errorMessage(e));
    return false;
  }
}

bool StudioController::openProject(const QString& path, QString* error) {
  StudioDocument probe;
  if (!probe.load(path, error)) return false;
  const int dim = model_ ? int(model_->config().latent_dim) : 0;
  for (const auto& s : probe.sources())
    if (s.latent.size() != dim) {
      if (error)
        *error = tr("the project was made with a model of %1-d codes; this one uses %2-d codes (open that model first)")
                     .arg(s.latent.size())
                     .arg(dim);
      return false;
    }
  origins_.clear();
  return document_.load(path, error);
}

void StudioController::scheduleDecode() {
  if (decode_scheduled_) return;
  decode_scheduled_ = true;
  // Several document signals from one action (or a burst of slider moves) make one request.
  QTimer::singleShot(0, this, [this] {
    decode_scheduled_ = false;
    if (!model_ || document_.sources().isEmpty()) return;
    latest_request_ = worker_.requestDecode(document_.latents(), document_.mix(), document_.attribute());
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

void StudioController::requestSamples(Ranges locked, quint64 seed, int count) {
  if (!model_) return;
  latest_sample_request_ =
      worker_.requestSamples(document_.latents(), document_.mix(), locked, seed, count, document_.attribute());
}

}  // namespace automod::ui
