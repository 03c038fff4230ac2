// Per-row pieces of the BitNet b1.58 forward pass (bitnet-b158.h describes the graph), shared by
// the single-sequence BitNetSession and the multi-sequence BatchedSession so that both compute
// every row with the same operations in the same order: a row's result never depends on which
// other rows share its step (the ternary matmul is row-independent too, kernel-types.h), so a
// sequence decoded in a batch gets bit-identical logits to the same sequence decoded alone.
// Internal to the model layer.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/perf-monitor.h"
#include "core/thread-pool.h"
#include "kernels/ternary-matmul.h"
#include "model/execution-plan.h"
#include "model/kv-cache.h"
#include "model/model-config.h"
#include "model/model-weights.h"

namespace bitnet::model::ops {

// out[i] = x[i] / rms(x) * w[i] (sum of squares in double). out may alias x.
void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out);
// A sub-norm (attn_sub_norm, ffn_sub_norm): rmsnorm with w, or a plain copy when the model has
// none (w empty: arch llama files converted without them). out may alias x.
void sub_norm(const float* x, const std::vector<float>& w, int64_t n, float eps, float* out);

// rope: base^(-2i/rope_dim) for i < rope_dim / 2.
std::vector<double> rope_inv_freq(const ModelConfig& cfg);

// The rotation of position pos: cs[2i] = cos(pos * inv_freq[i]), cs[2i + 1] = sin(...) for
// i < rope_dim / 2 (in double). Computed once per row and step, shared by every head and layer.
void rope_angles(const std::vector<double>& inv_freq, int64_t pos, double* cs);

// NEOX rotation of one head: pairs (i, i + rope_dim / 2).
void rope_neox(float* v, int64_t rope_dim, const double* cs);

// NORM rotation of one head: adjacent pairs (2i, 2i + 1) (arch llama, Q/K rows permuted).
void rope_norm(float* v, int64_t rope_dim, const double* cs);

// Rotates the q heads and the k heads of one fused q|k|v row ([n_embd + 2 n_embd_kv]) in the
// model's rope style, by the angles of rope_angles().
void rope_qk_row(const ModelConfig& cfg, const double* cs, float* qkv_row);

// out[i] = act(gate[i]) * up[i] for one row: act = relu^2 or silu. out must not alias gate or up
// (the loops are vectorized on that promise; element results are the same as scalar).
void ffn_act_row(FfnActivation act, const float* gate, const float* up, int64_t n_ff, float* out);

// x[n_embd] = token_embd[token] (dequantized from the file's type).
void embed_row(const ModelWeights& w, int32_t token, float* x);

// Int8 activations for the quantized BitLinear of up to max_rows rows of up to max_k values, and
// one float row per thread for the fused operations (views into an ActivationArena).
struct Q8Scratch {
  int8_t* q = nullptr;     // [max_rows][max_k]
  float* scale = nullptr;  // [max_rows]
  int32_t* sum = nullptr;  // [max_rows]
  float* row = nullptr;    // [threads][max_k]
  int64_t max_k = 0;
};

// out[n][w.n] = BitLinear(in[n][w.k]): per-row absmax int8 quantization, then the ternary matmul.
void bitlinear_q8(ThreadPool& pool, const kernels::KernelTable& kt, const PackedLinear& w,
                  const float* in, int64_t n, Q8Scratch& q8, float* out);

// Fused "residual + RMSNorm + int8 quantization" of n rows of k values, parallel over rows, one
// pass per row with the normed row kept in the thread's scratch instead of written out: when add
// is not null, x[t] += add[t] (written back); then q8 row t = quantize(rmsnorm(x[t]) * w), or
// quantize(x[t]) when w is null (a missing sub-norm). Bit-identical to the unfused operations.
void norm_quant_rows(ThreadPool& pool, const kernels::KernelTable& kt, float* x, const float* add,
                     const float* w, int64_t n, int64_t k, float eps, Q8Scratch& q8);

// Fused "act(gate) * up + ffn sub-norm + int8 quantization" of n rows of gate_up ([n][2 n_ff]),
// parallel over rows, into q8. sub_w empty: no sub-norm. Bit-identical to the unfused operations.
void act_norm_quant_rows(ThreadPool& pool, const kernels::KernelTable& kt, FfnActivation act,
                         const float* gate_up, const std::vector<float>& sub_w, int64_t n,
                         int64_t n_ff, float eps, Q8Scratch& q8);

// out[n][w.n] = the ternary matmul of the n rows already quantized in q8.
void matmul_q8(ThreadPool& pool, const kernels::KernelTable& kt, const PackedLinear& w, int64_t n,
               const Q8Scratch& q8, float* out);

