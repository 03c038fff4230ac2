#include "model/lm-head.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"

namespace bitnet::model::ops {
namespace {

size_t row_bytes(uint32_t type, int64_t n) {
  return formats::ggml_tensor_bytes(type, &n, 1);
}

// With more rows than a thread's scratch holds, the vocabulary is walked in tiles of this many
// matrix bytes: a tile stays in L2 (1 MiB per core here), or at worst in L3, while each group of
// rows is quantized again and passes over it, so DRAM delivers the matrix once. Re-quantizing a
// group of three rows of 2560 (about 0.9 us with AVX-512) adds about 3% to its dots over a tile of
// Q6_K (about 30 us).
constexpr size_t kTileBytes = size_t{1} << 20;

// Quantized activation rows in one thread's scratch (kernels::BlockQ8Rows): row r at
// base + r * stride bytes, base the first 64-byte boundary of the scratch, holding the codes
// [n_embd], the block scales [n_embd / block] and, for Q6_K, the 16-sums [n_embd / 16].
struct QuantRows {
  int64_t block = 0;
  bool sums = false;
  size_t stride = 0;
  int64_t per_pass = 0;  // rows that fit at once; 0: none, use the float path
};

QuantRows quant_rows(uint32_t type, int64_t n_embd, size_t scratch_bytes) {
  QuantRows q;
  if (type == static_cast<uint32_t>(formats::GgmlType::Q6_K)) {
    q.block = kernels::kQ6KBlock;
    q.sums = true;
  } else if (type == static_cast<uint32_t>(formats::GgmlType::Q8_0)) {
    q.block = kernels::kQ80Block;
  } else {
    return q;
  }
  if (n_embd % q.block != 0) return q;  // a file the loader accepts never has this
  const size_t bytes = static_cast<size_t>(n_embd + n_embd / q.block * 4 +
                                           (q.sums ? n_embd / kernels::kQ8SumSpan * 2 : 0));
  q.stride = (bytes + 63) / 64 * 64;
  const size_t usable = scratch_bytes > 63 ? scratch_bytes - 63 : 0;  // after aligning the base
  q.per_pass = usable >= bytes ? static_cast<int64_t>(1 + (usable - bytes) / q.stride) : 0;
  return q;
}

}  // namespace

void lm_head_rows(ThreadPool& pool, const kernels::KernelTable& kt, const ModelWeights& w,
                  const float* xn, int64_t rows, float* logits, int64_t ld_logits,
                  float* row_scratch, int64_t scratch_stride, bool quantized, Q8Scratch& q8) {
  const formats::GgufTensorInfo& out = *w.output().info;
  const int64_t E = w.config().n_embd;
  if (quantized && w.int8_head()) {
    kernels::quantize_rows(pool, kt, xn, E, rows, E, q8.q, q8.max_k, q8.scale, q8.sum);
    kernels::int8_matmul(pool, kt, *w.int8_head(),
                         kernels::QuantizedRows{q8.q, q8.max_k, q8.scale, q8.sum, rows}, logits,
                         ld_logits);
    return;
  }
  const int64_t V = w.config().n_vocab;
  const size_t rb = row_bytes(out.type, E);
  const QuantRows qr = quant_rows(out.type, E, static_cast<size_t>(E) * sizeof(float));
  if (quantized && qr.per_pass > 0) {
    const bool q6 = qr.sums;
    const kernels::BlockDotFn dot = q6 ? kt.dot_q6_k : kt.dot_q8_0;
    const int64_t per_pass = std::min(rows, qr.per_pass);
    const int64_t tile = rows <= per_pass ? V : std::max<int64_t>(16, kTileBytes / rb);
    pool.parallel_for(V, [&](int64_t v0, int64_t v1, int thread) {
      const auto at = reinterpret_cast<uintptr_t>(row_scratch + scratch_stride * thread);
      uint8_t* base = reinterpret_cast<uint8_t*>((at + 63) / 64 * 64);
      kernels::BlockQ8Rows a;
      a.q = reinterpret_cast<const int8_t*>(base);
      a.d = reinterpret_cast<const float*>(base + E);
      a.bsum = q6 ? reinterpret_cast<const int16_t*>(base + E + E / qr.block * 4) : nullptr;
      a.ldq = static_cast<int64_t>(qr.stride);
      a.ldd = static_cast<int64_t>(qr.stride / 4);
      a.ldbsum = static_cast<int64_t>(qr.stride / 2);
      a.k = E;
      for (int64_t t0 = v0; t0 < v1; t0 += tile) {
        const int64_t t1 = std::min(v1, t0 + tile);
        for (int64_t r0 = 0; r0 < rows; r0 += per_pass) {
          a.m = std::min(per_pass, rows - r0);
          // Once per share of the vocabulary when every row fits (decode: one row, a few hundred
          // nanoseconds), else once per tile and group of rows (1/tile of the dot products' work).
          for (int64_t r = 0; r < a.m; ++r) {
            uint8_t* row = base + static_cast<size_t>(r) * qr.stride;
            kt.quantize_blocks(
                xn + (r0 + r) * E, E, qr.block, reinterpret_cast<int8_t*>(row),
                reinterpret_cast<float*>(row + E),
                q6 ? reinterpret_cast<int16_t*>(row + E + E / qr.block * 4) : nullptr);
          }
          dot(out.data + static_cast<size_t>(t0) * rb, rb, t1 - t0, a, logits + r0 * ld_logits + t0,
              ld_logits);
        }
      }
    });
    return;
  }
  const bool f32 = out.type == static_cast<uint32_t>(formats::GgmlType::F32);
  const bool f16 = out.type == static_cast<uint32_t>(formats::GgmlType::F16);
  pool.parallel_for(V, [&](int64_t v0, int64_t v1, int thread) {
    // F16 / F32: all rows at once, register tiles of matrix rows x rows in L2-sized blocks.
    if (f16) {
      kt.dot_f16_tile(reinterpret_cast<const uint16_t*>(out.data) + v0 * E, E, v1 - v0, xn, E, rows,
                      E, logits + v0, ld_logits);
      return;
    }
    if (f32) {
      kt.dot_f32_tile(reinterpret_cast<const float*>(out.data) + v0 * E, E, v1 - v0, xn, E, rows, E,
                      logits + v0, ld_logits);
      return;
    }
    float* row = row_scratch + scratch_stride * thread;
    for (int64_t v = v0; v < v1; ++v) {
      // Quantized embeddings (Q8_0, Q6_K) in validation mode: dequantize the row once, then the
      // F32 dots.
      formats::dequantize_row(out.type, out.data + static_cast<size_t>(v) * rb, row, E);
      for (int64_t r = 0; r < rows; ++r) logits[r * ld_logits + v] = kt.dot_f32(row, xn + r * E, E);
    }
  });
}

}  // namespace bitnet::model::ops
