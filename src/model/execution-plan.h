// The execution plan of one forward step, built once per model and session configuration: the
// sequence of operations of ops::layer_forward (and the embedding and LM head around it), which
// fusions apply, and where every activation buffer lives in one arena.
//
// Fusions:
//   qkv            Q, K and V as one matmul (one quantization of the input, one weight stream);
//                  packed at load (model-weights.h), always on.
//   gate_up        gate and up as one matmul; packed at load, always on.
//   norm_quant     residual add + RMSNorm + int8 quantization of the next BitLinear's input in one
//                  pass per row (attn_norm, attn_sub_norm, ffn_norm with the attention residual).
//   act_norm_quant act(gate) * up + ffn_sub_norm + int8 quantization in one pass per row.
// The last two need quantized activations (not in the validation mode) and come and go together
// (SessionOptions::fused_norm_quant); with them the normed float rows and the FFN activation are
// never written out.
//
// Arena: each buffer's live ranges (from the operation that writes it to the last that reads it,
// within one layer; the residual stream x lives throughout) are known from the operation list, so
// buffers whose ranges never overlap share bytes. Offsets are assigned greedily, largest first,
// at the lowest 64-byte-aligned offset clear of every placed buffer live at the same time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ternary-matmul.h"
#include "model/model-config.h"

namespace bitnet::model {

struct PlanOptions {
  int64_t max_rows = 1;  // rows (tokens) per step
  bool quantize_activations = true;
  bool fused_norm_quant = true;  // only with quantize_activations
};

enum class PlanBuffer : uint8_t {
  X,       // [rows][n_embd] residual stream
  H,       // [rows][n_embd] normed input of a float BitLinear, and of the LM head
  Qkv,     // [rows][n_embd + 2 n_embd_kv]
  Attn,    // [rows][n_embd]
  Tmp,     // [rows][n_embd] matmul output before its residual add
  GateUp,  // [rows][2 n_ff]
  Act,     // [rows][n_ff] (unfused only)
  Q8,      // [rows][max(n_embd, n_ff)] int8 codes + a float scale and an int32 sum per row
  kCount
};

struct PlanOp {
  std::string name;    // "attn_norm", "qkv", ...
  std::string detail;  // what it does, with shapes
  std::vector<PlanBuffer> reads, writes;
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
  ExecutionPlan(const ModelConfig& cfg, kernels::TernaryLayout layout, const PlanOptions& options);

  const std::vector<PlanOp>& ops() const { return ops_; }
  const std::vector<PlanBufferInfo>& buffers() const { return buffers_; }
  const PlanOptions& options() const { return opt_; }
  bool fused() const { return opt_.quantize_activations && opt_.fused_norm_quant; }
  // Names of the fusions applied ("qkv", "gate_up", and with fused() "norm_quant",
  // "act_norm_quant").
  std::vector<std::string> fusions() const;

  size_t arena_bytes() const { return arena_bytes_; }
  size_t unshared_bytes() const;  // the buffers' sizes summed: what separate buffers would take
  size_t offset(PlanBuffer b) const { return buffers_[static_cast<size_t>(b)].offset; }
  size_t q8_scale_offset() const;  // float scales after the codes, inside the Q8 buffer
  size_t q8_sum_offset() const;    // int32 sums after the scales
  int64_t q8_row_bytes() const { return q8_k_; }

  // A human-readable listing: the fusions, the operations of one layer with their buffers, and
  // the arena with each buffer's offset, size and live ranges.
  std::string describe() const;

 private:
  void add(std::string name, std::string detail, std::vector<PlanBuffer> reads,
           std::vector<PlanBuffer> writes);
  void assign_offsets();

  ModelConfig cfg_;
  PlanOptions opt_;
  kernels::TernaryLayout layout_ = kernels::TernaryLayout::T2;
  std::vector<PlanOp> ops_;
  std::vector<PlanBufferInfo> buffers_;
  int64_t q8_k_ = 0;
  size_t arena_bytes_ = 0;
};

}  // namespace bitnet::model
