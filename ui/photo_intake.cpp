#include <torch/torch.h>

#include "ui/photo_intake.h"

#include <QFileInfo>

#include "core/align/photo.h"
#include "core/edit/edit_state.h"
#include "core/edit/refine.h"
#include "core/edit/source_intake.h"
#include "core/io/image.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "ui/studio_controller.h"
#include "ui/tensor_image.h"

namespace automod::ui {

namespace {
constexpr int kAsk = -1, kLargest = -2;
}

PhotoIntake::PhotoIntake(StudioController* controller)
    : QObject(controller), controller_(controller), cache_(std::make_shared<PreparedPhotoCache>()) {
  qRegisterMetaType<automod::ui::FaceCandidates>();
  qRegisterMetaType<automod::ui::Source>();
  // A model change: photos still on their way belong to the old model (the controller encodes the
  // document's sources again itself); faces waiting for a choice are asked again for the new one.
  connect(controller_, &StudioController::modelChanged, this, [this] {
    const bool busy = !pending_.isEmpty() || !exemplars_.isEmpty();
    QList<Job> again;
    for (const auto& j : pending_) again << j;
    pending_.clear();
    exemplars_.clear();
    refining_.clear();
    for (auto it = awaiting_.begin(); it != awaiting_.end(); ++it) {
      Job j;
      j.path = it.key();
      j.range = it->range;
      again << j;
    }
    awaiting_.clear();
    for (const auto& j : again)
      if (j.tag < 0) submit(j);
    if (busy && pending_.isEmpty()) Q_EMIT busyChanged(false);
  });
}

PhotoIntake::~PhotoIntake() = default;

void PhotoIntake::setPhotosAligned(bool aligned) { aligned_ = aligned; }

void PhotoIntake::addPhotos(const QStringList& paths, std::optional<Range> range) {
  for (const auto& p : paths) {
    Job j;
    j.path = p;
    j.range = range;
    j.face = face_mode_ == FaceMode::Ask ? kAsk : kLargest;
    submit(j);
  }
  if (!paths.isEmpty()) Q_EMIT busyChanged(true);
}

void PhotoIntake::addImage(const QImage& image, const QString& name) {
  Job j;
  j.image = image;
  j.name = name.isEmpty() ? tr("pasted image %1").arg(++pasted_count_) : name;
  j.path = j.name;
  j.face = kLargest;
  submit(j);
  Q_EMIT busyChanged(true);
}

void PhotoIntake::encodeExemplars(const QStringList& paths, int tag) {
  for (const auto& p : paths) {
    Job j;
    j.path = p;
    j.face = kLargest;
    j.tag = tag;
    submit(j);
  }
  if (!paths.isEmpty()) Q_EMIT busyChanged(true);
}

FaceCandidates PhotoIntake::faceCandidates(const QString& path) const { return awaiting_.value(path).faces; }

void PhotoIntake::chooseFaces(const QString& path, const QVector<int>& faces) {
  auto it = awaiting_.find(path);
  if (it == awaiting_.end()) return;
  const Awaiting a = *it;
  awaiting_.erase(it);
  bool first = true;
  for (int f : faces) {
    if (f < 0 || f >= a.faces.boxes.size()) continue;
    Job j;
    j.path = path;
    j.face = f;
    // A drop on a range panel assigns that range to the first chosen face only.
    if (first) j.range = a.range;
    submit(j);
    first = false;
  }
  if (!first) Q_EMIT busyChanged(true);
}

void PhotoIntake::chooseAllFaces(const QString& path) {
  QVector<int> all;
  for (int i = 0; i < faceCandidates(path).boxes.size(); ++i) all << i;
  chooseFaces(path, all);
}

void PhotoIntake::finished(quint64 id) {
  pending_.remove(id);
  exemplars_.remove(id);
  if (pending_.isEmpty() && exemplars_.isEmpty()) Q_EMIT busyChanged(false);
}

void PhotoIntake::submit(const Job& job) {
  const auto model = controller_->model();
  if (!model) {
    Q_EMIT photoFailed(job.path, tr("no model is loaded"));
    return;
  }
  PhotoOptions options = controller_->photoOptions();
  const bool aligned = aligned_;
  const torch::Tensor pasted = job.image.isNull() ? torch::Tensor() : fromQImage(job.image);
  const quint64 generation = controller_->generation();
  auto cache = cache_;
  auto id = std::make_shared<quint64>(0);
  const quint64 job_id = controller_->worker()->submit(
      JobQueue::Intake, [this, job, model, options, aligned, pasted, generation, cache, id](JobQueue::Control&) {
        const QString file_name = job.image.isNull() ? QFileInfo(job.path).fileName() : job.name;
        EditSource source;
        std::optional<FaceCandidates> candidates;
        QString error;
        try {
          torch::NoGradGuard no_grad;
          const int size = model->resolution(), channels = static_cast<int>(model->config().image_channels);
          PhotoOptions o = options;
          if (aligned) o.align = false;  // the model's input transform only
          o.center_crop_fallback = true;
          // Every face of the photo (one detection, cached by core: encoding the face the user picks
          // does not detect again), or its centre crop when it has none.
          const std::vector<PreparedPhoto> faces =
              pasted.defined() ? preparePhotoImage(pasted, file_name.toStdString(), size, channels, o, true)
                               : cache->faces(job.path.toStdString(), size, channels, o);
          if (faces.size() > 1 && job.face == kAsk) {
            // The face picker: the photo at most 1024 px across, a box and a crop per face.
            FaceCandidates c;
            c.path = job.path;
            c.photoSize = QSize(faces.front().photo_width, faces.front().photo_height);
            torch::Tensor rgb = pasted.defined() ? pasted : readImage(job.path.toStdString(), 3);
            const int64_t longer = std::max(rgb.size(0), rgb.size(1));
            if (longer > 1024) {
              const double s = 1024.0 / double(longer);
              rgb = resizeImage(rgb, static_cast<int>(std::max<int64_t>(1, std::llround(rgb.size(1) * s))),
                                static_cast<int>(std::max<int64_t>(1, std::llround(rgb.size(0) * s))));
            }
            c.photo = toQImage(rgb);
            for (const auto& p : faces) {
              const auto& box = p.faces.at(p.face_index).box;
              c.boxes.push_back(QRect(box[0], box[1], box[2], box[3]));
              c.crops.push_back(toQImage(p.image));
            }
            candidates = std::move(c);
          } else {
            const std::string name = (job.name.isEmpty() ? file_name : job.name).toStdString();
            source = sourceFromFaces(*model, faces, job.face < 0 ? -1 : job.face, name,
                                     pasted.defined() ? std::filesystem::path() : std::filesystem::path(job.path.toStdString()));
          }
        } catch (const std::exception& e) {
          error = QString::fromStdString(errorMessage(e));
        }
        InferenceWorker::deliver(this, [this, job, source, candidates, error, generation, id] {
          if (generation != controller_->generation() || !pending_.contains(*id)) return;
          finished(*id);
          if (!error.isEmpty()) {
            Q_EMIT photoFailed(job.path, error);
            return;
          }
          if (candidates) {
            awaiting_.insert(job.path, Awaiting{*candidates, job.range});
            Q_EMIT facesFound(job.path, candidates->boxes, candidates->crops);
            return;
          }
          EditSource s = source;
          if (const auto hint = controller_->qualityHint(s.psnr); !hint.isEmpty())
            s.note = s.note.empty() ? hint.toStdString() : s.note + "; " + hint.toStdString();
          if (job.tag >= 0) {
            Source view = toSourceView(s);
            view.path = job.path;  // the exemplar's file, listed in the attribute
            Q_EMIT exemplarEncoded(job.tag, view);
            return;
          }
          auto* doc = controller_->document();
          doc->addSource(s);
          const int index = doc->sources().size() - 1;
          if (job.range) doc->assignRange(*job.range, index);
          Q_EMIT photoAdded(index);
          if (refine_new_ > 0) startRefine(doc->state().sources.back().id, refine_new_);
        });
      });
  *id = job_id;
  pending_.insert(job_id, job);
  if (job.tag >= 0) exemplars_.insert(job_id, job.tag);
}

bool PhotoIntake::refine(int index, int steps, QString* error) {
  auto* doc = controller_->document();
  if (index < 0 || index >= doc->sources().size()) {
    if (error) *error = tr("there is no photo %1").arg(index + 1);
    return false;
  }
  const auto& s = doc->state().sources[static_cast<size_t>(index)];
  if (!s.hasCodes() || !s.picture.defined()) {
    if (error) *error = tr("%1 has no picture to refine against").arg(QString::fromStdString(s.name));
    return false;
  }
  if (refining_.contains(s.id)) {
    if (error) *error = tr("%1 is being refined already").arg(QString::fromStdString(s.name));
    return false;
  }
  startRefine(s.id, editorRefinement(steps).steps);
  return true;
}

void PhotoIntake::cancelRefine(int index) {
  auto* doc = controller_->document();
  if (index < 0 || index >= doc->sources().size()) return;
  const quint64 id = doc->sources()[index].id;
  if (refining_.contains(id)) controller_->worker()->cancel(refining_.value(id).job);
}

void PhotoIntake::startRefine(quint64 id, int steps) {
  const auto model = controller_->model();
  const auto& state = controller_->document()->state();
  const int index = state.indexOf(id);
  if (!model || index < 0) return;
  const EditSource source = state.sources[static_cast<size_t>(index)];
  const RefineOptions options = editorRefinement(steps);
  const quint64 generation = controller_->generation();
  const quint64 job = controller_->worker()->submit(
      JobQueue::Background, [this, model, source, options, generation, id](JobQueue::Control& control) {
        EditSource s = source;
        QString error;
        bool cancelled = false;
        try {
          int last_percent = -1;
          cancelled = !refineSource(*model, s, options, [&](int step, int steps) {
            // A decode or a photo asked for meanwhile runs here, between two steps.
            control.yield();
            const int percent = steps > 0 ? 100 * step / steps : 100;
            if (percent != last_percent) {
              last_percent = percent;
              InferenceWorker::deliver(this, [this, id, percent, generation] {
                if (generation != controller_->generation() || !refining_.contains(id)) return;
                refining_[id].progress = percent / 100.0;
                Q_EMIT refineProgressChanged(id, percent / 100.0);
              });
            }
            return !control.cancelled();
          });
        } catch (const std::exception& e) {
          error = QString::fromStdString(errorMessage(e));
        }
        InferenceWorker::deliver(this, [this, id, s, error, cancelled, generation] {
          if (generation != controller_->generation()) return;
          refining_.remove(id);
          if (cancelled || !error.isEmpty()) {
            Q_EMIT refineFinished(id, false, cancelled ? tr("cancelled") : error);
            return;
          }
          auto* doc = controller_->document();
          if (doc->indexOf(id) < 0) return;  // removed meanwhile
          doc->replaceSource(s, tr("Refine %1").arg(QString::fromStdString(s.name)));
          Q_EMIT refineFinished(id, true, {});
        });
      });
  refining_.insert(id, Refining{job, 0.0});
  Q_EMIT refineProgressChanged(id, 0.0);
}

}  // namespace automod::ui
