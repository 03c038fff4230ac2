// The operations of the BitNet b1.58 forward pass (bitnet-b158.h describes the graph) that the
// session's plan interpreter calls (session.cpp). Each computes every row from that row alone, in
// the same order whatever else shares the step (the ternary matmul is row-independent too,
// kernel-types.h), so a sequence's logits do not depend on the batch it runs in. Internal to the
// model layer.
#pragma once

#include <cstdint>
#include <vector>

#include "core/perf-monitor.h"
#include "core/thread-pool.h"
#include "kernels/ternary-matmul.h"
#include "model/kv-cache.h"
#include "model/model-config.h"
#include "model/model-weights.h"
#include "model/perf-ops.h"

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

}  // namespace bitnet::model::ops
