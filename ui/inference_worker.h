#pragma once
// The editor's one inference thread: core's JobQueue (core/util/job_queue.h: priorities, coalescing
// keys, cancellation, yielding) as a QObject. Controllers submit jobs that call core functions and
// hand their results back to the GUI thread with deliver(); LibTorch runs on the worker thread only.
// Destroying it cancels what waits, stops the running job at its next check and joins the thread.
#include <QObject>
#include <QPointer>
#include <QString>

#include <atomic>
#include <functional>
#include <memory>
#include <utility>

#include "core/util/job_queue.h"
#include "ui/types.h"

namespace automod::ui {

class InferenceWorker : public QObject {
  Q_OBJECT
 public:
  using Priority = JobQueue::Priority;
  using Control = JobQueue::Control;

  /// `threads` ≤ 0: one intra-op thread per hardware thread, set on the worker thread itself.
  explicit InferenceWorker(QObject* parent = nullptr, int threads = 0);
  ~InferenceWorker() override;

  /// Queues `work` (runs on the worker thread); a non-empty `key` replaces the waiting job with that
  /// key and asks the running one to stop. Returns the job's id.
  quint64 submit(int priority, std::function<void(Control&)> work, const QString& key = {});
  void cancel(quint64 id) { queue_->cancel(id); }
  void cancelKey(const QString& key) { queue_->cancelKey(key.toStdString()); }
  /// Cancels everything (a model change: nothing computed for the old model is wanted).
  void cancelAll() { queue_->cancelAll(); }
  /// True while a job runs or waits.
  bool isBusy() const { return queue_->busy(); }
  /// The intra-op threads the worker thread runs with (0 before its first job).
  int threads() const { return queue_->workerThreads(); }

  /// Runs `f` on `receiver`'s thread (the GUI's) after the current event; dropped when `receiver`
  /// has been destroyed meanwhile. For jobs handing back their results.
  template <class F>
  static void deliver(QObject* receiver, F&& f) {
    QMetaObject::invokeMethod(receiver, std::forward<F>(f), Qt::QueuedConnection);
  }

  // What tests count (a coalesced burst of requests counts once).
  int decodesStarted() const { return decodes_started_.load(); }
  int morphsStarted() const { return morphs_started_.load(); }
  void noteDecodeStarted(quint64 request);
  void noteMorphStarted(quint64 request);

 Q_SIGNALS:
  /// Emitted on the worker thread when a decode or morph job starts computing.
  void decodeStarted(quint64 request);
  void morphStarted(quint64 request);
  /// Every image a decode job produces (previews and the final one), emitted on the worker thread.
  void decoded(const automod::ui::DecodeResult& result);

 private:
  std::unique_ptr<JobQueue> queue_;
  std::atomic<int> decodes_started_{0};
  std::atomic<int> morphs_started_{0};
};

}  // namespace automod::ui