// out[t][r0..r1) of out[n][w.n] = BitLinear of rows [r0, r1) of w alone (r0, r1 multiples of the
// 16-row packing group): quantizes in itself, like a separately stored matrix would.
void bitlinear_q8_rows(ThreadPool& pool, const kernels::KernelTable& kt, const PackedLinear& w,
                       int64_t r0, int64_t r1, const float* in, int64_t n, Q8Scratch& q8,
                       float* out);

// The validation mode's weights: every linear of ModelWeights::linears() unpacked to int8
// [n][k] (index 4 * layer + {0: qkv, 1: attn_out, 2: gate_up, 3: down}).
struct DenseLinears {
  DenseLinears() = default;
  explicit DenseLinears(const ModelWeights& w);
  std::vector<std::vector<int8_t>> w;
};

// out[n][w.n] = in[n][w.k] . W^T * row_scale in double, with the ternary weights unpacked in
// dense (the validation mode: no activation quantization).
void bitlinear_dense(ThreadPool& pool, const PackedLinear& w, const int8_t* dense, const float* in,
                     int64_t n, float* out);

// Causal attention of nq query heads that share one kv head (consecutive heads: rows q + i * hd,
// outputs out + i * hd) against positions [0, n_pos) of one layer's cache: out_i[hd] =
// softmax(q_i . k_j * scale) . v_j over the kv head's slice at kv_off. scores: [nq][n_pos].
// Each head's result is the same for any nq (kernels/kernel-types.h, attention).
void attend_heads(const kernels::KernelTable& kt, const KvCache& kv, int64_t layer, int64_t kv_off,
                  const float* q, int64_t nq, int64_t hd, int64_t n_pos, float scale, float* scores,
                  float* out);
// attend_heads for one query head.
void attend_head(const kernels::KernelTable& kt, const KvCache& kv, int64_t layer, int64_t kv_off,
                 const float* q, int64_t hd, int64_t n_pos, float scale, float* scores, float* out);

// Activation buffers of one step of n rows (each sized by the session for its maximum rows).
struct LayerBuffers {
  float* x;        // [n][n_embd] residual stream, updated in place
  float* h;        // [n][n_embd] normed input of a linear
  float* qkv;      // [n][n_embd + 2 n_embd_kv]
  float* attn;     // [n][n_embd] attention output
  float* tmp;      // [n][max(n_embd, n_ff)]
  float* gate_up;  // [n][2 n_ff]
  float* act;      // [n][n_ff]
};

// What the fused operations need (norm_quant_rows and friends); null in layer_forward: unfused.
struct Fusion {
  ThreadPool& pool;
  const kernels::KernelTable& kt;
  Q8Scratch& q8;
};

// A session's activation buffers in one arena laid out by its execution plan (buffers whose live
// ranges never overlap share bytes), plus the per-thread rows of the fused operations.
class ActivationArena {
 public:
  ActivationArena() = default;
  ActivationArena(const ExecutionPlan& plan, int threads);
  const LayerBuffers& buffers() const { return b_; }
  Q8Scratch& q8() { return q8_; }
  size_t bytes() const { return arena_.size() + rows_.size() * sizeof(float); }

 private:
  AlignedBuffer<uint8_t> arena_;
  AlignedBuffer<float> rows_;
  LayerBuffers b_{};
  Q8Scratch q8_;
};

// What a session needs for its steps, built once from the model and its options, the same for
// both sessions: the execution plan, the activation arena it lays out, the validation mode's
// dense weights, and the RoPE tables (each row's cos/sin, filled once per step by set_rope and
// shared by every head and layer).
struct StepState {
  StepState() = default;
  StepState(const ModelWeights& w, int64_t max_rows, bool quantize_activations,
            bool fused_norm_quant, int threads);

  void set_rope(int64_t row, int64_t pos) {
    rope_angles(inv_freq, pos, rope_cs.data() + row * rope_dim);
  }
  const double* rope(int64_t row) const { return rope_cs.data() + row * rope_dim; }
  // The fused operations' context when the plan fuses, else nullopt (layer_forward unfused).
  std::optional<Fusion> fusion(ThreadPool& pool, const kernels::KernelTable& kt) {
    if (!plan.fused()) return std::nullopt;
    return Fusion{pool, kt, arena.q8()};
  }

