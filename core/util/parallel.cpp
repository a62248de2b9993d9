#include "core/util/parallel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>

namespace automod {

namespace {

// Shared with helpers that may start after the call has returned: those find it closed and leave
// without touching the caller's function.
struct Loop {
  std::atomic<int64_t> next{0};
  int64_t begin = 0, end = 0, grain = 1;
  const std::function<void(int64_t, int64_t)>* f = nullptr;
  std::mutex mutex;
  std::condition_variable idle;
  int active = 0;
  bool closed = false;
  std::exception_ptr error;

  void work() {
    for (;;) {
      const int64_t b = begin + next.fetch_add(grain, std::memory_order_relaxed);
      if (b >= end) return;
      try {
        (*f)(b, std::min(end, b + grain));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        next.store(end - begin, std::memory_order_relaxed);  // skip what is left
        return;
      }
    }
  }
};

}  // namespace

void parallelFor(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& f,
                 int threads) {
  if (end <= begin) return;
  grain = std::max<int64_t>(1, grain);
  if (threads <= 0) threads = at::get_num_threads();
  const int64_t chunks = (end - begin + grain - 1) / grain;
  const int helpers = static_cast<int>(std::min<int64_t>(threads, chunks)) - 1;
  if (helpers <= 0) {
    f(begin, end);
    return;
  }
  auto loop = std::make_shared<Loop>();
  loop->begin = begin, loop->end = end, loop->grain = grain, loop->f = &f;
  for (int i = 0; i < helpers; ++i)
    at::launch([loop] {
      {
        std::lock_guard<std::mutex> lock(loop->mutex);
        if (loop->closed) return;
        ++loop->active;
      }
      loop->work();
      std::lock_guard<std::mutex> lock(loop->mutex);
      if (--loop->active == 0) loop->idle.notify_all();
    });
  loop->work();
  std::unique_lock<std::mutex> lock(loop->mutex);
  loop->closed = true;
  loop->idle.wait(lock, [&] { return loop->active == 0; });
  if (loop->error) std::rethrow_exception(loop->error);
}

}  // namespace automod
