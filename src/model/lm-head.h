// The LM head: logits from the final normed hidden rows and the output matrix (the tied token
// embedding or output.weight), in whatever type the file stores it. Internal to the model layer.
#pragma once

#include <cstdint>

#include "core/thread-pool.h"
#include "kernels/ternary-matmul.h"
#include "model/bitnet-b158-ops.h"
#include "model/model-weights.h"

namespace bitnet::model::ops {

// logits[r * ld_logits + v] = output[v] . xn[r * n_embd] for r < rows, every v < n_vocab, split
// over the pool by vocabulary row so the output matrix is read once for all rows. row_scratch:
// per thread t, row_scratch + t * scratch_stride holds n_embd floats (no alignment needed).
//
// quantized (the session's quantize_activations): a Q6_K or Q8_0 output matrix is used in place by
// the integer block dots of kernels/kernel-types.h, each thread quantizing the rows into its
// scratch once per share of the vocabulary (up to three rows of n_embd 2560 at a time; with more
// rows the vocabulary is walked in tiles that stay in L2 while each group of rows passes over
// them). With the int8 head (LoadOptions::int8_head) and quantized: the rows quantized per row
// into q8 (as a BitLinear input) and the int8 GEMM split over the pool by row group. Otherwise -
// validation mode, or an F32 / F16 matrix - float dots, a quantized matrix dequantized one row at
// a time into the scratch.
void lm_head_rows(ThreadPool& pool, const kernels::KernelTable& kt, const ModelWeights& w,
                  const float* xn, int64_t rows, float* logits, int64_t ld_logits,
                  float* row_scratch, int64_t scratch_stride, bool quantized, Q8Scratch& q8);

}  // namespace bitnet::model::ops
