// Scalar reference kernels: the oracle of the tests and the fallback on any CPU. They read the
// packed layouts element by element with the index formulas of kernel-types.h, independently of
// the SIMD bodies in kernels-simd.cpp.
#include <cmath>
#include <cstring>

#include "core/fp16.h"
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

// Walks the packed bytes in storage order: for each chunk, each of the 16 rows, each byte, each
// 2-bit field (T2) or base-3 digit (T1), with the k index given by the layout formulas.
void matmul_ref(const TernaryMatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                int64_t g0, int64_t g1) {
  const bool t2 = w.layout == TernaryLayout::T2;
  const int64_t n5 = common::t1_chunks5(w.k);
  const int64_t chunks = t2 ? w.k / 16 : n5 + common::t1_chunks4(w.k);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* grp = w.data + static_cast<size_t>(g) * w.group_bytes;
    for (int64_t m = 0; m < a.m; ++m) {
      const int8_t* q = a.q + m * a.ldq;
      int32_t acc[kGroupRows] = {};
      for (int64_t c = 0; c < chunks; ++c) {
        const uint8_t* chunk = grp + c * kChunkBytes;
        const int64_t k0 = t2 ? 16 * c : (c < n5 ? 20 * c : 20 * n5 + 16 * (c - n5));
        const int digits = t2 ? 4 : (c < n5 ? 5 : 4);
        for (int r = 0; r < kGroupRows; ++r) {
          for (int j = 0; j < 4; ++j) {
            const uint8_t byte = chunk[4 * r + j];
            for (int d = 0; d < digits; ++d) {
              const unsigned code = t2 ? (byte >> (2 * d)) & 3u : common::t1_digit(byte, d);
              acc[r] += static_cast<int32_t>(code) * q[k0 + 4 * d + j];
            }
          }
        }
      }
      for (int r = 0; r < kGroupRows; ++r) {
        const int64_t row = g * kGroupRows + r;
        if (row >= w.n) break;
        y[m * ldy + row] = common::epilogue(acc[r], a.sum[m], a.scale[m], w.row_scale[row]);
      }
    }
  }
}

// Scalar stand-in for the SIMD peak loops: the same multiply-add count per call.
int64_t int8_peak_ref(int64_t iterations) {
  int32_t acc[16] = {};
  volatile uint8_t seed = 1;
  const uint8_t c = seed;
  for (int64_t i = 0; i < iterations; ++i) {
    for (int r = 0; r < 16; ++r) acc[r] += c * static_cast<int8_t>(r + i);
  }
  int64_t total = 0;
  for (int32_t v : acc) total += v;
  return total;
}

uint64_t stream_read_ref(const uint8_t* p, size_t bytes) {
  uint64_t s[8] = {};
  const size_t n = bytes / 8;
  for (size_t i = 0; i < n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      uint64_t v;
      std::memcpy(&v, p + 8 * (i + j), 8);
      s[j] += v;
    }
  }
  uint64_t t = 0;
  for (uint64_t v : s) t += v;
  return t;
}

float dot_f32_ref(const float* w, const float* x, int64_t k) {
  float s = 0;
  for (int64_t i = 0; i < k; ++i) s += w[i] * x[i];
  return s;
}
float dot_f16_ref(const uint16_t* w, const float* x, int64_t k) {
  float s = 0;
  for (int64_t i = 0; i < k; ++i) s += fp16_to_fp32(w[i]) * x[i];
  return s;
}

void dot_f16_tile_ref(const uint16_t* w, int64_t w_stride, int64_t nv, const float* x, int64_t ldx,
                      int64_t nr, int64_t k, float* y, int64_t ldy) {
  for (int64_t r = 0; r < nr; ++r) {
    for (int64_t v = 0; v < nv; ++v) y[r * ldy + v] = dot_f16_ref(w + v * w_stride, x + r * ldx, k);
  }
}

void dot_f32_tile_ref(const float* w, int64_t w_stride, int64_t nv, const float* x, int64_t ldx,
                      int64_t nr, int64_t k, float* y, int64_t ldy) {
  for (int64_t r = 0; r < nr; ++r) {
    for (int64_t v = 0; v < nv; ++v) y[r * ldy + v] = dot_f32_ref(w + v * w_stride, x + r * ldx, k);
  }
}

void axpy_f16_ref(float a, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * fp16_to_fp32(x[i]);
}

float attn_value(uint16_t v) {
  return fp16_to_fp32(v);
}
float attn_value(float v) {
  return v;
}

template <class T>
void attn_scores_ref(const T* rows, int64_t stride, int64_t n, const float* q, int64_t ldq,
                     int64_t nq, int64_t d, float* s, int64_t lds) {
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (int64_t e = 0; e < d; ++e) acc += attn_value(rows[j * stride + e]) * q[i * ldq + e];
      s[i * lds + j] = acc;
    }
  }
}

template <class T>
void attn_values_ref(const float* p, int64_t ldp, int64_t nq, const T* rows, int64_t stride,
                     int64_t n, int64_t d, float* o, int64_t ldo) {
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t e = 0; e < d; ++e) {
        o[i * ldo + e] += p[i * ldp + j] * attn_value(rows[j * stride + e]);
      }
    }
  }
}

// ------------------------------------------------------------------ output matrix (LM head)

