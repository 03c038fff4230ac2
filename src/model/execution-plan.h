// The execution plan of one forward step, built once per model and session configuration: the
// operations the session's interpreter runs (Session::step runs ops() in order, the layer block
// once per layer), which fusions apply, and where every activation buffer and per-thread scratch
// lives in one arena. There is one description of the graph: the architecture's layer as a list of
// unfused operations (bitnet-b158.h: bitnet_b158_layer), turned into the list that runs by
// rewrites, and the buffers' lifetimes derived from that same list, as ggml-alloc derives them from
// the graph it runs.
//
// Rewrites:
//   norm_quant     RMSNorm then a BitLinear that quantizes its input (attn_norm, attn_sub_norm, and
//                  ffn_norm with the residual add before it) become one pass per row writing the
//                  int8 rows (NormQuant) and a matmul of those rows (MatmulQ8).
//   act_norm_quant act(gate) * up + ffn_sub_norm then the down BitLinear: likewise (ActNormQuant).
//     Both need quantized activations (not in the validation mode) and come and go together
//     (PlanOptions::fused_norm_quant); with them the normed float rows and the FFN activation are
//     never written out. Results are bit-identical either way.
//   split_linears  (benchmarks only, bitnet bench --split-linears) q, k, v and gate, up as
//     BitLinears of their own over their rows of the fused matrices, each quantizing its input
//     again: what the load-time qkv and gate_up fusions (model-weights.h) save.
//
// Arena: each buffer's live ranges (from the operation that writes it to the last that reads it,
// within one layer; the residual stream x and the RoPE table live throughout) are known from the
// operation list, so buffers whose ranges never overlap share bytes. Offsets are assigned greedily,
// largest first, at the lowest 64-byte-aligned offset clear of every placed buffer live at the same
// time. Per-thread scratch (the fused rows, attention scores, LM-head rows) is part of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ternary-matmul.h"
#include "model/model-config.h"
#include "model/perf-ops.h"

namespace bitnet::model {

struct PlanOptions {
  int64_t max_rows = 1;  // rows (tokens) per step
  bool quantize_activations = true;
  bool fused_norm_quant = true;  // only with quantize_activations
  bool split_linears = false;    // only with quantize_activations and without fused_norm_quant
  int64_t n_ctx = 0;             // positions attention reads (sizes the score scratch); 0: model's
  int threads = 1;               // threads of the step (one scratch row of each kind per thread)
};

enum class PlanBuffer : uint8_t {
  X,         // [rows][n_embd] residual stream
  H,         // [rows][n_embd] normed input of a float BitLinear, and of the LM head
  Qkv,       // [rows][n_embd + 2 n_embd_kv]
  Attn,      // [rows][n_embd]
  Tmp,       // [rows][n_embd] matmul output before its residual add
  GateUp,    // [rows][2 n_ff]
  Act,       // [rows][n_ff] (unfused only)
  Q8,        // [rows][max(n_embd, n_ff)] int8 codes + a float scale and an int32 sum per row
  Rope,      // [rows][rope_dim] cos/sin of each row's position (double), set once per step
  Rows,      // [threads][max(n_embd, n_ff)] a fused operation's normed row
  Scores,    // [threads][n_head / n_head_kv][n_ctx] attention scores of one item's heads
  HeadRows,  // [threads][n_embd] the LM head's row scratch
  kCount
};

enum class OpKind : uint8_t {
  Embed,         // x = token_embd[token]
  Norm,          // out = rmsnorm(in) * norm (a copy for a sub-norm the model lacks)
  Linear,        // out[row0, row1) = BitLinear(in): quantizes in itself (float in validation mode)
  NormQuant,     // (x += tmp when add_residual) q8 = quantize(rmsnorm(x) * norm)
  MatmulQ8,      // out = the ternary matmul of the rows already in q8
  Attention,     // rope q and k, store k and v in the KV pages, softmax(q k^T) v
  Residual,      // x += tmp
  ActNorm,       // act = sub_norm(act_fn(gate) * up)
  ActNormQuant,  // q8 = quantize(sub_norm(act_fn(gate) * up))
  OutputNorm,    // h = rmsnorm(x) output_norm, rows that want logits
  LmHead,        // logits = h . output^T
};

enum class LinearId : uint8_t { Qkv, AttnOut, GateUp, Down };  // ModelWeights' packed linears
enum class NormId : uint8_t { None, Attn, AttnSub, Ffn, FfnSub, Output };

struct PlanOp {
  OpKind kind = OpKind::Embed;
  std::string name;    // "attn_norm", "qkv", ...
  std::string detail;  // what it does, with shapes
  std::vector<PlanBuffer> reads, writes;
  std::vector<PlanBuffer> scratch;  // used only within the operation
  LinearId linear = LinearId::Qkv;  // Linear, MatmulQ8
  NormId norm = NormId::None;       // Norm, NormQuant, ActNorm, ActNormQuant
  int64_t row0 = 0, row1 = -1;      // Linear: rows [row0, row1) of the matrix (-1: all)
  bool add_residual = false;        // NormQuant
  PerfOp timer = PerfOp::Norm;      // the profile's bucket
};

struct PlanBufferInfo {
  PlanBuffer id;
  std::string name;
  size_t bytes = 0;
  std::vector<std::pair<int, int>> live;  // [first op, last op] ranges, op indices
  size_t offset = 0;                      // in the arena
  bool used = false;
};

class ExecutionPlan {
 public:
  ExecutionPlan() = default;
  // Throws std::invalid_argument for split_linears with rows that are not whole packed groups,
  // or with quantize_activations off or fused_norm_quant on.
  ExecutionPlan(const ModelConfig& cfg, kernels::TernaryLayout layout, const PlanOptions& options);

