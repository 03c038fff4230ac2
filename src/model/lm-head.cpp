#include "model/lm-head.h"

#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"

namespace bitnet::model::ops {
namespace {

size_t row_bytes(uint32_t type, int64_t n) {
  return formats::ggml_tensor_bytes(type, &n, 1);
}

}  // namespace

void lm_head_rows(ThreadPool& pool, const kernels::KernelTable& kt, const ModelWeights& w,
                  const float* xn, int64_t rows, float* logits, int64_t ld_logits,
                  float* row_scratch, int64_t scratch_stride) {
  const formats::GgufTensorInfo& out = *w.output().info;
  const int64_t E = w.config().n_embd;
  const size_t rb = row_bytes(out.type, E);
  const bool f32 = out.type == static_cast<uint32_t>(formats::GgmlType::F32);
  const bool f16 = out.type == static_cast<uint32_t>(formats::GgmlType::F16);
  pool.parallel_for(w.config().n_vocab, [&](int64_t v0, int64_t v1, int thread) {
    float* row = row_scratch + scratch_stride * thread;
    for (int64_t v = v0; v < v1; ++v) {
      const uint8_t* src = out.data + static_cast<size_t>(v) * rb;
      if (f32) {
        const float* wr = reinterpret_cast<const float*>(src);
        for (int64_t r = 0; r < rows; ++r)
          logits[r * ld_logits + v] = kt.dot_f32(wr, xn + r * E, E);
      } else if (f16) {  // dot_f16 per row: the kernel widens in registers (core's widening
                         // row conversion is scalar and would cost more than the dots)
        const uint16_t* wr = reinterpret_cast<const uint16_t*>(src);
        for (int64_t r = 0; r < rows; ++r)
          logits[r * ld_logits + v] = kt.dot_f16(wr, xn + r * E, E);
      } else {  // quantized embeddings (Q8_0, Q6_K): dequantize the row once, then the F32 dots
        formats::dequantize_row(out.type, src, row, E);
        for (int64_t r = 0; r < rows; ++r)
          logits[r * ld_logits + v] = kt.dot_f32(row, xn + r * E, E);
      }
    }
  });
}

}  // namespace bitnet::model::ops