void quantize_blocks_ref(const float* x, int64_t k, int64_t block, int8_t* q, float* d,
                         int16_t* bsum) {
  for (int64_t b = 0; b < k / block; ++b) {
    const float* xb = x + b * block;
    float absmax = 0.0f;
    for (int64_t j = 0; j < block; ++j) absmax = std::fmax(absmax, std::fabs(xb[j]));
    const float s = common::act_scale_from_absmax(absmax);
    d[b] = 1.0f / s;
    for (int64_t j = 0; j < block; ++j) {
      const int8_t v = common::quantize_one(xb[j], s);  // NaN -> -128
      q[b * block + j] = v < -127 ? int8_t{-127} : v;
    }
  }
  if (!bsum) return;
  for (int64_t j = 0; j < k / kQ8SumSpan; ++j) {
    int32_t total = 0;
    for (int64_t e = 0; e < kQ8SumSpan; ++e) total += q[j * kQ8SumSpan + e];
    bsum[j] = static_cast<int16_t>(total);
  }
}

float load_fp16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// Q6_K value e of a block (tensor-codec.h): with e = 128h + 32g + l, the low four bits are in
// ql[64h + 32(g & 1) + l] (low nibble for g < 2, high for g >= 2), the high two bits are bits
// 2g..2g+1 of qh[32h + l]; the value is d * scales[e / 16] * (code - 32). The reference uses the
// centred code directly and ignores bsum.
int q6_k_code(const uint8_t* blk, int e) {
  const int h = e / 128, g = e % 128 / 32, l = e % 32;
  const uint8_t lo_byte = blk[64 * h + 32 * (g & 1) + l];
  const int lo = g < 2 ? lo_byte & 0xF : lo_byte >> 4;
  const int hi = (blk[128 + 32 * h + l] >> (2 * g)) & 3;
  return (lo | hi << 4) - 32;
}

void dot_q6_k_ref(const uint8_t* w, size_t w_stride, int64_t n, const BlockQ8Rows& a, float* y,
                  int64_t ldy) {
  const int64_t nb = a.k / kQ6KBlock;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* row = w + static_cast<size_t>(i) * w_stride;
    for (int64_t r = 0; r < a.m; ++r) {
      const int8_t* q = a.q + r * a.ldq;
      float sum = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + static_cast<size_t>(b) * kQ6KBytes;
        int32_t isum = 0;
        for (int e = 0; e < kQ6KBlock; ++e) {
          const int sc = static_cast<int8_t>(blk[192 + e / 16]);
          isum += sc * q6_k_code(blk, e) * q[b * kQ6KBlock + e];
        }
        sum += load_fp16(blk + 208) * a.d[r * a.ldd + b] * static_cast<float>(isum);
      }
      y[r * ldy + i] = sum;
    }
  }
}

void dot_q8_0_ref(const uint8_t* w, size_t w_stride, int64_t n, const BlockQ8Rows& a, float* y,
                  int64_t ldy) {
  const int64_t nb = a.k / kQ80Block;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* row = w + static_cast<size_t>(i) * w_stride;
    for (int64_t r = 0; r < a.m; ++r) {
      const int8_t* q = a.q + r * a.ldq;
      float sum = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + static_cast<size_t>(b) * kQ80Bytes;
        int32_t isum = 0;
        for (int e = 0; e < kQ80Block; ++e) {
          isum += static_cast<int8_t>(blk[2 + e]) * q[b * kQ80Block + e];
        }
        sum += load_fp16(blk) * a.d[r * a.ldd + b] * static_cast<float>(isum);
      }
      y[r * ldy + i] = sum;
    }
  }
}

// Reads each code at its layout position: byte [4r + j] of chunk c is W[16g + r][4c + j].
void matmul_i8_ref(const Int8MatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                   int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    const int8_t* grp = w.data + static_cast<size_t>(g) * w.group_bytes;
    for (int64_t m = 0; m < a.m; ++m) {
      const int8_t* q = a.q + m * a.ldq;
      int32_t acc[kGroupRows] = {};
      for (int64_t c = 0; c < w.k / kI8KMultiple; ++c) {
        for (int r = 0; r < kGroupRows; ++r) {
          for (int j = 0; j < 4; ++j) acc[r] += grp[c * kChunkBytes + 4 * r + j] * q[4 * c + j];
        }
      }
      for (int r = 0; r < kGroupRows; ++r) {
        const int64_t row = g * kGroupRows + r;
        if (row >= w.n) break;
        y[m * ldy + row] = common::epilogue(acc[r], 0, a.scale[m], w.row_scale[row]);
      }
    }
  }
}

}  // namespace

extern const KernelTable kTableScalar = {Isa::Scalar,
                                         TernaryLayout::T2,
                                         quantize_ref,
                                         {matmul_ref, matmul_ref},
                                         int8_peak_ref,
                                         64,
                                         "scalar multiply-add",
                                         stream_read_ref,
                                         dot_f32_ref,
                                         dot_f16_ref,
                                         dot_f16_tile_ref,
                                         dot_f32_tile_ref,
                                         axpy_f16_ref,
                                         attn_scores_ref<uint16_t>,
                                         attn_scores_ref<float>,
                                         attn_values_ref<uint16_t>,
                                         attn_values_ref<float>,
                                         quantize_blocks_ref,
                                         dot_q6_k_ref,
                                         dot_q8_0_ref,
                                         matmul_i8_ref};

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
