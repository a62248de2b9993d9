#include <torch/torch.h>

#include "ui/render_scheduler.h"

#include <QElapsedTimer>
#include <QTimer>

#include "core/align/photo.h"
#include "core/edit/edit_state.h"
#include "core/edit/plan.h"
#include "core/edit/session.h"
#include "core/io/image.h"
#include "core/metrics/image_quality.h"
#include "core/model/automodulator.h"
#include "core/util/error.h"
#include "ui/studio_controller.h"
#include "ui/tensor_image.h"

namespace automod::ui {

struct RenderScheduler::Cache {
  std::shared_ptr<Automodulator> model;
  std::unique_ptr<EditSession> session;
  /// The session of `m`, a new one when the model changed.
  EditSession& of(const std::shared_ptr<Automodulator>& m) {
    if (m != model || !session) {
      session.reset();
      model = m;
      session = std::make_unique<EditSession>(*m, photoOptionsForModel(m->metadata));
    }
    return *session;
  }
};

struct RenderScheduler::Codes {
  LatentPlan plan;  // the gallery's codes, batch = its samples, on the CPU
  quint64 generation = 0;
};

RenderScheduler::RenderScheduler(StudioController* controller)
    : QObject(controller), controller_(controller), codes_(std::make_shared<Codes>()), cache_(std::make_shared<Cache>()) {
  connect(controller_->worker(), &InferenceWorker::decoded, this, &RenderScheduler::onDecoded, Qt::QueuedConnection);
  connect(controller_->document(), &StudioDocument::stateChanged, this, &RenderScheduler::scheduleDecode);
  connect(controller_, &StudioController::modelChanged, this, [this] {
    result_ = preview_ = QImage();
    latest_request_ = answered_request_ = 0;
    latest_sample_request_ = answered_sample_request_ = 0;
    // A gallery of the old model is gone at once; it is drawn again once the photos are back.
    if (!samples_.isEmpty() || gallery_.shown) {
      samples_.clear();
      codes_->plan = LatentPlan();
      regenerate_ = gallery_.shown;
      Q_EMIT samplesCleared();
    }
  });
  connect(controller_, &StudioController::reencodeFinished, this, [this] {
    if (!regenerate_) return;
    regenerate_ = false;
    requestSamples(gallery_.locked, gallery_.seed, gallery_.count);
  });
}

RenderScheduler::~RenderScheduler() = default;

void RenderScheduler::scheduleDecode() {
  if (decode_scheduled_) return;
  decode_scheduled_ = true;
  // Several document signals from one action (or a burst of slider moves) make one request.
  QTimer::singleShot(0, this, [this] {
    decode_scheduled_ = false;
    const auto model = controller_->model();
    const EditState& state = controller_->document()->state();
    if (!model || !state.ready()) return;
    const quint64 request = next_request_++;
    latest_request_ = request;
    auto* worker = controller_->worker();
    auto cache = cache_;
    worker->submit(
        JobQueue::Render,
        [worker, model, state, cache, request](JobQueue::Control& control) {
          worker->noteDecodeStarted(request);
          QElapsedTimer timer;
          timer.start();
          DecodeResult result;
          result.request = request;
          try {
            torch::NoGradGuard no_grad;
            auto& session = cache->of(model);
            session.setPlan(state.plan());
            // Incremental decoding (core's EditSession), refined progressively: the image of every stage
            // that is recomputed — 16 px, then 32 px and up — is shown as soon as its block is done, so
            // that a 256–512 px model sharpens on screen. This loop drives core one stage at a time (no
            // callback from core into the editor); a newer request stops it between stages, and the
            // canvases computed so far stay for the next one.
            const int blocks = model->numBlocks();
            const auto& layout = state.model.layout;
            int restart = -1;
            for (int b = 0; b + 1 < blocks; ++b) {
              const int resolution = layout.resolutions[static_cast<size_t>(b)];
              if (resolution != 16 && resolution < 32) continue;
              if (control.cancelled()) return;  // a newer request wins
              auto stage = session.preview(b);
              if (restart < 0) restart = session.lastRestartBlock();
              if (b < restart) continue;  // not recomputed: nothing new to show
              DecodeResult preview = result;
              preview.final = false;
              preview.firstBlock = restart;
              preview.image = toQImage(toImage(stage.cpu()).squeeze(0));
              preview.ms = timer.nsecsElapsed() / 1e6;
              Q_EMIT worker->decoded(preview);
            }
            if (control.cancelled()) return;
            auto image = session.decode();
            if (restart < 0) restart = session.lastRestartBlock();
            result.firstBlock = std::min(restart, blocks - 1);
            result.image = toQImage(toImage(image.cpu()).squeeze(0));
          } catch (const std::exception& e) {
            result.error = QString::fromStdString(errorMessage(e));
            if (cache->session) cache->session->invalidate();
          }
          result.ms = timer.nsecsElapsed() / 1e6;
          Q_EMIT worker->decoded(result);
        },
        QStringLiteral("decode"));
  });
}

void RenderScheduler::onDecoded(const DecodeResult& r) {
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

void RenderScheduler::requestSamples(Ranges locked, quint64 seed, int count) {
  const auto model = controller_->model();
  if (!model) return;
  gallery_ = Gallery{true, locked, seed, count};
  const EditState state = controller_->document()->state();
  if (!state.sources.empty() && !state.ready()) {
    regenerate_ = true;  // drawn once the photos are encoded by this model
    return;
  }
  const quint64 request = next_request_++;
  latest_sample_request_ = request;
  const quint64 generation = controller_->generation();
  auto codes = codes_;
  controller_->worker()->submit(
      JobQueue::Gallery,
      [this, model, state, locked, seed, count, request, generation, codes](JobQueue::Control& control) {
        QVector<QImage> images;
        LatentPlan plan;
        QString error;
        try {
          torch::NoGradGuard no_grad;
          plan = state.galleryPlan(*model, blockRanges(locked, state.model.layout), seed, count);
          // In chunks, so that a slider move meanwhile does not wait for the whole gallery.
          const int n = static_cast<int>(plan.batch());
          for (int start = 0; start < n; start += 4) {
            control.yield();
            if (control.cancelled()) return;
            const int len = std::min(4, n - start);
            auto out = toImage(model->decode(slicePlan(plan, start, len)).cpu());
            for (int i = 0; i < len; ++i) images.push_back(toQImage(out[i]));
          }
          plan = plan.to(torch::kCPU);
        } catch (const std::exception& e) {
          error = QString::fromStdString(errorMessage(e));
        }
        InferenceWorker::deliver(this, [this, images, plan, error, request, seed, generation, codes] {
          if (request != latest_sample_request_ || generation != controller_->generation()) return;
          answered_sample_request_ = request;
          if (!error.isEmpty()) {
            Q_EMIT samplesFailed(error);
            return;
          }
          samples_ = images;
          samples_seed_ = seed;
          codes->plan = plan;
          codes->generation = generation;
          Q_EMIT samplesReady(images, seed);
        });
      },
      QStringLiteral("samples"));
}

bool RenderScheduler::keepSample(int index, const QString& name) {
  if (index < 0 || index >= samples_.size() || codes_->plan.size() == 0 ||
      codes_->generation != controller_->generation() || index >= codes_->plan.batch())
    return false;
  EditSource s;
  s.name = name.toStdString();
  s.spec = SourceSpec::inlineCode({});  // no file: its picture stands in for another model
  s.picture = fromQImage(samples_[index]);
  if (controller_->model() && controller_->model()->config().image_channels == 1)
    s.picture = s.picture.select(2, 0).unsqueeze(2).contiguous();
  // The sample's own codes, bit for bit: the locked blocks' mix and the drawn ones.
  s.codes = codes_->plan.narrow(index, 1).clone();
  s.reconstruction = s.picture;
  s.note = tr("kept from the gallery (seed %1, #%2)").arg(samples_seed_).arg(index).toStdString();
  controller_->document()->addSource(s, tr("Keep %1").arg(name));
  return true;
}

}  // namespace automod::ui
