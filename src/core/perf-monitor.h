// Per-operation timing of the forward pass and its surroundings, cheap enough to leave on.
//
// A PerfScope reads the CPU's time-stamp counter twice (rdtsc on x86-64, cntvct_el0 on aarch64:
// about 16 ns here against 26 ns for the vDSO monotonic clock) and adds the difference to its
// operation's total and to the current step's row; end_step() closes the row into a ring of the
// last `series_capacity` steps. Ticks become nanoseconds only when reported, with a rate
// calibrated once against the monotonic clock. A 2B4T decode step records about 330 scopes; the
// measured overhead is in docs/PERFORMANCE.md. Nothing allocates after construction. Not
// thread-safe: one monitor per session, used by the thread that drives it (the scopes wrap whole
// parallel calls, not the pool's workers).
#pragma once

#include <array>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <ostream>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace bitnet {

// An operation is a small integer id, 0 .. PerfMonitor::kMaxOps - 1, whose name the monitor's owner
// gives at construction: the monitor knows no operation of its own (the model layer enumerates the
// transformer's in model/perf-ops.h). Any enumeration whose values are those ids converts.
struct PerfOpId {
  size_t index;
  constexpr PerfOpId(size_t i) : index(i) {}  // NOLINT(google-explicit-constructor)
  template <class E>
  requires std::is_enum_v<E>
  constexpr PerfOpId(E e) : index(static_cast<size_t>(e)) {}  // NOLINT(google-explicit-constructor)
};

inline int64_t perf_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The monitor's clock: an invariant cycle counter where there is one, else perf_now_ns().
inline int64_t perf_ticks() {
#if defined(__x86_64__)
  return static_cast<int64_t>(__builtin_ia32_rdtsc());
#elif defined(__aarch64__)
  uint64_t v;
  asm volatile("mrs %0, cntvct_el0" : "=r"(v));
  return static_cast<int64_t>(v);
#else
  return perf_now_ns();
#endif
}

// Nanoseconds per perf_ticks() tick, measured once (about 20 ms against the monotonic clock, on
// first use) and cached.
double perf_ns_per_tick();

class PerfMonitor {
 public:
  static constexpr size_t kMaxOps = 32;

  // op_names: the name of every operation id, in id order (at most kMaxOps; the strings must
  // outlive the monitor, as literals do); they key the JSON. ns_per_tick: 0 calibrates
  // (perf_ns_per_tick()) when the first report needs it; tests pass 1 to count in plain units.
  explicit PerfMonitor(std::span<const std::string_view> op_names, size_t series_capacity = 4096,
                       double ns_per_tick = 0);

  size_t ops() const { return n_ops_; }
  std::string_view name(PerfOpId op) const {
    return op.index < n_ops_ ? names_[op.index] : std::string_view("?");
  }

  // op must be below ops() (checked in debug builds only: this is the hot path).
  void add(PerfOpId op, int64_t ticks) {
    const size_t i = op.index;
    assert(i < n_ops_);
    total_[i] += ticks;
    ++calls_[i];
    step_[i] += ticks;
  }
  // Closes the current step (tokens: rows it evaluated) into the series.
  void end_step(int64_t tokens);
  void reset();

  int64_t total_ticks(PerfOpId op) const { return op.index < n_ops_ ? total_[op.index] : 0; }
  double total_ns(PerfOpId op) const {
    return static_cast<double>(total_ticks(op)) * ns_per_tick();
  }
  double ns_per_tick() const;
  int64_t calls(PerfOpId op) const { return op.index < n_ops_ ? calls_[op.index] : 0; }
  int64_t steps() const { return steps_; }
  int64_t tokens() const { return tokens_; }
  // Steps kept in the series: min(steps(), series_capacity).
  size_t series_size() const;
  // Step i of the kept series (0: oldest): ticks of op in that step.
  int64_t series_ticks(size_t i, PerfOpId op) const;

  // {"steps", "tokens", "total_ms", "ops": {name: {"calls", "total_ms", "share",
  // "per_step_us": {"mean", "p50", "p95", "p99"}}}, and with series the per-step microseconds of
  // every operation ("series": {name: [...]}, oldest first, the kept steps only).
  void write_json(std::ostream& out, bool series) const;

 private:
  std::array<std::string_view, kMaxOps> names_{};
  size_t n_ops_ = 0;
  std::array<int64_t, kMaxOps> total_{}, calls_{}, step_{};  // ticks, except calls_
  int64_t steps_ = 0, tokens_ = 0;
  size_t capacity_;
  mutable double ns_per_tick_;
  std::vector<int64_t> ring_;  // [capacity][ops()] ticks
};

// Times one operation into m (nothing when m is null).
class PerfScope {
 public:
  PerfScope(PerfMonitor* m, PerfOpId op) : m_(m), op_(op), t0_(m ? perf_ticks() : 0) {}
  ~PerfScope() {
    if (m_) m_->add(op_, perf_ticks() - t0_);
  }
  PerfScope(const PerfScope&) = delete;
  PerfScope& operator=(const PerfScope&) = delete;

 private:
  PerfMonitor* m_;
  PerfOpId op_;
  int64_t t0_;
};

}  // namespace bitnet