  // Every operation of a step: embed, the layer block (layer_begin()..layer_end(), run once per
  // layer), output_norm and lm_head.
  const std::vector<PlanOp>& ops() const { return ops_; }
  size_t layer_begin() const { return 1; }
  size_t layer_end() const { return ops_.size() - 2; }
  const std::vector<PlanBufferInfo>& buffers() const { return buffers_; }
  const PlanOptions& options() const { return opt_; }
  bool fused() const { return opt_.quantize_activations && opt_.fused_norm_quant; }
  // Names of the fusions applied ("qkv", "gate_up", and with fused() "norm_quant",
  // "act_norm_quant"; not "qkv" and "gate_up" with split_linears).
  std::vector<std::string> fusions() const;

  size_t arena_bytes() const { return arena_bytes_; }
  size_t unshared_bytes() const;  // the buffers' sizes summed: what separate buffers would take
  size_t offset(PlanBuffer b) const { return buffers_[static_cast<size_t>(b)].offset; }
  size_t q8_scale_offset() const;  // float scales after the codes, inside the Q8 buffer
  size_t q8_sum_offset() const;    // int32 sums after the scales
  int64_t q8_row_bytes() const { return q8_k_; }
  int64_t scores_stride() const { return scores_stride_; }  // floats per thread in Scores
  int64_t head_stride() const { return head_stride_; }      // floats per thread in HeadRows

  // A human-readable listing: the fusions, the operations of one layer with their buffers, and
  // the arena with each buffer's offset, size and live ranges.
  std::string describe() const;

 private:
  void derive_lifetimes();
  void assign_offsets();

  ModelConfig cfg_;
  PlanOptions opt_;
  kernels::TernaryLayout layout_ = kernels::TernaryLayout::T2;
  std::vector<PlanOp> ops_;
  std::vector<PlanBufferInfo> buffers_;
  int64_t q8_k_ = 0, scores_stride_ = 0, head_stride_ = 0;
  size_t arena_bytes_ = 0;
};

// The rewrites (in place), exposed for tests: each keeps the operations' results bit-identical.
void fuse_norm_quant(std::vector<PlanOp>& layer);
void split_linears(std::vector<PlanOp>& layer, const ModelConfig& cfg);

}  // namespace bitnet::model
