// The BitNet b1.58 forward pass (architectures bitnet-b1.58 / bitnet-25, bitnet and ternary llama
// files: they differ only in the FFN activation, in per-linear scales the loader folds into row
// scales, in whether sub-norms exist and in the RoPE pairing), described once:
//
//   x = token_embd[token]
//   per layer: h = rmsnorm(x) attn_norm;  q|k|v = BL_qkv(h);  rope(q, k)
//              a = softmax(q k^T / sqrt(d) + causal) v   (GQA: head h reads kv head h / group)
//              x += BL_o(rmsnorm(a) attn_sub_norm)
//              h = rmsnorm(x) ffn_norm;  g|u = BL_gate_up(h)
//              x += BL_down(rmsnorm(act(g) u) ffn_sub_norm)     act = relu^2 or silu
//   logits = (rmsnorm(x) output_norm) . output^T             (no quantization in the LM head)
//
// BL(x): the input row is quantized per token to int8 (absmax, kernels/kernel-types.h) and
// multiplied with the ternary matrix. Without activation quantization (the validation mode that
// ../shared/reference's llamacpp-f32 logits are compared against at 1e-3) it is an exact float
// product with the same ternary weights.
//
// The layer is the list of operations below; the execution plan (execution-plan.h) rewrites it
// into what runs and the session (session.h) interprets it.
#pragma once

#include <vector>

#include "kernels/ternary-matmul.h"
#include "model/execution-plan.h"
#include "model/model-config.h"

namespace bitnet::model {

// One layer of the graph above as unfused operations over the plan's buffers.
std::vector<PlanOp> bitnet_b158_layer(const ModelConfig& cfg, kernels::TernaryLayout layout,
                                      bool quantize_activations);

}  // namespace bitnet::model
