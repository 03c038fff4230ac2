// Per-operation timing of the forward pass and its surroundings, cheap enough to leave on.
//
// A PerfScope reads the monotonic clock twice (vDSO, about 20 ns each) and adds the difference to
// its operation's total and to the current step's row; end_step() closes the row into a ring of
// the last `series_capacity` steps. A 2B4T decode step records about 300 scopes (about 6 us of a
// 20+ ms step); the measured overhead is in docs/PERFORMANCE.md. Nothing allocates after
// construction. Not thread-safe: one monitor per session, used by the thread that drives it (the
// scopes wrap whole parallel calls, not the pool's workers).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string_view>
#include <vector>

namespace bitnet {

enum class PerfOp : uint8_t {
  Embed,          // token embedding rows
  Norm,           // attn_norm, ffn_norm, attn_sub_norm and output_norm RMSNorms
  MatmulQkv,      // q|k|v BitLinear (activation quantization included)
  MatmulAttnOut,  // attention output BitLinear
  MatmulGateUp,   // gate|up BitLinear
  MatmulDown,     // down BitLinear
  RopeKv,         // rotary embedding and the KV cache store
  Attention,      // softmax(q k^T) v
  FfnAct,         // act(gate) * up and the ffn sub-norm
  Residual,       // residual adds
  LmHead,         // the output matrix (logits)
  Sampling,       // next-token sampling
  Tokenize,       // prompt encoding
  Detokenize,     // token to text pieces
  kCount
};

// "embed", "norm", "matmul_qkv", ...: stable names for JSON and tables.
std::string_view perf_op_name(PerfOp op);

inline int64_t perf_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class PerfMonitor {
 public:
  static constexpr size_t kOps = static_cast<size_t>(PerfOp::kCount);

  explicit PerfMonitor(size_t series_capacity = 4096);

  void add(PerfOp op, int64_t ns) {
    const auto i = static_cast<size_t>(op);
    total_ns_[i] += ns;
    ++calls_[i];
    step_[i] += ns;
  }
  // Closes the current step (tokens: rows it evaluated) into the series.
  void end_step(int64_t tokens);
  void reset();

  int64_t total_ns(PerfOp op) const { return total_ns_[static_cast<size_t>(op)]; }
  int64_t calls(PerfOp op) const { return calls_[static_cast<size_t>(op)]; }
  int64_t steps() const { return steps_; }
  int64_t tokens() const { return tokens_; }
  // Steps kept in the series: min(steps(), series_capacity).
  size_t series_size() const;
  // Step i of the kept series (0: oldest): nanoseconds of op in that step.
  int64_t series_ns(size_t i, PerfOp op) const;

  // {"steps", "tokens", "total_ms", "ops": {name: {"calls", "total_ms", "share",
  // "per_step_us": {"mean", "p50", "p95", "p99"}}}, and with series the per-step microseconds of
  // every operation ("series": {name: [...]}, oldest first, the kept steps only).
  void write_json(std::ostream& out, bool series) const;

 private:
  std::array<int64_t, kOps> total_ns_{}, calls_{}, step_{};
  int64_t steps_ = 0, tokens_ = 0;
  size_t capacity_;
  std::vector<int64_t> ring_;  // [capacity][kOps]
};

// Times one operation into m (nothing when m is null).
class PerfScope {
 public:
  PerfScope(PerfMonitor* m, PerfOp op) : m_(m), op_(op), t0_(m ? perf_now_ns() : 0) {}
  ~PerfScope() {
    if (m_) m_->add(op_, perf_now_ns() - t0_);
  }
  PerfScope(const PerfScope&) = delete;
  PerfScope& operator=(const PerfScope&) = delete;

 private:
  PerfMonitor* m_;
  PerfOp op_;
  int64_t t0_;
};

}  // namespace bitnet
