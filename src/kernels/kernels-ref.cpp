// Scalar reference kernels: the oracle of the tests and the fallback on any CPU. They read the
// packed layouts element by element with the index formulas of kernel-types.h, independently of
// the SIMD bodies in kernels-simd.cpp.
#include <cmath>

#include "kernels/ternary-common.h"
#include "kernels/ternary-matmul.h"

namespace bitnet::kernels {
namespace {

void quantize_ref(const float* x, int64_t ldx, int64_t m, int64_t k, int8_t* q, int64_t ldq,
                  float* scale, int32_t* sum) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    float absmax = 0.0f;
    for (int64_t j = 0; j < k; ++j) absmax = std::fmax(absmax, std::fabs(xr[j]));
    const float s = common::act_scale_from_absmax(absmax);
    int32_t total = 0;
    for (int64_t j = 0; j < k; ++j) {
      q[i * ldq + j] = common::quantize_one(xr[j], s);
      total += q[i * ldq + j];
    }
    scale[i] = s;
    sum[i] = total;
  }
}

// Code (w + 1) of row r of group g, column kk, read straight from the packed bytes.
unsigned code_at(const TernaryMatrixView& w, int64_t g, int r, int64_t kk) {
  const uint8_t* grp = w.data + static_cast<size_t>(g) * w.group_bytes;
  if (w.layout == TernaryLayout::T2) {
    const int64_t c = kk / 16, s = (kk % 16) / 4, j = kk % 4;
    return (grp[c * kChunkBytes + 4 * r + j] >> (2 * s)) & 3u;
  }
  const int64_t n5 = common::t1_chunks5(w.k);
  int64_t c, n, j;
  if (kk < 20 * n5) {
    c = kk / 20, n = (kk % 20) / 4, j = kk % 4;
  } else {
    const int64_t rest = kk - 20 * n5;
    c = n5 + rest / 16, n = (rest % 16) / 4, j = rest % 4;
  }
  return common::t1_digit(grp[c * kChunkBytes + 4 * r + j], static_cast<int>(n));
}

void matmul_ref(const TernaryMatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    for (int r = 0; r < kGroupRows; ++r) {
      const int64_t row = g * kGroupRows + r;
      if (row >= w.n) break;
      for (int64_t m = 0; m < a.m; ++m) {
        const int8_t* q = a.q + m * a.ldq;
        int32_t acc = 0;
        for (int64_t kk = 0; kk < w.k; ++kk)
          acc += static_cast<int32_t>(code_at(w, g, r, kk)) * q[kk];
        y[m * ldy + row] = common::epilogue(acc, a.sum[m], a.scale[m], w.row_scale[row]);
      }
    }
  }
}

}  // namespace

extern const KernelTable kTableScalar = {Isa::Scalar, quantize_ref, {matmul_ref, matmul_ref}};

void unpack_ternary(const TernaryMatrixView& w, int8_t* out) {
  for (int64_t row = 0; row < w.n; ++row) {
    for (int64_t kk = 0; kk < w.k; ++kk) {
      out[row * w.k + kk] = static_cast<int8_t>(
          static_cast<int>(code_at(w, row / kGroupRows, static_cast<int>(row % kGroupRows), kk)) -
          1);
    }
  }
}

void dense_matmul_ref(const int8_t* w, const float* row_scale, int64_t n, int64_t k,
                      const QuantizedRows& a, float* y, int64_t ldy) {
  for (int64_t m = 0; m < a.m; ++m) {
    for (int64_t row = 0; row < n; ++row) {
      int32_t acc = 0;
      // sum_k (w+1)*q - sum_k q == sum_k w*q: compute the plain form and add the sum back so the
      // epilogue sees the same integer the packed kernels produce.
      for (int64_t kk = 0; kk < k; ++kk) acc += w[row * k + kk] * a.q[m * a.ldq + kk];
      y[m * ldy + row] = common::epilogue(acc + a.sum[m], a.sum[m], a.scale[m], row_scale[row]);
    }
  }
}

}  // namespace bitnet::kernels
