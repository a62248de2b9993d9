#include <torch/torch.h>

#include "ui/morph_controller.h"

#include <QTimer>

#include "core/edit/edit_state.h"
#include "core/edit/interpolate.h"
#include "core/io/image.h"
#include "core/io/video.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "ui/studio_controller.h"
#include "ui/tensor_image.h"

namespace automod::ui {

MorphController::MorphController(StudioController* controller) : QObject(controller), controller_(controller) {
  connect(controller_, &StudioController::modelChanged, this, [this] {
    frame_ = QImage();
    latest_ = answered_ = 0;
    if (video_job_) {
      controller_->worker()->cancel(video_job_);
      video_job_ = 0;
      Q_EMIT videoFinished(false, true, video_path_, 0, tr("cancelled: the model changed"));
    }
  });
}

bool MorphController::canWriteVideo() const { return videoAvailable(); }

namespace {
/// The document's state with the morph between `a` and `b` over the `moving` ranges.
EditState morphState(const EditState& state, int a, int b, Ranges moving) {
  EditState s = state;
  s.morph.a = a;
  s.morph.b = b;
  s.morph.scales = scalesString(moving);
  return s;
}
}  // namespace

void MorphController::requestFrame(int a, int b, Ranges moving, double t) {
  request_ = {a, b, moving, t};
  if (scheduled_) return;
  scheduled_ = true;
  // A burst of scrub moves (one event-loop pass) makes one request; the queue keeps only the latest.
  QTimer::singleShot(0, this, [this] {
    scheduled_ = false;
    const auto model = controller_->model();
    const auto& state = controller_->document()->state();
    const auto r = request_;
    const int n = static_cast<int>(state.sources.size());
    if (!model || r.a < 0 || r.b < 0 || r.a >= n || r.b >= n || !state.ready()) return;
    const quint64 request = next_++;
    latest_ = request;
    const EditState s = morphState(state, r.a, r.b, r.moving);
    auto* worker = controller_->worker();
    const quint64 generation = controller_->generation();
    worker->submit(
        JobQueue::Render,
        [this, worker, model, s, r, request, generation](JobQueue::Control&) {
          worker->noteMorphStarted(request);
          QImage image;
          QString error;
          try {
            torch::NoGradGuard no_grad;
            image = toQImage(toImage(model->decode(s.morphPlan(r.t)).cpu()).squeeze(0));
          } catch (const std::exception& e) {
            error = QString::fromStdString(errorMessage(e));
          }
          InferenceWorker::deliver(this, [this, image, error, request, generation, t = r.t] {
            if (request != latest_ || generation != controller_->generation()) return;  // an older frame
            answered_ = request;
            if (!error.isEmpty()) {
              Q_EMIT failed(error);
              return;
            }
            frame_ = image;
            Q_EMIT frameReady(image, t);
          });
        },
        QStringLiteral("morph"));
  });
}

bool MorphController::exportVideo(const QString& path, int a, int b, Ranges moving, int frames, double fps,
                                  QString* error) {
  auto fail = [&](const QString& why) {
    if (error) *error = why;
    return false;
  };
  const auto model = controller_->model();
  const auto& state = controller_->document()->state();
  const int n = static_cast<int>(state.sources.size());
  if (!model) return fail(tr("no model is loaded"));
  if (a < 0 || b < 0 || a >= n || b >= n) return fail(tr("choose two photos"));
  if (!state.ready()) return fail(tr("the photos are still being encoded"));
  if (frames < 2) return fail(tr("a morph needs at least 2 frames"));
  if (!canWriteVideo()) return fail(tr("this build cannot write videos (it has no OpenCV)"));
  if (video_job_) return fail(tr("a video is being written already"));
  const EditState s = morphState(state, a, b, moving);
  const quint64 generation = controller_->generation();
  auto id = std::make_shared<quint64>(0);
  video_job_ = controller_->worker()->submit(
      JobQueue::Background, [this, model, s, path, frames, fps, generation, id](JobQueue::Control& control) {
        int written = 0;
        bool cancelled = false;
        QString message;
        try {
          torch::NoGradGuard no_grad;
          // Frame by frame into core's VideoWriter: one frame in memory, and a cancelled or failed
          // export leaves whatever file was at `path` as it was.
          VideoWriter video(path.toStdString(), fps);
          for (int i = 0; i < frames; ++i) {
            control.yield();  // the editor stays live while the video is written
            if (control.cancelled()) {
              cancelled = true;
              break;
            }
            const double t = double(i) / double(frames - 1);
            video.add(toImage(model->decode(s.morphPlan(t)).cpu()));
            InferenceWorker::deliver(this, [this, i, frames, id] {
              if (*id == video_job_) Q_EMIT videoProgress(i + 1, frames);
            });
          }
          if (!cancelled) {
            video.finish();
            written = video.frames();
          }
        } catch (const std::exception& e) {
          message = QString::fromStdString(errorMessage(e));
        }
        InferenceWorker::deliver(this, [this, path, written, cancelled, message, generation, id] {
          if (*id != video_job_ || generation != controller_->generation()) return;
          video_job_ = 0;
          const bool ok = message.isEmpty() && !cancelled;
          Q_EMIT videoFinished(ok, cancelled, path, written, cancelled ? tr("cancelled") : message);
        });
      });
  *id = video_job_;
  video_path_ = path;
  return true;
}

void MorphController::cancelVideo() {
  if (!video_job_) return;
  // Stopped before its next frame (or before it starts); nothing is written, and what it still
  // reports is dropped (video_job_ no longer names it).
  controller_->worker()->cancel(video_job_);
  video_job_ = 0;
  Q_EMIT videoFinished(false, true, video_path_, 0, tr("cancelled"));
}

}  // namespace automod::ui
