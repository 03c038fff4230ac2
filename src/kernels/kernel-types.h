// Plain types shared by the ternary kernels of every ISA. Kept free of standard-library templates:
// this header is compiled into the per-ISA translation units (see kernels-simd.cpp).
//
// Packed ternary layouts (internal; files are repacked into them at load time, never stored):
//
//   Rows are interleaved in groups of kGroupRows = 16 (N is padded with zero rows to a multiple of
//   16). A group is a run of 64-byte chunks; byte [4*r + j] of a chunk belongs to row r of the
//   group. One chunk therefore feeds one vpdpbusd on a 16 x int32 accumulator (one lane per row)
//   with a broadcast 4-byte activation word: no horizontal sums and no shuffles in the inner loop.
//   Every weight is stored as an unsigned code c = w + 1 in {0, 1, 2}; the kernels compute
//   sum_k c*q and subtract sum_k q (the activation row sum, from the quantizer) afterwards.
//
//   T2 (2.0 bits/weight): chunk c covers k in [16c, 16c+16); bits 2s..2s+1 of byte [4r + j] hold
//     the code of W[16g + r][16c + 4s + j], s = 0..3.
//   T1 (1.6 bits/weight): five base-3 codes per byte, stored as ceil(v * 256 / 243) with
//     v = sum_n c_n * 3^(4-n); digit n is ((uint8_t)(byte * 3^n) * 3) >> 8. The group holds
//     n5 = 4 * floor(K / 80) five-trit chunks (chunk c: k = 20c + 4n + j, n = 0..4) followed by
//     n4 = (K mod 80) / 16 four-trit chunks (chunk c: k = 20*n5 + 16c + 4n + j, n = 0..3, digit 4
//     unused and zero): 1.6 bits/weight up to at most 4 chunks per group.
//
// Contract of the matmul kernels (all ISAs):
//   - K % 16 == 0 and K > 0; any N >= 1; any M >= 1.
//   - Reads the whole group data (64-byte aligned), row_scale[16 * groups], and exactly K bytes of
//     each activation row: no reads past the end of any buffer. (Decode loops issue prefetch
//     hints up to 8 KiB past the weights; a prefetch is not an access and never faults.)
//   - Writes y[m * ldy + n] for n < N only (ldy >= N). y must not overlap any input. (AMX keeps
//     int32 partial sums in those elements of y between K slabs before writing the floats.)
//   - Integer accumulation is exact for K < 2^24 / 128; the float epilogue is
//     y = float(acc - act_sum) / act_scale * row_scale, the same operations in the same order on
//     every ISA, so all paths give bit-identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitnet::kernels {

inline constexpr int kGroupRows = 16;
inline constexpr int kChunkBytes = 64;
inline constexpr int kKMultiple = 16;

enum class TernaryLayout : uint8_t { T2 = 0, T1 = 1 };
inline constexpr int kNumLayouts = 2;

// Values are stored in prepared-weight caches: append, never renumber.
enum class Isa : uint8_t {
  Scalar = 0,
  Avx2 = 1,
  Avx512 = 2,
  Neon = 3,
  NeonDot = 4,
  AvxVnni = 5,
  Amx = 6,  // AVX-512 VNNI with the prefill GEMMs on AMX tiles (TDPBSSD)
};
inline constexpr int kNumIsas = 7;

// Non-owning view of a packed ternary matrix W[N][K] (row n = output feature n).
struct TernaryMatrixView {
  TernaryLayout layout = TernaryLayout::T2;
  int64_t n = 0;
  int64_t k = 0;
  size_t group_bytes = 0;            // bytes per group of 16 rows
  const uint8_t* data = nullptr;     // [groups][group_bytes], 64-byte aligned
  const float* row_scale = nullptr;  // [groups * 16]; padding rows hold 0
  int64_t groups() const { return (n + kGroupRows - 1) / kGroupRows; }
};

// Int8 activation rows from the per-token quantizer: row m is q[m * ldq .. m * ldq + K).
struct QuantizedRows {
  const int8_t* q = nullptr;
  int64_t ldq = 0;
  const float* scale = nullptr;  // [m] 127 / max(absmax, 1e-5)
  const int32_t* sum = nullptr;  // [m] sum of the row's int8 codes
  int64_t m = 0;
};

