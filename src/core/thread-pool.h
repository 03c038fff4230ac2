// A persistent fork-join pool for the parallel loops of one forward pass.
//
// A decode step makes hundreds of parallel calls, so the per-call cost matters more than anything
// else here: workers spin on a generation counter for a short while after each job (no syscall on
// the fast path) and only then sleep on a futex (std::atomic::wait). The calling thread works too.
//
// Work is claimed, not assigned: a job of n items is cut into a few contiguous chunks per thread,
// and every thread claims the next chunk with one compare-and-swap on a generation-stamped
// counter. A worker the OS has descheduled (another process on the core) therefore delays nothing
// it has not claimed: the running threads take its share, and the caller waits only for chunks
// that were actually claimed. bench/bench-kernels measures the round trip (BM_ThreadPoolOverhead).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace bitnet {

// The hardware threads of this machine (at least 1).
int hardware_threads();
// A thread count as configured: n > 0 as it is, 0 (or less) meaning all hardware threads. The one
// place "0 means all cores" is decided.
inline int resolve_threads(int n) {
  return n > 0 ? n : hardware_threads();
}

class ThreadPool {
 public:
  // n_threads counts the calling thread: ThreadPool(1) starts no thread at all.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, t) over contiguous chunks that together cover [0, n) exactly once;
  // t in [0, size()) names the thread running the chunk (0 = the caller), so per-thread scratch
  // indexed by t is safe. Chunk boundaries: chunk c of C = [n*c/C, n*(c+1)/C) with
  // C = min(n, size() * kChunksPerThread). Returns when every chunk is done. fn must not throw and
  // must not call parallel_for on this pool (checked). One caller at a time.
  template <class F>
  void parallel_for(int64_t n, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run(
        n, [](void* ctx, int64_t b, int64_t e, int t) { (*static_cast<Fn*>(ctx))(b, e, t); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

  static constexpr int kChunksPerThread = 4;

 private:
  using TaskFn = void (*)(void*, int64_t, int64_t, int);
  void run(int64_t n, TaskFn fn, void* ctx);
  void worker_main(int index);
  // Claims and runs chunks of job `gen` until none is left or the job has moved on.
  void work_on(uint32_t gen, int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  // The job. Written by the caller only while no chunk of any job is claimable (before the
  // generation bump, after the previous job completed); read by workers as atomics so a late
  // worker's read of a newer job's fields is not a data race - its claim then fails (see work_on).
  std::atomic<TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> chunks_{0};
  std::atomic<bool> stop_{false};
  alignas(64) std::atomic<uint32_t> generation_{0};  // futex word for sleeping workers
  alignas(64) std::atomic<uint64_t> claim_{0};       // (generation << 32) | next chunk
  alignas(64) std::atomic<int64_t> done_{0};         // chunks finished in the current job
  alignas(64) std::atomic<int> sleepers_{0};
};

}  // namespace bitnet
