// The LM head: logits from the final normed hidden rows and the output matrix (the tied token
// embedding or output.weight), in whatever type the file stores it. Internal to the model layer.
#pragma once

#include <cstdint>

#include "core/thread-pool.h"
#include "kernels/ternary-matmul.h"
#include "model/model-weights.h"

namespace bitnet::model::ops {

// logits[r * ld_logits + v] = output[v] . xn[r * n_embd] for r < rows, every v < n_vocab, split
// over the pool by vocabulary row so the output matrix is read once for all rows. row_scratch:
// per thread t, row_scratch + t * scratch_stride holds n_embd floats (quantized output matrices
// are dequantized there one row at a time).
void lm_head_rows(ThreadPool& pool, const kernels::KernelTable& kt, const ModelWeights& w,
                  const float* xn, int64_t rows, float* logits, int64_t ld_logits,
                  float* row_scratch, int64_t scratch_stride);

}  // namespace bitnet::model::ops
