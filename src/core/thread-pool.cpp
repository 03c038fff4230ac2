#include "core/thread-pool.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bitnet {

int hardware_threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}
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
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work_on(uint32_t gen, int thread) {
  for (;;) {
    uint64_t cur = claim_.load(std::memory_order_acquire);
    // The fields are read before the claim. If the claim succeeds, the job was still `gen` and
    // unfinished at that moment, so the caller had not yet replaced these fields: run() closes
    // the finished job's counter before it writes a new job's fields, so reading any new field
    // (acquire, pairing with the release stores) makes a CAS on the old counter value fail.
    // Without the close, a late worker could pair the old counter (c == old chunks) with a newer
    // job's larger chunks and fn/ctx, run a chunk twice (done_ then overshoots and the caller
    // spins forever) or call a new fn on an old ctx.
    const TaskFn fn = fn_.load(std::memory_order_acquire);
    void* const ctx = ctx_.load(std::memory_order_acquire);
    const int64_t n = n_.load(std::memory_order_acquire);
    const int64_t chunks = chunks_.load(std::memory_order_acquire);
    int64_t c;
    do {
      if (static_cast<uint32_t>(cur >> 32) != gen) return;  // a newer job: not ours
      c = static_cast<int64_t>(cur & 0xffffffffu);
      if (c >= chunks) return;  // all claimed
    } while (!claim_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel,
                                           std::memory_order_acquire));
    fn(ctx, n * c / chunks, n * (c + 1) / chunks, thread);
    done_.fetch_add(1, std::memory_order_release);
  }
}

void ThreadPool::run(int64_t n, TaskFn fn, void* ctx) {
  if (tl_running_pool == this) {
    std::fputs("bitnet: ThreadPool::parallel_for called from inside one of its own tasks\n",
               stderr);
    std::abort();
  }
  if (n <= 0) return;
  if (n_threads_ == 1) {
    fn(ctx, 0, n, 0);
    return;
  }
  tl_running_pool = this;
  const int64_t chunks = std::min<int64_t>(n, int64_t{n_threads_} * kChunksPerThread);
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  // Close the previous job's counter (no chunk index is >= 0xffffffff) before replacing the
  // fields it was read with; see work_on.
  claim_.exchange((static_cast<uint64_t>(gen - 1) << 32) | 0xffffffffu, std::memory_order_acq_rel);
  fn_.store(fn, std::memory_order_release);
  ctx_.store(ctx, std::memory_order_release);
  n_.store(n, std::memory_order_release);
  chunks_.store(chunks, std::memory_order_release);
  done_.store(0, std::memory_order_relaxed);
  claim_.store(static_cast<uint64_t>(gen) << 32, std::memory_order_release);
  generation_.store(gen, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  work_on(gen, 0);
  while (done_.load(std::memory_order_acquire) != chunks) cpu_relax();
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
      // Announce the sleep before re-checking; run() publishes the generation before reading
      // sleepers_, so with seq_cst on both sides either we see it or it sees us (no lost wake).
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (generation_.load(std::memory_order_seq_cst) == seen) generation_.wait(seen);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_relaxed)) return;
    work_on(g, index);
  }
}

}  // namespace bitnet
