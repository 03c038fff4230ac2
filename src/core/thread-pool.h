// A persistent fork-join pool for the parallel loops of one forward pass.
//
// A decode step makes hundreds of parallel calls, so the per-call cost matters more than anything
// else here: workers spin on a generation counter for a short while after each job (no syscall on
// the fast path) and only then sleep on a futex (std::atomic::wait). The calling thread runs slice
// 0 itself. bench/bench-kernels measures the round-trip cost (BM_ThreadPoolOverhead).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace bitnet {

class ThreadPool {
 public:
  // n_threads counts the calling thread: ThreadPool(1) starts no thread at all.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Splits [0, n) into size() contiguous slices (slice t = [n*t/T, n*(t+1)/T), possibly empty) and
  // calls fn(begin, end, t) once per non-empty slice, t = 0 on the calling thread. Returns when all
  // slices are done. fn must not throw, and must not call parallel_for on this pool (checked).
  // One caller at a time: a pool belongs to one inference thread.
  template <class F>
  void parallel_for(int64_t n, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run(
        n, [](void* ctx, int64_t b, int64_t e, int t) { (*static_cast<Fn*>(ctx))(b, e, t); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using TaskFn = void (*)(void*, int64_t, int64_t, int);
  void run(int64_t n, TaskFn fn, void* ctx);
  void worker_main(int index);
  void run_slice(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  // Job description, written by the caller before the generation bump (release) and read by the
  // workers after they observe it (acquire).
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  bool stop_ = false;
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) std::atomic<int> sleepers_{0};
};

}  // namespace bitnet
