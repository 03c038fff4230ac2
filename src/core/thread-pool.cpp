#include "core/thread-pool.h"

#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bitnet {
namespace {

// About 30-100 us of spinning on current x86 cores before a worker goes to sleep: long enough to
// span the gap between two matmuls of a decode step, short enough not to burn a core when idle.
constexpr int kSpinIterations = 1 << 14;

thread_local const ThreadPool* tl_running_pool = nullptr;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_slice(int index) {
  const int64_t begin = n_ * index / n_threads_;
  const int64_t end = n_ * (index + 1) / n_threads_;
  if (begin < end) fn_(ctx_, begin, end, index);
}

void ThreadPool::run(int64_t n, TaskFn fn, void* ctx) {
  if (tl_running_pool == this) {
    std::fputs("bitnet: ThreadPool::parallel_for called from inside one of its own tasks\n",
               stderr);
    std::abort();
  }
  if (n <= 0) return;
  tl_running_pool = this;
  fn_ = fn;
  ctx_ = ctx;
  n_ = n;
  if (n_threads_ > 1) {
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  }
  run_slice(0);
  while (pending_.load(std::memory_order_acquire) != 0) cpu_relax();
  tl_running_pool = nullptr;
}

void ThreadPool::worker_main(int index) {
  tl_running_pool = this;
  // Start from the initial generation, not a fresh load: a job posted before this thread got
  // going must still be seen as new.
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      // Announce the sleep before re-checking; run() bumps the generation before reading sleepers_,
      // so with seq_cst on both sides either we see the new generation or it sees us (no lost
      // wake).
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (generation_.load(std::memory_order_seq_cst) == seen) generation_.wait(seen);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_) return;
    run_slice(index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace bitnet
