#include "ui/inference_worker.h"

namespace automod::ui {

InferenceWorker::InferenceWorker(QObject* parent, int threads)
    : QObject(parent), queue_(std::make_unique<JobQueue>(threads)) {
  qRegisterMetaType<automod::ui::DecodeResult>();
}

InferenceWorker::~InferenceWorker() {
  // Before the QObject goes: the running job may still emit this object's signals.
  queue_.reset();
}

quint64 InferenceWorker::submit(int priority, std::function<void(Control&)> work, const QString& key) {
  return queue_->submit(priority, std::move(work), key.toStdString());
}

void InferenceWorker::noteDecodeStarted(quint64 request) {
  decodes_started_.fetch_add(1);
  Q_EMIT decodeStarted(request);
}

void InferenceWorker::noteMorphStarted(quint64 request) {
  morphs_started_.fetch_add(1);
  Q_EMIT morphStarted(request);
}

}  // namespace automod::ui