  ExecutionPlan plan;
  ActivationArena arena;         // activations by liveness, laid out by plan
  DenseLinears dense;            // validation mode only
  std::vector<double> inv_freq;  // base^(-2i/rope_dim)
  std::vector<double> rope_cs;   // [max_rows][rope_dim]
  int64_t rope_dim = 0;
};

// One transformer layer over n rows: the graph of bitnet-b158.h, written once for both sessions.
// linear(w, k, in, out): one BitLinear over the n rows (k = 0..3: qkv, attn_out, gate_up, down).
// rope_and_attend(): rotates q and k in b.qkv, stores k and v, and writes b.attn (it times its own
// parts). mon (may be null) receives the time of each operation.
//
// fused (may be null; only with quantized activations) replaces each "norm, then quantize the
// BitLinear input" pair by one pass per row (norm_quant_rows, act_norm_quant_rows), the residual
// add before ffn_norm included, and runs the matmuls on the quantized rows: the execution plan of
// `bitnet inspect --plan`. The results are bit-identical either way. Timed as norm and ffn_act
// (quantization included; the matmul ops then exclude it).
template <class Linear, class RopeAndAttend>
void layer_forward(const ModelConfig& cfg, const LayerWeights& L, int64_t n, const LayerBuffers& b,
                   PerfMonitor* mon, const Fusion* fused, Linear&& linear,
                   RopeAndAttend&& rope_and_attend) {
  const int64_t E = cfg.n_embd, F = cfg.n_ff;
  const float eps = cfg.rms_eps;
  auto op = [](int k) { return static_cast<PerfOp>(static_cast<int>(PerfOp::MatmulQkv) + k); };
  auto timed_linear = [&](const PackedLinear& w, int k, const float* in, float* out) {
    PerfScope s(mon, op(k));
    linear(w, k, in, out);
  };
  auto residual = [&] {
    PerfScope s(mon, PerfOp::Residual);
    for (int64_t i = 0; i < n * E; ++i) b.x[i] += b.tmp[i];
  };
  if (fused) {
    auto mm = [&](const PackedLinear& w, int k, float* out) {
      PerfScope s(mon, op(k));
      matmul_q8(fused->pool, fused->kt, w, n, fused->q8, out);
    };
    auto nq = [&](float* x, const float* add, const std::vector<float>& w, int64_t k) {
      PerfScope s(mon, PerfOp::Norm);
      norm_quant_rows(fused->pool, fused->kt, x, add, w.empty() ? nullptr : w.data(), n, k, eps,
                      fused->q8);
    };
    nq(b.x, nullptr, L.attn_norm, E);
    mm(L.qkv, 0, b.qkv);
    rope_and_attend();
    nq(b.attn, nullptr, L.attn_sub_norm, E);
    mm(L.attn_out, 1, b.tmp);
    nq(b.x, b.tmp, L.ffn_norm, E);  // x += attention output, then ffn_norm
    mm(L.gate_up, 2, b.gate_up);
    {
      PerfScope s(mon, PerfOp::FfnAct);
      act_norm_quant_rows(fused->pool, fused->kt, cfg.activation, b.gate_up, L.ffn_sub_norm, n, F,
                          eps, fused->q8);
    }
    mm(L.down, 3, b.tmp);
    residual();
    return;
  }
  {
    PerfScope s(mon, PerfOp::Norm);
    for (int64_t t = 0; t < n; ++t) rmsnorm(b.x + t * E, L.attn_norm.data(), E, eps, b.h + t * E);
  }
  timed_linear(L.qkv, 0, b.h, b.qkv);
  rope_and_attend();
  {
    PerfScope s(mon, PerfOp::Norm);
    for (int64_t t = 0; t < n; ++t) sub_norm(b.attn + t * E, L.attn_sub_norm, E, eps, b.h + t * E);
  }
  timed_linear(L.attn_out, 1, b.h, b.tmp);
  residual();
  {
    PerfScope s(mon, PerfOp::Norm);
    for (int64_t t = 0; t < n; ++t) rmsnorm(b.x + t * E, L.ffn_norm.data(), E, eps, b.h + t * E);
  }
  timed_linear(L.gate_up, 2, b.h, b.gate_up);
  {
    PerfScope s(mon, PerfOp::FfnAct);
    for (int64_t t = 0; t < n; ++t) {
      const float* g = b.gate_up + t * 2 * F;
      float* a = b.act + t * F;
      ffn_act_row(cfg.activation, g, g + F, F, a);
      sub_norm(a, L.ffn_sub_norm, F, eps, a);
    }
  }
  timed_linear(L.down, 3, b.act, b.tmp);
  residual();
}

}  // namespace bitnet::model::ops
