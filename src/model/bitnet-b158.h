// The BitNet b1.58 forward pass (architectures bitnet-b1.58 / bitnet-25 and bitnet: they differ
// only in the FFN activation and in per-linear scales, which the loader folds into row scales).
//
//   x = token_embd[token]
//   per layer: h = rmsnorm(x) attn_norm;  q|k|v = BL_qkv(h);  rope_neox(q, k)
//              a = softmax(q k^T / sqrt(d) + causal) v   (GQA: head h reads kv head h / group)
//              x += BL_o(rmsnorm(a) attn_sub_norm)
//              h = rmsnorm(x) ffn_norm;  g|u = BL_gate_up(h)
//              x += BL_down(rmsnorm(act(g) u) ffn_sub_norm)     act = relu^2 or silu
//   logits = (rmsnorm(x) output_norm) . output^T             (no quantization in the LM head)
// BL(x): the input row is quantized per token to int8 (absmax, kernels/kernel-types.h) and
// multiplied with the ternary matrix. SessionOptions::quantize_activations = false replaces that
// by an exact float product with the same ternary weights: the validation mode that
// ../shared/reference (llamacpp-f32) is compared against at 1e-3.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "core/aligned-buffer.h"
#include "core/thread-pool.h"
#include "kernels/ternary-matmul.h"
#include "model/bitnet-b158-ops.h"
#include "model/kv-cache.h"
#include "model/model-weights.h"

namespace bitnet::model {

struct SessionOptions {
  int64_t n_ctx = 0;  // 0: the model's context_length
  KvType kv = KvType::F16;
  bool quantize_activations = true;  // false: validation mode (see above)
  int64_t max_batch = 256;           // tokens per internal step; longer inputs are split
  // Fused residual + RMSNorm + quantization and act + sub-norm + quantization passes
  // (ops::layer_forward); false: the unfused operations. Bit-identical results.
  bool fused_norm_quant = true;
  // Undoes the load-time q|k|v and gate|up fusions at run time, to measure what they gain: q, k
  // and v (gate and up) each run as a BitLinear of their own over their rows of the packed
  // matrix, each quantizing its input again. Only with quantize_activations and without
  // fused_norm_quant (which quantizes once for the fused matrix). Same results.
  bool split_fused_linears = false;
};

class BitNetSession {
 public:
  // All buffers (activations for max_batch tokens, KV cache for n_ctx) are allocated here.
  BitNetSession(const ModelWeights& weights, const SessionOptions& options, ThreadPool& pool);

  // Evaluates tokens at positions n_past() .. n_past() + n - 1 and appends them to the cache.
  // logits receives [n][n_vocab] when all_logits, else the last token's [n_vocab] (may be null).
  // Throws std::out_of_range when the context would overflow (nothing is evaluated then) and
  // std::invalid_argument for a token id outside the vocabulary.
  void eval(std::span<const int32_t> tokens, float* logits, bool all_logits);

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_vocab() const { return cfg_.n_vocab; }
  void reset() { n_past_ = 0; }
  // Forgets the positions from n on (keeps the first min(n, n_past()) in the cache).
  void truncate(int64_t n) { n_past_ = std::min(n_past_, std::max<int64_t>(n, 0)); }
  const KvCache& kv_cache() const { return kv_; }
  const ExecutionPlan& plan() const { return st_.plan; }
  // Times every operation of eval() into m (null: off); each eval() step closes one series row.
  void set_monitor(PerfMonitor* m) { mon_ = m; }

 private:
  void eval_batch(const int32_t* tokens, int64_t n, float* logits, bool all_logits);
  void bitlinear(const PackedLinear& w, size_t dense_index, const float* in, int64_t n, float* out);
  void attention(int64_t layer, int64_t n);

  const ModelWeights& w_;
  const ModelConfig& cfg_;
  SessionOptions opt_;
  ThreadPool& pool_;
  const kernels::KernelTable& kt_;
  int64_t n_ctx_;
  int64_t n_past_ = 0;
  KvCache kv_;
  ops::StepState st_;                    // plan, activation arena, RoPE tables, dense weights
  AlignedBuffer<float> thread_scratch_;  // per thread: scores[n_ctx] + k/v rows + embedding row
  int64_t scratch_stride_ = 0;
  PerfMonitor* mon_ = nullptr;
};

}  // namespace bitnet::model
