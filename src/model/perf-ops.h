// The operations a forward pass and its surroundings are timed by: the ids of the PerfMonitor
// (core/perf-monitor.h) that a session and the Engine's scheduler share, and their stable names
// ("embed", "norm", "matmul_qkv", ...) for JSON and tables.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace bitnet::model {

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

// One name per PerfOp, in order: what a PerfMonitor of these operations is constructed with.
std::span<const std::string_view> perf_op_names();

inline std::string_view perf_op_name(PerfOp op) {
  const auto names = perf_op_names();
  const auto i = static_cast<size_t>(op);
  return i < names.size() ? names[i] : std::string_view("?");
}

}  // namespace bitnet::model
