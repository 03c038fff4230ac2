#include "model/perf-ops.h"

#include <array>

namespace bitnet::model {

std::span<const std::string_view> perf_op_names() {
  static constexpr std::array<std::string_view, static_cast<size_t>(PerfOp::kCount)> kNames = {
      "embed",       "norm",     "matmul_qkv", "matmul_attn_out", "matmul_gate_up",
      "matmul_down", "rope_kv",  "attention",  "ffn_act",         "residual",
      "lm_head",     "sampling", "tokenize",   "detokenize"};
  return kNames;
}

}  // namespace bitnet::model