// Quantizes m rows of k floats (row stride ldx) to int8 per row (BitNet b1.58 absmax):
// s = 127 / max(max|x|, 1e-5), q = clamp(round_half_even(x * s), -128, 127). Writes q (stride
// ldq), scale[m] = s and sum[m] = sum of q. Any k >= 1. NaN inputs give code -128.
using QuantizeFn = void (*)(const float* x, int64_t ldx, int64_t m, int64_t k, int8_t* q,
                            int64_t ldq, float* scale, int32_t* sum);

// y[m][n] = (sum_k W[n][k] * q[m][k]) / scale[m] * row_scale[n] for the row groups
// [group_begin, group_end) and every activation row. Single-threaded; callers split groups.
using MatmulFn = void (*)(const TernaryMatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                          int64_t group_begin, int64_t group_end);

// Machine-limit probe: `iterations` rounds of this ISA's widest int8 multiply-add over independent
// accumulators (vpdpbusd on AVX-512; on AVX2 the vpmaddubsw + vpaddw pair of its narrow
// accumulation, see kernels-simd.cpp); returns a value that depends on every result.
using PeakFn = int64_t (*)(int64_t iterations);

// Bandwidth probe: reads `bytes` (a multiple of 256, 64-byte aligned) with this ISA's widest loads
// into independent accumulators; returns a value that depends on every byte.
using StreamReadFn = uint64_t (*)(const uint8_t* p, size_t bytes);

// Float dot product of a weight row (F32 or F16 bits) with an F32 vector of length k (any k).
// The F32 and F16 forms accumulate in the same order on each ISA, so a matrix stored either way
// gives identical results when its values are equal; the order differs between ISAs (float
// rounding, within k * eps * sum|w x| of the exact value).
using DotF32Fn = float (*)(const float* w, const float* x, int64_t k);
using DotF16Fn = float (*)(const uint16_t* w, const float* x, int64_t k);
// The F16 (or F32) LM head as a GEMM over a step's rows: y[r * ldy + v] = dot(w_v, x_r) for v < nv
// (rows of k F16 values, w_stride elements apart) and r < nr (x rows ldx apart). Register tiles of
// several matrix rows x several x rows, so each converted weight vector and each loaded x vector
// serves several dots; the matrix is walked in blocks that stay in L2 while every tile of x rows
// passes. Each pair: one accumulator of lanes over k in order, then its lanes in order, then the
// scalar tail - the same for any tile, so a row's result does not depend on nv, nr or the other
// rows (it differs from dot_f16's four-accumulator order). Any nv, nr >= 1, k >= 1; y must not
// overlap the inputs.
// dot_f32_tile: the same for F32 rows, in the same order (a matrix stored either way gives
// identical logits when its values are equal).
using DotF16TileFn = void (*)(const uint16_t* w, int64_t w_stride, int64_t nv, const float* x,
                              int64_t ldx, int64_t nr, int64_t k, float* y, int64_t ldy);
using DotF32TileFn = void (*)(const float* w, int64_t w_stride, int64_t nv, const float* x,
                              int64_t ldx, int64_t nr, int64_t k, float* y, int64_t ldy);
// y[i] += a * float(x[i]) for F16 x (attention's weighted sum of V rows); any n.
using AxpyF16Fn = void (*)(float a, const uint16_t* x, float* y, int64_t n);

// Attention over a run of n cached rows of one KV head (K or V of consecutive positions within a
// page, `stride` elements apart), for the nq query heads that share it:
//   scores  s[i * lds + j] = dot(q + i * ldq, row j) over d elements, each pair exactly as
//           dot_f32 / dot_f16 computes it (a pair's result does not depend on nq or n);
//   values  o[i * ldo + e] += p[i * ldp + j] * row_j[e] for j = 0 .. n-1 in order, per element the
//           operations of axpy_f16 called once per row (fused multiply-adds on SIMD ISAs).
// Any n >= 0, nq >= 1, d >= 1; no alignment needed; o must not overlap the inputs.
using AttnScoresF16Fn = void (*)(const uint16_t* rows, int64_t stride, int64_t n, const float* q,
                                 int64_t ldq, int64_t nq, int64_t d, float* s, int64_t lds);
using AttnScoresF32Fn = void (*)(const float* rows, int64_t stride, int64_t n, const float* q,
                                 int64_t ldq, int64_t nq, int64_t d, float* s, int64_t lds);
