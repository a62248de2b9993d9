#include "core/util/job_queue.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <climits>

namespace automod {

bool JobQueue::Control::cancelled() const { return flag_->load(std::memory_order_relaxed); }

void JobQueue::Control::yield() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(queue_->mutex_);
      if (!queue_->takeNext(priority_, job, lock)) return;
    }
    queue_->runJob(job);
  }
}

JobQueue::JobQueue(int threads) : threads_(threads) { thread_ = std::thread([this] { loop(); }); }

JobQueue::~JobQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    for (auto& j : waiting_) j.cancelled->store(true);
    waiting_.clear();
    for (auto* j : running_) j->cancelled->store(true);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t JobQueue::submit(int priority, Work work, const std::string& key) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_id_++;
    if (!key.empty()) {
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (it->key == key) {
          it->cancelled->store(true);
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto* j : running_)
        if (j->key == key) j->cancelled->store(true);
    }
    waiting_.push_back(Job{id, priority, key, std::move(work), std::make_shared<std::atomic<bool>>(false)});
  }
  wake_.notify_all();
  return id;
}

void JobQueue::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if (it->id == id) {
      it->cancelled->store(true);
      waiting_.erase(it);
      break;
    }
  for (auto* j : running_)
    if (j->id == id) j->cancelled->store(true);
  idle_.notify_all();
}

void JobQueue::cancelKey(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->key == key) {
      it->cancelled->store(true);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto* j : running_)
    if (j->key == key) j->cancelled->store(true);
  idle_.notify_all();
}

void JobQueue::cancelAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& j : waiting_) j.cancelled->store(true);
  waiting_.clear();
  for (auto* j : running_) j->cancelled->store(true);
  idle_.notify_all();
}

bool JobQueue::busy() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !waiting_.empty() || !running_.empty();
}

int JobQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(waiting_.size());
}

void JobQueue::waitIdle() {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [this] { return waiting_.empty() && running_.empty(); });
}

bool JobQueue::takeNext(int below, Job& job, std::unique_lock<std::mutex>&) {
  // The first waiting job of the best priority (lowest value) below `below`; FIFO within a priority.
  auto best = waiting_.end();
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if (it->priority < below && (best == waiting_.end() || it->priority < best->priority)) best = it;
  if (best == waiting_.end()) return false;
  job = std::move(*best);
  waiting_.erase(best);
  return true;
}

void JobQueue::runJob(Job& job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_.push_back(&job);
  }
  started_.fetch_add(1);
  Control control(this, job.id, job.priority, job.cancelled);
  // A job reports its own errors (it owns the way back to its caller); one that throws anyway must
  // not take the worker thread, and with it the editor, down.
  try {
    if (!job.cancelled->load()) job.work(control);
  } catch (...) {
  }
  job.work = nullptr;  // release what the job captured (models, images) on this thread
  std::lock_guard<std::mutex> lock(mutex_);
  running_.erase(std::find(running_.begin(), running_.end(), &job));
  if (waiting_.empty() && running_.empty()) idle_.notify_all();
}

void JobQueue::loop() {
  // LibTorch's intra-op threads are a per-thread setting under OpenMP: set them here, on the thread
  // that runs the models, not only on the main thread.
  const int n = threads_ > 0 ? threads_ : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::init_num_threads();
  at::set_num_threads(n);
  worker_threads_.store(at::get_num_threads());
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !waiting_.empty(); });
      if (stop_) return;
      takeNext(INT_MAX, job, lock);
    }
    runJob(job);
  }
}

}  // namespace automod
