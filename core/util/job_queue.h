#pragma once
// One worker thread that runs jobs in priority order (docs/design.md §1: the editor stays live while
// photos encode, refinements run and videos are written). Every model computation of the editor goes
// through one JobQueue, so LibTorch runs on one thread and the GUI thread never waits for it.
//
// - Priority: a lower value runs first; jobs of one priority run in the order they were submitted.
// - Coalescing: a job submitted with a key replaces a job with the same key that has not started,
//   and asks a running one to stop (its Control::cancelled() turns true). A slider drag therefore
//   never queues more than one decode.
// - Cancellation: cancel(id) or cancelKey(key) stops a job that has not started (it never runs) and
//   asks a running one to stop at its next check.
// - Yielding: a long job (a refinement, a video) calls Control::yield() between its steps; the jobs
//   of a higher priority that are waiting run there, on this thread, before it goes on. A decode
//   requested during a two-minute refinement is shown after one step, not after the refinement.
// - Threads: the worker sets LibTorch's intra-op thread count on itself when it starts. With OpenMP
//   the count is a per-thread setting: setting it on the main thread does not reach the worker.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace automod {

class JobQueue {
 public:
  /// Lower runs first.
  enum Priority : int {
    Intake = 0,      ///< photos being encoded: the mix needs its sources
    Render = 1,      ///< the live result (decode), morph frames
    Gallery = 2,     ///< sample galleries
    Background = 3,  ///< refinements, re-encoding after a model change, video exports
  };

  /// What a running job sees of the queue.
  class Control {
   public:
    /// True once the job was cancelled, replaced by a job with the same key, or the queue is
    /// shutting down. Check it between steps and return early.
    bool cancelled() const;
    /// Runs the waiting jobs of a higher priority than this one's, then returns. Only from the job's
    /// own thread (the worker).
    void yield();
    uint64_t id() const { return id_; }

   private:
    friend class JobQueue;
    Control(JobQueue* queue, uint64_t id, int priority, std::shared_ptr<std::atomic<bool>> flag)
        : queue_(queue), id_(id), priority_(priority), flag_(std::move(flag)) {}
    JobQueue* queue_;
    uint64_t id_;
    int priority_;
    std::shared_ptr<std::atomic<bool>> flag_;
  };
  using Work = std::function<void(Control&)>;

  /// `threads` ≤ 0: one per hardware thread (LibTorch's intra-op count on the worker thread).
  explicit JobQueue(int threads = 0);
  /// Cancels what is waiting, asks the running job to stop and joins the worker.
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  /// Queues `work`; returns its id (> 0). With a non-empty `key`, replaces a waiting job with the
  /// same key (it never runs) and asks a running one to stop.
  uint64_t submit(int priority, Work work, const std::string& key = {});
  /// Stops job `id`: dropped when waiting, asked to stop when running. Unknown ids are ignored.
  void cancel(uint64_t id);
  /// Stops every job with this key (waiting or running).
  void cancelKey(const std::string& key);
  /// Stops every job, waiting or running.
  void cancelAll();
  /// True while a job runs or waits.
  bool busy() const;
  /// Jobs waiting (not counting the running one).
  int waiting() const;
  /// Blocks until nothing runs or waits (tests, shutdown of a window).
  void waitIdle();
  /// The intra-op thread count the worker thread runs with (0 before it started).
  int workerThreads() const { return worker_threads_.load(); }
  /// Jobs started so far (a coalesced burst counts once).
  uint64_t started() const { return started_.load(); }

 private:
  struct Job {
    uint64_t id = 0;
    int priority = 0;
    std::string key;
    Work work;
    std::shared_ptr<std::atomic<bool>> cancelled;
  };
  void loop();
  /// Takes the first waiting job of priority < `below` (all when below is INT_MAX); false when none.
  bool takeNext(int below, Job& job, std::unique_lock<std::mutex>& lock);
  void runJob(Job& job);

  mutable std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<Job> waiting_;
  std::vector<Job*> running_;  // the running job and the ones run inside its yield()
  bool stop_ = false;
  uint64_t next_id_ = 1;
  int threads_;
  std::atomic<int> worker_threads_{0};
  std::atomic<uint64_t> started_{0};
  std::thread thread_;
};

}  // namespace automod