using AttnValuesF16Fn = void (*)(const float* p, int64_t ldp, int64_t nq, const uint16_t* rows,
                                 int64_t stride, int64_t n, int64_t d, float* o, int64_t ldo);
using AttnValuesF32Fn = void (*)(const float* p, int64_t ldp, int64_t nq, const float* rows,
                                 int64_t stride, int64_t n, int64_t d, float* o, int64_t ldo);

// ------------------------------------------------------------- output matrix (LM head) dots
// The LM head multiplies the final normed rows by the output matrix as the file stores it, ggml
// Q6_K or Q8_0 blocks read in place (layouts in formats/tensor-codec.h), after quantizing each
// activation row once to int8 in blocks, as llama.cpp does:
//   for Q6_K, blocks of 256 (its Q8_K): one float scale per block and the sum of every 16 codes.
//     Q6_K stores 6-bit codes 0..63 with an offset of 32; the x86 kernels multiply the unsigned
//     codes and subtract 32 x sc x (sum of 16 codes) per sub-block instead of re-centring them.
//   for Q8_0, blocks of 32 (its Q8_0): the weights carry a scale per 32 anyway, so an activation
//     scale per 32 costs the kernel nothing and rounds finer than one per 256; no sums.
inline constexpr int64_t kQ6KBlock = 256;  // values per Q6_K block
inline constexpr size_t kQ6KBytes = 210;   // ql[128], qh[64], int8 scales[16], fp16 d
inline constexpr int64_t kQ80Block = 32;   // values per Q8_0 block
inline constexpr size_t kQ80Bytes = 34;    // fp16 d, int8 q[32]
inline constexpr int64_t kQ8SumSpan = 16;  // codes per entry of BlockQ8Rows::bsum

// Activation rows quantized by QuantizeBlocksFn (row r < m, k values each):
//   q[r * ldq + e]        e < k, codes in [-127, 127]
//   d[r * ldd + b]        b < k / block, the block's scale: x[e] ~ d * q[e]
//   bsum[r * ldbsum + j]  j < k / 16, the sum of q over [16j, 16j + 16) (Q6_K only; may be null
//                         for Q8_0)
struct BlockQ8Rows {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int16_t* bsum = nullptr;
  int64_t ldq = 0, ldd = 0, ldbsum = 0;
  int64_t m = 0;
  int64_t k = 0;
};

// Quantizes one row of k floats in blocks of `block` values (32 or 256; k a positive multiple of
// it): per block s = 127 / max(max|x|, 1e-5) (QuantizeFn's scale, per block), q = clamp(
// round_half_even(x * s), -127, 127) with NaN -> -127, d[b] = 1 / s, and if bsum is not null
// bsum[j] = the sum of q over [16j, 16j + 16). -127, not -128: the x86 Q8_0 kernels multiply
// |w| by a with w's sign, and -a must exist. Reads k floats; writes k codes, k / block scales and
// k / 16 sums. Every ISA gives bit-identical output.
using QuantizeBlocksFn = void (*)(const float* x, int64_t k, int64_t block, int8_t* q, float* d,
                                  int16_t* bsum);

// y[r * ldy + i] = dot(weight row i, activation row r) for i < n and r < a.m. Weight row i is the
// a.k values of one output-matrix row stored as ggml blocks at w + i * w_stride:
//   Q6_K  a.k % 256 == 0, rows of a.k / 256 blocks of 210 bytes; `a` in blocks of 256 with bsum.
//   Q8_0  a.k % 32 == 0, rows of a.k / 32 blocks of 34 bytes; `a` in blocks of 32 (bsum unused).
// Any other shape is the caller's to avoid (the LM head then takes its float path).
// Contract (all ISAs):
//   - n >= 1, a.m >= 1 (any: rows are taken up to four at a time per weight row, each weight
//     block decoded once for them), a.k > 0. No pointer needs any alignment.
//   - Reads exactly the blocks of the n weight rows (nothing between rows when w_stride is larger
//     than a row), and per activation row a.k codes, a.k / block scales and (Q6_K) a.k / 16 sums;
//     prefetch hints run up to 8 KiB past the weights (a prefetch never faults). Writes only
//     y[r * ldy + i]; y must not overlap an input.
//   - Per block the integer dot I_b is exact in int32 (Q6_K: sum_e sc_e (q_e - 32) a_e; Q8_0:
//     sum_e w_e a_e). y = sum_b (d_w[b] * d_a[b]) * I_b in float, the additions in an ISA-specific
//     order (int32 lanes converted to float per block): within k * eps * S of the exact value, S =
//     sum_e |d_w sc_e| (q_e + 32) |d_a a_e| for Q6_K (the lanes hold the offset-free products and
//     the 32 x sum corrections apart), sum_e |d_w w_e| |d_a a_e| for Q8_0.
//   - A row's result depends only on that row: the same with any a.m and any other rows.
using BlockDotFn = void (*)(const uint8_t* w, size_t w_stride, int64_t n, const BlockQ8Rows& a,
                            float* y, int64_t ldy);

// ------------------------------------------------------- int8 output matrix (opt-in LM head)
// The output matrix quantized at load to int8 with one scale per row (ModelWeights'
// LoadOptions::int8_head), multiplied by activation rows quantized as the BitLinear inputs are
// (QuantizeFn): the LM head then runs at the ternary GEMM's integer rate and reads one byte per
// weight (an F16 head reads two). Layout: rows in groups of kGroupRows like the ternary layouts
// (N padded with zero rows); a group is K / 4 chunks of 64 bytes, byte [4r + j] of chunk c holding
// W[16g + r][4c + j] as int8 in [-127, 127]. Per row: row_scale (w ~ row_scale * code) and
// row_sum (the sum of the row's codes, for kernels that multiply unsigned activation bytes).
inline constexpr int kI8KMultiple = 4;
inline constexpr int64_t kI8MaxK = 65536;

struct Int8MatrixView {
  int64_t n = 0;
  int64_t k = 0;
  size_t group_bytes = 0;            // 16 * k
  const int8_t* data = nullptr;      // [groups][group_bytes], 64-byte aligned
  const float* row_scale = nullptr;  // [groups * 16], 64-byte aligned; padding rows hold 0
  const int32_t* row_sum = nullptr;  // [groups * 16], 64-byte aligned; padding rows hold 0
  int64_t groups() const { return (n + kGroupRows - 1) / kGroupRows; }
};

// y[m * ldy + n] = float(I) / a.scale[m] * row_scale[n], I = sum_k W[n][k] * q[m][k] exactly in
// int32, for the row groups [group_begin, group_end) and every activation row (a.sum unused):
// the ternary epilogue's operations, so every ISA gives bit-identical results.
// Contract (all ISAs): K % 4 == 0, 0 < K <= kI8MaxK (exact in int32 also where a kernel adds 128
// to the activation bytes: 255 * 127 * 65536 < 2^31); any N, M >= 1. Reads the group data, the
// row scales and sums, exactly K bytes of each activation row; prefetch hints may run past the
// weights. Writes y[m * ldy + n] for n < N only; y must not overlap an input.
using MatmulI8Fn = void (*)(const Int8MatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                            int64_t group_begin, int64_t group_end);

struct KernelTable {
  Isa isa;
  // The layout this table's matmul runs fastest on; the loader repacks weights into it. T1 where
  // its digits decode linearly on an unsigned-byte dot (AVX-512 VNNI), T2 elsewhere: extracting
  // base-3 digits costs more than the 20% of bytes T1 saves.
  TernaryLayout preferred_layout;
  QuantizeFn quantize;
  MatmulFn matmul[kNumLayouts];  // indexed by TernaryLayout
  PeakFn int8_peak;
  int64_t int8_peak_macs_per_iteration;  // u8 x s8 multiply-adds per iteration of int8_peak
  const char* int8_peak_mix;             // the instructions int8_peak runs, for reports
  StreamReadFn stream_read;
  DotF32Fn dot_f32;
  DotF16Fn dot_f16;
  DotF16TileFn dot_f16_tile;
  DotF32TileFn dot_f32_tile;
  AxpyF16Fn axpy_f16;
  AttnScoresF16Fn attn_scores_f16;
  AttnScoresF32Fn attn_scores_f32;
  AttnValuesF16Fn attn_values_f16;
  AttnValuesF32Fn attn_values_f32;
  QuantizeBlocksFn quantize_blocks;
  BlockDotFn dot_q6_k;
  BlockDotFn dot_q8_0;
  MatmulI8Fn matmul_i8;
};

}  // namespace bitnet::kernels
