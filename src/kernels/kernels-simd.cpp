// The SIMD kernels, written once. CMake compiles this file once per ISA (AVX2, AVX-VNNI, AVX-512
// VNNI, NEON, NEON dotprod) with that ISA's flags and BITNET_TABLE_NAME set; simd-chunk.h supplies
// the primitives. Everything but the exported table has internal linkage, and no standard-library
// template is instantiated here, so no ISA-specific code can leak into another variant.
#include "kernels/simd-blocks.h"
#include "kernels/simd-chunk.h"
#include "kernels/ternary-common.h"

#ifndef BITNET_TABLE_NAME
#error "BITNET_TABLE_NAME must name the exported kernel table"
#endif

namespace bitnet::kernels {
namespace {

using namespace simd;

// Decode loops prefetch this far ahead of the weight stream. The hardware prefetcher alone left a
// single core at about 80% of its streaming bandwidth; 8 KiB ahead reached 91-99% (4 KiB: 87-89%,
// 16 KiB: 89-95%), measured with bench-kernels on the 2B4T shapes. A prefetch never faults, so
// running past the end of the matrix is harmless.
constexpr int64_t kPrefetchAhead = 8192;

// ------------------------------------------------------------------------------------ quantizer
void quantize_simd(const float* x, int64_t ldx, int64_t m, int64_t k, int8_t* q, int64_t ldq,
                   float* scale, int32_t* sum) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    int8_t* qr = q + i * ldq;
    const int64_t kv = k - k % kFloatStep;
    FMax fm = fmax_zero();
    for (int64_t j = 0; j < kv; j += kFloatStep) fm = absmax_step(fm, xr + j);
    float absmax = reduce_max(fm);
    for (int64_t j = kv; j < k; ++j) {
      const float a = xr[j] < 0 ? -xr[j] : xr[j];
      if (a > absmax) absmax = a;
    }
    const float s = common::act_scale_from_absmax(absmax);
    ISum is = isum_zero();
    for (int64_t j = 0; j < kv; j += kFloatStep) is = quant_step(is, xr + j, s, qr + j);
    int32_t total = reduce_sum(is);
    for (int64_t j = kv; j < k; ++j) {
      qr[j] = common::quantize_one(xr[j], s);
      total += qr[j];
    }
    scale[i] = s;
    sum[i] = total;
  }
}

// ------------------------------------------------------------------------------- ternary matmul
#if !BITNET_SIMD_NARROW_DOT
// One group of 16 weight rows against MB activation rows. For MB == 1 (decode) each row gets
// NA = 4 accumulators, so the vpdpbusd chains are independent; for MB > 1 the MB rows already are.
template <int MB>
struct Tile {
  static constexpr int NA = MB == 1 ? 4 : 1;
  Acc acc[MB][NA];
  const int8_t* q[MB];

  Tile(const QuantizedRows& a, int64_t m0) {
    for (int m = 0; m < MB; ++m) {
      q[m] = a.q + (m0 + m) * a.ldq;
      for (int i = 0; i < NA; ++i) acc[m][i] = acc_zero();
    }
  }
  // All MB rows take the codes of k in [k0, k0 + 4); `slot` picks the accumulator (MB == 1).
  inline void dot(Chunk codes, int64_t k0, int slot) {
    for (int m = 0; m < MB; ++m) acc[m][slot % NA] = dot4(acc[m][slot % NA], codes, q[m] + k0);
  }
  void store(const TernaryMatrixView& w, const QuantizedRows& a, int64_t g, int64_t m0, float* y,
             int64_t ldy) {
    const int64_t row0 = g * kGroupRows;
    const int64_t left = w.n - row0;
    const int n_valid = left < kGroupRows ? static_cast<int>(left) : kGroupRows;
    for (int m = 0; m < MB; ++m) {
      Acc t = acc[m][0];
      for (int i = 1; i < NA; ++i) t = acc_add(t, acc[m][i]);
      store_rows(t, a.sum[m0 + m], a.scale[m0 + m], w.row_scale + row0, y + (m0 + m) * ldy + row0,
                 n_valid);
    }
  }
};

#if BITNET_SIMD_WIDE_UNSIGNED_DOT
// Decode (MB == 1) with an unsigned-byte dot product: no shifts in the loop. Accumulator S sums
// field S in place (code x 4^S; exact in int32 for K < 2^19) and is scaled back once per group.
// Also serves the one-row tail of a GEMM: `m` is the activation row, y its output row.
void t2_group_gemv_wide(const TernaryMatrixView& w, const QuantizedRows& a, int64_t g, int64_t m,
                        float* y) {
  const uint8_t* p = w.data + static_cast<size_t>(g) * w.group_bytes;
  const int8_t* q = a.q + m * a.ldq;
  // AVX-512: two chunks per iteration into two accumulator sets, eight independent vpdpbusd
  // chains, so the loop is bound by loads rather than by the multiply-add latency. AVX-VNNI
  // (kWideGemvSets == 1): one set, whose two halves already make eight chains in 8 of 16 ymm.
  Acc x0 = acc_zero(), x1 = acc_zero(), x2 = acc_zero(), x3 = acc_zero();
  Acc y0 = acc_zero(), y1 = acc_zero(), y2 = acc_zero(), y3 = acc_zero();
  const int64_t chunks = w.k / 16;
  // Single chunks: all of them on AVX-VNNI; on AVX-512 the odd one, first: with the paired loop as
  // the last writer of the accumulators, GCC keeps them in place instead of copying all eight
  // registers every iteration.
  const int64_t single = kWideGemvSets == 1 ? chunks : chunks % 2;
  for (int64_t c = 0; c < single; ++c, p += kChunkBytes, q += 16) {
    if constexpr (kWideGemvSets == 1) __builtin_prefetch(p + kPrefetchAhead);
    const Chunk r0 = load_chunk(p);
    x0 = dot4(x0, field2_in_place<0>(r0), q);
    x1 = dot4(x1, field2_in_place<1>(r0), q + 4);
    x2 = dot4(x2, field2_in_place<2>(r0), q + 8);
    x3 = dot4(x3, field2_in_place<3>(r0), q + 12);
  }
  for (int64_t c = single; c < chunks; c += 2, p += 2 * kChunkBytes, q += 32) {
    __builtin_prefetch(p + kPrefetchAhead);
    __builtin_prefetch(p + kPrefetchAhead + kChunkBytes);
    const Chunk r0 = load_chunk(p), r1 = load_chunk(p + kChunkBytes);
    x0 = dot4(x0, field2_in_place<0>(r0), q);
    x1 = dot4(x1, field2_in_place<1>(r0), q + 4);
    x2 = dot4(x2, field2_in_place<2>(r0), q + 8);
    x3 = dot4(x3, field2_in_place<3>(r0), q + 12);
    y0 = dot4(y0, field2_in_place<0>(r1), q + 16);
    y1 = dot4(y1, field2_in_place<1>(r1), q + 20);
    y2 = dot4(y2, field2_in_place<2>(r1), q + 24);
    y3 = dot4(y3, field2_in_place<3>(r1), q + 28);
  }
  const Acc a0 = acc_add(x0, y0), a1 = acc_add(x1, y1), a2 = acc_add(x2, y2), a3 = acc_add(x3, y3);
  const Acc t = acc_add(acc_add(a0, acc_sar<2>(a1)), acc_add(acc_sar<4>(a2), acc_sar<6>(a3)));
  const int64_t row0 = g * kGroupRows;
  const int64_t left = w.n - row0;
  store_rows(t, a.sum[m], a.scale[m], w.row_scale + row0, y + row0,
             left < kGroupRows ? static_cast<int>(left) : kGroupRows);
}
#endif

template <int MB>
void t2_group(const TernaryMatrixView& w, const QuantizedRows& a, int64_t g, int64_t m0, float* y,
              int64_t ldy) {
#if BITNET_SIMD_WIDE_UNSIGNED_DOT
  if constexpr (MB == 1) {
    t2_group_gemv_wide(w, a, g, m0, y + m0 * ldy);
    return;
  }
#endif
  Tile<MB> tile(a, m0);
  const uint8_t* p = w.data + static_cast<size_t>(g) * w.group_bytes;
  const int64_t chunks = w.k / 16;
  for (int64_t c = 0; c < chunks; ++c, p += kChunkBytes) {
    if constexpr (MB == 1) __builtin_prefetch(p + kPrefetchAhead);
    const Chunk raw = load_chunk(p);
    const int64_t k0 = 16 * c;
    tile.dot(code2<0>(raw), k0, 0);
    tile.dot(code2<1>(raw), k0 + 4, 1);
    tile.dot(code2<2>(raw), k0 + 8, 2);
    tile.dot(code2<3>(raw), k0 + 12, 3);
  }
  tile.store(w, a, g, m0, y, ldy);
}

#if BITNET_SIMD_WIDE_UNSIGNED_DOT
// T1 decode (MB == 1) without extracting digits. With q_n = byte * 3^n mod 256 the digit is
// t_n = floor(3 q_n / 256), and 3 q_n = 256 t_n + q_{n+1} exactly, so
//   sum_k t_n a_k = (3 sum_k q_n a_k - sum_k q_{n+1} a_k) / 256,
// linear in bytes vpdpbusd takes as they are: ten byte adds and ten vpdpbusd per chunk instead of
// compares and masks. The sums are linear, so digits may share accumulators: digit n goes to pair
// n % kT1Chains (A-chain and B-chain; AVX-512: five pairs, ten independent chains; AVX-VNNI: three
// pairs of two ymm, twelve chains: two pairs left the loop bound by the vpdpbusd latency, at 82% of
// the read bandwidth on two threads; three spill two registers per chunk and reach it). 3A - B is a
// multiple of 256 after every chunk and is folded into the result every kFold chunks so nothing can
// overflow int32: a pair holds at most three digits, |3A - B| <= 4 * 3 * 255 * 128 * 4 * kFold <
// 2^31.
template <int Digits>
inline void t1_chunk_linear(const uint8_t* p, const int8_t* q, Acc* A, Acc* B) {
  Chunk qn = load_chunk(p);
  for (int n = 0; n < Digits; ++n) {
    const Chunk next = times3(qn);
    A[n % kT1Chains] = dot4(A[n % kT1Chains], qn, q + 4 * n);
    B[n % kT1Chains] = dot4(B[n % kT1Chains], next, q + 4 * n);
    qn = next;
  }
}

inline Acc t1_fold(Acc* A, Acc* B) {
  Acc s = acc_zero();
  for (int n = 0; n < kT1Chains; ++n) {
    s = acc_add(s, acc_sub(acc_add(A[n], acc_add(A[n], A[n])), B[n]));
    A[n] = acc_zero();
    B[n] = acc_zero();
  }
  return acc_sar<8>(s);
}

void t1_group_gemv_linear(const TernaryMatrixView& w, const QuantizedRows& a, int64_t g, int64_t m,
                          float* y) {
  constexpr int64_t kFold = 1024;
  const uint8_t* p = w.data + static_cast<size_t>(g) * w.group_bytes;
  const int8_t* q = a.q + m * a.ldq;
  const int64_t n5 = common::t1_chunks5(w.k), n4 = common::t1_chunks4(w.k);
  Acc A[kT1Chains], B[kT1Chains];
  for (int n = 0; n < kT1Chains; ++n) A[n] = B[n] = acc_zero();
  Acc total = acc_zero();
  for (int64_t c = 0; c < n5; ++c, p += kChunkBytes, q += 20) {
    __builtin_prefetch(p + kPrefetchAhead);
    t1_chunk_linear<5>(p, q, A, B);
    if ((c + 1) % kFold == 0) total = acc_add(total, t1_fold(A, B));
  }
  for (int64_t c = 0; c < n4; ++c, p += kChunkBytes, q += 16) t1_chunk_linear<4>(p, q, A, B);
  total = acc_add(total, t1_fold(A, B));
  const int64_t row0 = g * kGroupRows;
  const int64_t left = w.n - row0;
  store_rows(total, a.sum[m], a.scale[m], w.row_scale + row0, y + row0,
             left < kGroupRows ? static_cast<int>(left) : kGroupRows);
}
#endif

template <int MB>
void t1_group(const TernaryMatrixView& w, const QuantizedRows& a, int64_t g, int64_t m0, float* y,
              int64_t ldy) {
#if BITNET_SIMD_WIDE_UNSIGNED_DOT
  if constexpr (MB == 1) {
    t1_group_gemv_linear(w, a, g, m0, y + m0 * ldy);
    return;
  }
#endif
  Tile<MB> tile(a, m0);
  const uint8_t* p = w.data + static_cast<size_t>(g) * w.group_bytes;
  const int64_t n5 = common::t1_chunks5(w.k), n4 = common::t1_chunks4(w.k);
  for (int64_t c = 0; c < n5; ++c, p += kChunkBytes) {
    if constexpr (MB == 1) __builtin_prefetch(p + kPrefetchAhead);
    Chunk d = load_chunk(p);
    const int64_t k0 = 20 * c;
    tile.dot(trit(d), k0, 0);
    d = times3(d);
    tile.dot(trit(d), k0 + 4, 1);
    d = times3(d);
    tile.dot(trit(d), k0 + 8, 2);
    d = times3(d);
    tile.dot(trit(d), k0 + 12, 3);
    d = times3(d);
    tile.dot(trit(d), k0 + 16, 0);
  }
  for (int64_t c = 0; c < n4; ++c, p += kChunkBytes) {
    Chunk d = load_chunk(p);
    const int64_t k0 = 20 * n5 + 16 * c;
    tile.dot(trit(d), k0, 0);
    d = times3(d);
    tile.dot(trit(d), k0 + 4, 1);
    d = times3(d);
    tile.dot(trit(d), k0 + 8, 2);
    d = times3(d);
    tile.dot(trit(d), k0 + 12, 3);
  }
  tile.store(w, a, g, m0, y, ldy);
}

template <TernaryLayout L, int MB>
inline void group_tile(const TernaryMatrixView& w, const QuantizedRows& a, int64_t g, int64_t m0,
                       float* y, int64_t ldy) {
  if constexpr (L == TernaryLayout::T2) {
    t2_group<MB>(w, a, g, m0, y, ldy);
  } else {
    t1_group<MB>(w, a, g, m0, y, ldy);
  }
}

// The last rows - fewer than a full tile - with the tile size that fits them exactly.
template <TernaryLayout L, int MB>
inline void group_tail(int rest, const TernaryMatrixView& w, const QuantizedRows& a, int64_t g,
                       int64_t m0, float* y, int64_t ldy) {
  if constexpr (MB >= 1) {
    if (rest == MB) return group_tile<L, MB>(w, a, g, m0, y, ldy);
    group_tail<L, MB - 1>(rest, w, a, g, m0, y, ldy);
  }
}
#endif

#if BITNET_SIMD_NARROW_DOT
// ------------------------------------------------------------- narrow accumulation (AVX2)
// Prefill: P panels (kPanelRows rows each) against MB activation rows at a time. A decoded panel
// feeds MB vpmaddubsw and a broadcast activation word feeds P, so decoding and broadcasts are
// shared; the 16-bit sums are widened once per kNarrowDots products. Every P x MB accumulator,
// the P decoded panels, the broadcast and one product must fit the 16 ymm registers:
//   T2: P = 2 (a chunk's two panels share each broadcast), MB = 5. Per 32 multiply-adds: one
//       vpmaddubsw, one vpaddw, half a broadcast and 0.35 decoding ops. (MB = 6 fills all 16
//       registers and GCC spills accumulators; one panel against 12 rows needs a broadcast per
//       vpmaddubsw: llvm-mca puts both 20-25% slower on Zen 2 and Zen 3.)
//   T1: P = 1, MB = 8: a base-3 digit costs six ops per panel, shared by 8 rows (10 and 12 spill:
//       llvm-mca 1.4 cycles per vpmaddubsw on Zen 2 at 8, 1.8-1.9 at 10-12).
template <TernaryLayout L>
struct NarrowShape;
template <>
struct NarrowShape<TernaryLayout::T2> {
  static constexpr int kPanels = 2, kRows = 5, kDigits = 4;
};
template <>
struct NarrowShape<TernaryLayout::T1> {
  static constexpr int kPanels = 1, kRows = 8, kDigits = 5;
};

// Activation rows in blocks of at most this many bytes, so that a block stays in L2 while every
// group of the thread passes over it; the weights are then read once per block. Measured on the
// 2B4T shapes (Zen 4, 1 MiB L2): 128 KiB 80-84% of the peak, 256 KiB 76-83%, the whole of
// M = 128 (320 KiB at K = 2560) 66%.
constexpr int64_t kActBlockBytes = 128 * 1024;

template <int P, int MB>
struct NarrowRows {
  const int8_t* q[MB];
  Acc16 n[P][MB];
  inline void zero() {
    for (int p = 0; p < P; ++p) {
      for (int m = 0; m < MB; ++m) n[p][m] = acc16_zero();
    }
  }
  // Codes c[p] of k in [k, k + 4) for every row.
  inline void dot(const Panel* c, int64_t k) {
    for (int m = 0; m < MB; ++m) {
      for (int p = 0; p < P; ++p) n[p][m] = dot4_narrow_in_order(n[p][m], c[p], q[m] + k);
    }
  }
};

// One chunk's panels at p[0..P) (kChunkBytes / 2 apart) into the accumulators: T2 fields 0..3
// (k = k0 + 4s), T1 digits 0..4 or 0..3 (k = k0 + 4n).
template <TernaryLayout L, int P, int MB>
inline void panel_dots(NarrowRows<P, MB>& r, const uint8_t* p, int64_t k0, int digits) {
  Panel raw[P], c[P];
  for (int i = 0; i < P; ++i) raw[i] = load_panel(p + i * (kChunkBytes / 2));
  if constexpr (L == TernaryLayout::T2) {
    for (int i = 0; i < P; ++i) c[i] = panel_code2<0>(raw[i]);
    r.dot(c, k0);
    for (int i = 0; i < P; ++i) c[i] = panel_code2<1>(raw[i]);
    r.dot(c, k0 + 4);
    for (int i = 0; i < P; ++i) c[i] = panel_code2<2>(raw[i]);
    r.dot(c, k0 + 8);
    for (int i = 0; i < P; ++i) c[i] = panel_code2<3>(raw[i]);
    r.dot(c, k0 + 12);
  } else {
    for (int i = 0; i < P; ++i) raw[i] = panel_t1(raw[i]);
    for (int n = 0; n < digits; ++n) {
      for (int i = 0; i < P; ++i) {
        if (n > 0) raw[i] = panel_times3(raw[i]);
        c[i] = panel_trit(raw[i]);
      }
      r.dot(c, k0 + 4 * n);
    }
  }
}

template <TernaryLayout L, int MB>
void group_narrow(const TernaryMatrixView& w, const QuantizedRows& a, int64_t g, int64_t m0,
                  float* y, int64_t ldy) {
  constexpr int P = NarrowShape<L>::kPanels;
  constexpr int64_t span = kNarrowDots / NarrowShape<L>::kDigits;  // chunks per widening
  const uint8_t* grp = w.data + static_cast<size_t>(g) * w.group_bytes;
  const bool t2 = L == TernaryLayout::T2;
  const int64_t n5 = t2 ? 0 : common::t1_chunks5(w.k);
  const int64_t chunks = t2 ? w.k / 16 : n5 + common::t1_chunks4(w.k);
  NarrowRows<P, MB> r;
  for (int m = 0; m < MB; ++m) r.q[m] = a.q + (m0 + m) * a.ldq;
  PAcc acc[kPanelsPerChunk][MB];
  for (auto& ph : acc) {
    for (PAcc& v : ph) v = pacc_zero();
  }
  for (int64_t c0 = 0; c0 < chunks; c0 += span) {
    const int64_t c1 = c0 + span < chunks ? c0 + span : chunks;
    for (int h = 0; h < kPanelsPerChunk; h += P) {
      r.zero();
      const uint8_t* p = grp + c0 * kChunkBytes + h * (kChunkBytes / 2);
      for (int64_t c = c0; c < c1; ++c, p += kChunkBytes) {
        // The next group's weights come from L3 or DRAM: fetch them while this group computes.
        if (h == 0) __builtin_prefetch(p + w.group_bytes);
        const int64_t k0 = t2 ? 16 * c : (c < n5 ? 20 * c : 20 * n5 + 16 * (c - n5));
        panel_dots<L, P, MB>(r, p, k0, c < n5 ? 5 : 4);
      }
      for (int i = 0; i < P; ++i) {
        for (int m = 0; m < MB; ++m) acc[h + i][m] = widen(acc[h + i][m], r.n[i][m]);
      }
    }
  }
  for (int h = 0; h < kPanelsPerChunk; ++h) {
    const int64_t row0 = g * kGroupRows + h * kPanelRows;
    const int64_t left = w.n - row0;
    if (left <= 0) break;
    const int n_valid = left < kPanelRows ? static_cast<int>(left) : kPanelRows;
    for (int m = 0; m < MB; ++m) {
      store_panel(acc[h][m], a.sum[m0 + m], a.scale[m0 + m], w.row_scale + row0,
                  y + (m0 + m) * ldy + row0, n_valid);
    }
  }
}

template <TernaryLayout L, int MB>
inline void narrow_rows(int rows, const TernaryMatrixView& w, const QuantizedRows& a, int64_t g,
                        int64_t m0, float* y, int64_t ldy) {
  if constexpr (MB >= 1) {
    if (rows == MB) return group_narrow<L, MB>(w, a, g, m0, y, ldy);
    narrow_rows<L, MB - 1>(rows, w, a, g, m0, y, ldy);
  }
}

template <TernaryLayout L>
void matmul_narrow(const TernaryMatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                   int64_t g0, int64_t g1) {
  constexpr int kTile = NarrowShape<L>::kRows;
  // Blocks of about equal size, a multiple of the tile where the rows allow (M = 128 at K = 2560:
  // 45 + 45 + 38 rows, mostly tiles of 5, where blocks of 51 would be 11 tiles of 4 or 5).
  const int64_t fit = kActBlockBytes / w.k > kTile ? kActBlockBytes / w.k / kTile * kTile : kTile;
  const int64_t blocks = (a.m + fit - 1) / fit;
  const int64_t even = (a.m + blocks - 1) / blocks;
  const int64_t block_rows = (even + kTile - 1) / kTile * kTile;
  for (int64_t b0 = 0; b0 < a.m; b0 += block_rows) {
    const int64_t b1 = b0 + block_rows < a.m ? b0 + block_rows : a.m;
    // Tiles of equal size (M = 16 at MB = 12: two of 8, not 12 + 4): the decoding of each panel
    // is then shared by as many rows as the block allows.
    const int64_t tiles = (b1 - b0 + kTile - 1) / kTile;
    for (int64_t g = g0; g < g1; ++g) {
      int64_t m0 = b0;
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t rows = (b1 - m0 + (tiles - t) - 1) / (tiles - t);
        narrow_rows<L, kTile>(static_cast<int>(rows), w, a, g, m0, y, ldy);
        m0 += rows;
      }
    }
  }
}

// Decode (M = 1) of T2, where AVX2 is bound by its vector ops (about 30 per 64-byte chunk, near
// four per cycle on Zen 4): fields 1 and 2 are used in place (an and instead of a shift and an
// and), so everything is kept at 16x scale: field 2 (16 c, pair sums up to 8192) is widened every
// 4 chunks, fields 0, 1 (4 c, up to 2048) and 3 every 16, with vpmaddwd by 16 / 4 / 1 / 16.
// Eight chains (two panels x four fields) of one product per chunk each.
void t2_group_gemv_narrow(const TernaryMatrixView& w, const QuantizedRows& a, int64_t g, float* y) {
  const uint8_t* p = w.data + static_cast<size_t>(g) * w.group_bytes;
  const int8_t* q = a.q;
  PAcc lo = pacc_zero(), hi = pacc_zero();
  const int64_t chunks = w.k / 16;
  int64_t c = 0;
  while (c < chunks) {
    const int64_t c16 = c + 16 < chunks ? c + 16 : chunks;
    Acc16 l0 = acc16_zero(), l1 = acc16_zero(), l3 = acc16_zero();
    Acc16 h0 = acc16_zero(), h1 = acc16_zero(), h3 = acc16_zero();
    while (c < c16) {
      const int64_t c4 = c + 4 < c16 ? c + 4 : c16;
      Acc16 l2 = acc16_zero(), h2 = acc16_zero();
      for (; c < c4; ++c, p += kChunkBytes, q += 16) {
        __builtin_prefetch(p + kPrefetchAhead);
        const Panel rl = load_panel(p), rh = load_panel(p + kChunkBytes / 2);
        l0 = dot4_narrow(l0, panel_code2<0>(rl), q);
        h0 = dot4_narrow(h0, panel_code2<0>(rh), q);
        l1 = dot4_narrow(l1, panel_field2_in_place<1>(rl), q + 4);
        h1 = dot4_narrow(h1, panel_field2_in_place<1>(rh), q + 4);
        l2 = dot4_narrow(l2, panel_field2_in_place<2>(rl), q + 8);
        h2 = dot4_narrow(h2, panel_field2_in_place<2>(rh), q + 8);
        l3 = dot4_narrow(l3, panel_code2<3>(rl), q + 12);
        h3 = dot4_narrow(h3, panel_code2<3>(rh), q + 12);
      }
      lo = widen_times<1>(lo, l2);
      hi = widen_times<1>(hi, h2);
    }
    lo = widen_times<16>(widen_times<4>(widen_times<16>(lo, l0), l1), l3);
    hi = widen_times<16>(widen_times<4>(widen_times<16>(hi, h0), h1), h3);
  }
  lo = pacc_sar<4>(lo);
  hi = pacc_sar<4>(hi);
  const int64_t row0 = g * kGroupRows;
  const int64_t left = w.n - row0;
  store_panel(lo, a.sum[0], a.scale[0], w.row_scale + row0, y + row0,
              left < kPanelRows ? static_cast<int>(left) : kPanelRows);
  if (left > kPanelRows) {
    store_panel(hi, a.sum[0], a.scale[0], w.row_scale + row0 + kPanelRows, y + row0 + kPanelRows,
                left < kGroupRows ? static_cast<int>(left - kPanelRows) : kPanelRows);
  }
}
#endif

#if BITNET_SIMD_NARROW_DOT
template <TernaryLayout L>
void matmul_simd(const TernaryMatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                 int64_t g0, int64_t g1) {
  if (L == TernaryLayout::T2 && a.m == 1) {
    for (int64_t g = g0; g < g1; ++g) t2_group_gemv_narrow(w, a, g, y);
    return;
  }
  matmul_narrow<L>(w, a, y, ldy, g0, g1);
}
#else
// Groups outer, activation rows inner: a group's weights (K/4 or K/5 bytes x 16 rows) stay in L1
// while every tile of activation rows passes over them.
template <TernaryLayout L>
void matmul_wide(const TernaryMatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                 int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    int64_t m0 = 0;
    for (; m0 + kMaxRowsPerTile <= a.m; m0 += kMaxRowsPerTile) {
      group_tile<L, kMaxRowsPerTile>(w, a, g, m0, y, ldy);
    }
    group_tail<L, kMaxRowsPerTile - 1>(static_cast<int>(a.m - m0), w, a, g, m0, y, ldy);
  }
}
#if BITNET_SIMD_AMX
// ------------------------------------------------------------------------ AMX tiles (prefill)
// The GEMMs of prefill (and of an int8 LM head over many rows) on the tile unit, in blocks of two
// 16-row activation tiles x two 16-row weight groups:
//   tmm0-3  C[2t + h], int32 16 x 16: the activation rows of tile t x the 16 rows of group h;
//   tmm4-5  A[t], 16 activation rows x 64 bytes of K, loaded from the quantized rows in place;
//   tmm6-7  B[h], 16 rows of 64 bytes: row i is quad i of the K block, byte 4r + j the weight
//           W[16g + r][k + 4i + j]. That is the layout of one T2 field and of one int8 chunk
//           (kernel-types.h), so B is a T2 chunk's four fields as they decode, or int8 chunks as
//           stored.
// TDPBSSD multiplies signed bytes on both sides: the T2 codes 0..2 (or the int8 weights) times q,
// the integer every other path forms, and the same epilogue: bit-identical results.
// Only whole tiles run here (M rows in multiples of 16, groups of 16 valid rows); the caller runs
// the rest on the AVX-512 kernels. Partial sums wait in y as int32 between K slabs: y is written
// only where it is the output, and its 16 columns per full group are all inside N.
constexpr int kAmxRows = 16;        // activation rows per A tile (and rows of C)
constexpr int64_t kAmxBlockK = 64;  // K per tile multiply
// K decoded at once: two groups' B rows (2 x 16 KiB) stay in L1 while every activation tile of
// the block passes over them.
constexpr int64_t kAmxSlabK = 1024;
constexpr int64_t kAmxSlabBytes = kAmxSlabK / 4 * kChunkBytes;
// Activation rows per block: about 1 MiB of codes, read from L2 once per group pair.
constexpr int64_t kAmxActBytes = int64_t{1} << 20;

// Palette 1, tiles 0-7 at 16 rows x 64 bytes. Loading a configuration zeroes every tile; the
// destructor releases the tile state, so a thread outside the kernels carries none.
class AmxScope {
 public:
  AmxScope() {
    struct alignas(64) {
      uint8_t palette, start_row, reserved[14];
      uint16_t colsb[16];
      uint8_t rows[16];
    } cfg = {};
    cfg.palette = 1;
    for (int t = 0; t < 8; ++t) {
      cfg.colsb[t] = kChunkBytes;
      cfg.rows[t] = kAmxRows;
    }
    _tile_loadconfig(&cfg);
  }
  ~AmxScope() { _tile_release(); }
  AmxScope(const AmxScope&) = delete;
  AmxScope& operator=(const AmxScope&) = delete;
};

// One K block for T activation tiles (a0, a1: lda apart per row) x G groups (b0, b1).
template <int T, int G>
inline void amx_block(const int8_t* a0, const int8_t* a1, int64_t lda, const uint8_t* b0,
                      const uint8_t* b1) {
  _tile_loadd(4, a0, lda);
  if constexpr (T > 1) _tile_loadd(5, a1, lda);
  _tile_loadd(6, b0, kChunkBytes);
  _tile_dpbssd(0, 4, 6);
  if constexpr (T > 1) _tile_dpbssd(2, 5, 6);
  if constexpr (G > 1) {
    _tile_loadd(7, b1, kChunkBytes);
    _tile_dpbssd(1, 4, 7);
    if constexpr (T > 1) _tile_dpbssd(3, 5, 7);
  }
}

// C tiles from / to the int32 partial sums at c (activation row m0, column 16g; ldc elements per
// row). zero: start from nothing (the first slab).
template <int T, int G>
inline void amx_c_load(const int32_t* c, int64_t ldc, bool zero) {
  const int64_t stride = ldc * static_cast<int64_t>(sizeof(int32_t));
  const int32_t* c1 = c + kAmxRows * ldc;
  if (zero) {
    _tile_zero(0);
    if constexpr (G > 1) _tile_zero(1);
    if constexpr (T > 1) _tile_zero(2);
    if constexpr (T > 1 && G > 1) _tile_zero(3);
    return;
  }
  _tile_loadd(0, c, stride);
  if constexpr (G > 1) _tile_loadd(1, c + kGroupRows, stride);
  if constexpr (T > 1) _tile_loadd(2, c1, stride);
  if constexpr (T > 1 && G > 1) _tile_loadd(3, c1 + kGroupRows, stride);
}
template <int T, int G>
inline void amx_c_store(int32_t* c, int64_t ldc) {
  const int64_t stride = ldc * static_cast<int64_t>(sizeof(int32_t));
  int32_t* c1 = c + kAmxRows * ldc;
  _tile_stored(0, c, stride);
  if constexpr (G > 1) _tile_stored(1, c + kGroupRows, stride);
  if constexpr (T > 1) _tile_stored(2, c1, stride);
  if constexpr (T > 1 && G > 1) _tile_stored(3, c1 + kGroupRows, stride);
}

// B rows of the T2 matrix: K in [k0, k1) of group g decoded to `scratch`, quad i at row i, zero
// rows up to the end of the last K block.
struct AmxT2Source {
  const TernaryMatrixView& w;
  const uint8_t* panel(int64_t g, int64_t k0, int64_t k1, uint8_t* scratch) const {
    const uint8_t* p = w.data + static_cast<size_t>(g) * w.group_bytes + k0 / 16 * kChunkBytes;
    uint8_t* b = scratch;
    for (int64_t k = k0; k < k1; k += 16, p += kChunkBytes, b += 4 * kChunkBytes) {
      const Chunk raw = load_chunk(p);
      store_chunk(b, code2<0>(raw));
      store_chunk(b + kChunkBytes, code2<1>(raw));
      store_chunk(b + 2 * kChunkBytes, code2<2>(raw));
      store_chunk(b + 3 * kChunkBytes, code2<3>(raw));
    }
    for (; (b - scratch) % (kAmxBlockK / 4 * kChunkBytes) != 0; b += kChunkBytes) {
      store_chunk(b, Chunk{_mm512_setzero_si512()});
    }
    return scratch;
  }
  int32_t act_sum(const QuantizedRows& a, int64_t m) const { return a.sum[m]; }
  const float* row_scale() const { return w.row_scale; }
  int64_t k() const { return w.k; }
};

// B rows of the int8 matrix: the chunks as stored; a ragged last block is copied with zero rows
// after it (the group's data ends with K).
struct AmxI8Source {
  const Int8MatrixView& w;
  const uint8_t* panel(int64_t g, int64_t k0, int64_t k1, uint8_t* scratch) const {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(w.data) +
                       static_cast<size_t>(g) * w.group_bytes + k0 / 4 * kChunkBytes;
    if ((k1 - k0) % kAmxBlockK == 0) return p;
    const int64_t bytes = (k1 - k0) / 4 * kChunkBytes;
    const int64_t padded = (k1 - k0 + kAmxBlockK - 1) / kAmxBlockK * (kAmxBlockK / 4) * kChunkBytes;
    std::memcpy(scratch, p, static_cast<size_t>(bytes));
    std::memset(scratch + bytes, 0, static_cast<size_t>(padded - bytes));
    return scratch;
  }
  int32_t act_sum(const QuantizedRows&, int64_t) const { return 0; }
  const float* row_scale() const { return w.row_scale; }
  int64_t k() const { return w.k; }
};

// Activation tiles t0 (and t0 + 1 when T == 2) against the decoded slab [k0, k1) of G groups.
// The last block of a ragged K reads the activations from a zero-padded copy (no read past K).
template <int T, int G>
void amx_tiles(const QuantizedRows& a, int64_t m0, int64_t k0, int64_t k1, int64_t K,
               const uint8_t* const* b, int32_t* c, int64_t ldc, bool first, int8_t* apad) {
  amx_c_load<T, G>(c, ldc, first);
  const int8_t* q0 = a.q + m0 * a.ldq;
  const int8_t* q1 = q0 + kAmxRows * a.ldq;
  const int64_t whole = (k1 - k0) / kAmxBlockK;
  for (int64_t i = 0; i < whole; ++i) {
    const int64_t k = k0 + i * kAmxBlockK;
    const int64_t boff = i * (kAmxBlockK / 4) * kChunkBytes;
    amx_block<T, G>(q0 + k, q1 + k, a.ldq, b[0] + boff, b[G - 1] + boff);
  }
  if (k0 + whole * kAmxBlockK < k1) {
    const int64_t k = k0 + whole * kAmxBlockK;
    const size_t rest = static_cast<size_t>(K - k);
    for (int t = 0; t < T; ++t) {
      for (int r = 0; r < kAmxRows; ++r) {
        std::memcpy(apad + (t * kAmxRows + r) * kAmxBlockK, q0 + (t * kAmxRows + r) * a.ldq + k,
                    rest);
      }
    }
    const int64_t boff = whole * (kAmxBlockK / 4) * kChunkBytes;
    amx_block<T, G>(apad, apad + kAmxRows * kAmxBlockK, kAmxBlockK, b[0] + boff, b[G - 1] + boff);
  }
  amx_c_store<T, G>(c, ldc);
}

template <int G, class Source>
void amx_groups(const Source& src, const QuantizedRows& a, int64_t r0, int64_t r1, float* y,
                int64_t ldy, int64_t g, uint8_t* scratch, int8_t* apad) {
  const int64_t K = src.k();
  int32_t* c = reinterpret_cast<int32_t*>(y) + g * kGroupRows;
  for (int64_t k0 = 0; k0 < K; k0 += kAmxSlabK) {
    const int64_t k1 = k0 + kAmxSlabK < K ? k0 + kAmxSlabK : K;
    const uint8_t* b[G];
    for (int h = 0; h < G; ++h) b[h] = src.panel(g + h, k0, k1, scratch + h * kAmxSlabBytes);
    int64_t m0 = r0;
    for (; m0 + 2 * kAmxRows <= r1; m0 += 2 * kAmxRows) {
      amx_tiles<2, G>(a, m0, k0, k1, K, b, c + m0 * ldy, ldy, k0 == 0, apad);
    }
    if (m0 < r1) amx_tiles<1, G>(a, m0, k0, k1, K, b, c + m0 * ldy, ldy, k0 == 0, apad);
  }
  for (int64_t m = r0; m < r1; ++m) {
    for (int h = 0; h < G; ++h) {
      const int64_t col = (g + h) * kGroupRows;
      float* out = y + m * ldy + col;
      const Acc acc{_mm512_loadu_si512(out)};
      store_rows(acc, src.act_sum(a, m), a.scale[m], src.row_scale() + col, out, kGroupRows);
    }
  }
}

// Rows [0, 16 * floor(M / 16)) x groups [g0, g1), every group of 16 valid rows.
template <class Source>
void amx_matmul(const Source& src, const QuantizedRows& a, float* y, int64_t ldy, int64_t g0,
                int64_t g1) {
  alignas(64) uint8_t scratch[2 * kAmxSlabBytes];
  alignas(64) int8_t apad[2 * kAmxRows * kAmxBlockK] = {};
  const AmxScope scope;
  const int64_t m_full = a.m / kAmxRows * kAmxRows;
  const int64_t fit = kAmxActBytes / src.k() / (2 * kAmxRows) * (2 * kAmxRows);
  const int64_t block = fit > 2 * kAmxRows ? fit : 2 * kAmxRows;
  for (int64_t r0 = 0; r0 < m_full; r0 += block) {
    const int64_t r1 = r0 + block < m_full ? r0 + block : m_full;
    int64_t g = g0;
    for (; g + 2 <= g1; g += 2) amx_groups<2>(src, a, r0, r1, y, ldy, g, scratch, apad);
    if (g < g1) amx_groups<1>(src, a, r0, r1, y, ldy, g, scratch, apad);
  }
}

// Splits a call into the AMX part and the rest: rows past the last whole tile and a last group
// with fewer than 16 rows go to `rest` (the AVX-512 kernel) as (rows, y, group range).
template <class Source, class Rest>
void amx_split(const Source& src, int64_t n, const QuantizedRows& a, float* y, int64_t ldy,
               int64_t g0, int64_t g1, Rest rest) {
  const int64_t m_full = a.m / kAmxRows * kAmxRows;
  const int64_t whole = n / kGroupRows;
  const int64_t ge = g1 < whole ? g1 : (whole > g0 ? whole : g0);
  if (ge > g0) amx_matmul(src, a, y, ldy, g0, ge);
  if (ge < g1) {
    QuantizedRows head = a;
    head.m = m_full;
    rest(head, y, ge, g1);
  }
  if (m_full < a.m) {
    QuantizedRows tail{a.q + m_full * a.ldq, a.ldq, a.scale + m_full, a.sum + m_full, a.m - m_full};
    rest(tail, y + m_full * ldy, g0, g1);
  }
}
#endif

template <TernaryLayout L>
void matmul_simd(const TernaryMatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                 int64_t g0, int64_t g1) {
#if BITNET_SIMD_AMX
  // T2 only: a T1 byte's five digits span quads of two K blocks (k = 20c + 4n).
  if (L == TernaryLayout::T2 && a.m >= kAmxRows) {
    amx_split(AmxT2Source{w}, w.n, a, y, ldy, g0, g1,
              [&](const QuantizedRows& rows, float* out, int64_t b0, int64_t b1) {
                matmul_wide<L>(w, rows, out, ldy, b0, b1);
              });
    return;
  }
#endif
  matmul_wide<L>(w, a, y, ldy, g0, g1);
}
#endif

#if BITNET_SIMD_NARROW_DOT
// The AVX2 peak is vpmaddubsw + vpaddw, the two instructions every 32 multiply-adds of the narrow
// kernels need at least (one multiply, one 16-bit add; the widening every kNarrowDots products is
// not counted): on Zen 2 vpmaddubsw issues on one pipe and the adds on others, so this is the
// multiplier's rate; on Zen 4 two pipes multiply but the adds compete for them. Twelve chains, as
// in the kernels; opaque() keeps the invariant product inside the loop.
constexpr int kPeakChains = 12;
constexpr int64_t kPeakMacsPerIteration = int64_t{kPeakChains} * kPanelRows * 4;
constexpr const char* kPeakMix = "vpmaddubsw + vpaddw (ymm)";
int64_t int8_peak_simd(int64_t iterations) {
  alignas(64) uint8_t bytes[kChunkBytes];
  for (int i = 0; i < kChunkBytes; ++i) bytes[i] = static_cast<uint8_t>(i % 3);
  const int8_t act[4] = {-20, 7, 3, -1};
  Panel c = load_panel(bytes);
  Acc16 acc[kPeakChains];
  for (Acc16& v : acc) v = acc16_zero();
  for (int64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < kPeakChains; ++i) {
      acc[i] = dot4_narrow_in_order(acc[i], c, act);
      c = opaque(c);
    }
  }
  PAcc total = pacc_zero();
  for (const Acc16& v : acc) total = widen(total, v);
  alignas(64) float out[kPanelRows];
  alignas(64) float ones[kPanelRows];
  for (float& o : ones) o = 1.0f;
  store_panel(total, 0, 1.0f, ones, out, kPanelRows);
  double sum = 0;
  for (float o : out) sum += o;
  return static_cast<int64_t>(sum);
}
#else
// Independent chains of dot4 (one vpdpbusd each on AVX-512): enough to cover its latency, so the
// loop runs at the multiply-add throughput of the core, with every operand kept in registers.
#if BITNET_SIMD_AMX
// The prefill GEMM runs on the tile unit: four independent C tiles (tmm0-3, as in amx_tiles) fed
// by two A and two B tiles, the shape the kernel issues; 16 x 16 x 64 multiply-adds per TDPBSSD.
constexpr int64_t kPeakMacsPerIteration = 4 * kAmxRows * kGroupRows * kAmxBlockK;
constexpr const char* kPeakMix = "tdpbssd (AMX tiles)";
int64_t int8_peak_simd(int64_t iterations) {
  alignas(64) int8_t bytes[2 * kAmxRows * kAmxBlockK];
  for (int i = 0; i < 2 * kAmxRows * kAmxBlockK; ++i) bytes[i] = static_cast<int8_t>(i % 5 - 2);
  alignas(64) int32_t out[4][kAmxRows * kGroupRows];
  {
    const AmxScope scope;
    _tile_loadd(4, bytes, kAmxBlockK);
    _tile_loadd(5, bytes + kAmxRows * kAmxBlockK, kAmxBlockK);
    _tile_loadd(6, bytes, kAmxBlockK);
    _tile_loadd(7, bytes + kAmxRows * kAmxBlockK, kAmxBlockK);
    for (int64_t it = 0; it < iterations; ++it) {
      _tile_dpbssd(0, 4, 6);
      _tile_dpbssd(1, 4, 7);
      _tile_dpbssd(2, 5, 6);
      _tile_dpbssd(3, 5, 7);
    }
    _tile_stored(0, out[0], kChunkBytes);
    _tile_stored(1, out[1], kChunkBytes);
    _tile_stored(2, out[2], kChunkBytes);
    _tile_stored(3, out[3], kChunkBytes);
  }
  int64_t sum = 0;
  for (const auto& t : out) {
    for (int32_t v : t) sum += v;
  }
  return sum;
}
#else
#if BITNET_SIMD_AVX512
constexpr int kPeakChains = 12;
#elif BITNET_SIMD_AVXVNNI
constexpr int kPeakChains = 6;  // twelve ymm chains
#else
constexpr int kPeakChains = 4;
#endif
constexpr int64_t kPeakMacsPerIteration = int64_t{kPeakChains} * kChunkBytes;
#if BITNET_SIMD_AVX512
constexpr const char* kPeakMix = "vpdpbusd (zmm)";
#elif BITNET_SIMD_AVXVNNI
constexpr const char* kPeakMix = "vpdpbusd (ymm, AVX-VNNI)";
#elif defined(__ARM_FEATURE_DOTPROD)
constexpr const char* kPeakMix = "sdot";
#else
constexpr const char* kPeakMix = "smull + smull2 + addp + sadalp";
#endif
int64_t int8_peak_simd(int64_t iterations) {
  alignas(64) uint8_t bytes[kChunkBytes];
  alignas(64) int8_t act[4 * kPeakChains];
  for (int i = 0; i < kChunkBytes; ++i) bytes[i] = static_cast<uint8_t>(i % 3);
  for (int i = 0; i < 4 * kPeakChains; ++i) act[i] = static_cast<int8_t>(i - 20);
  const Chunk c = load_chunk(bytes);
  Acc acc[kPeakChains];
  for (int i = 0; i < kPeakChains; ++i) acc[i] = acc_zero();
  for (int64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < kPeakChains; ++i) acc[i] = dot4(acc[i], c, act + 4 * i);
  }
  Acc total = acc[0];
  for (int i = 1; i < kPeakChains; ++i) total = acc_add(total, acc[i]);
  alignas(64) float out[kGroupRows];
  alignas(64) float ones[kGroupRows];
  for (float& o : ones) o = 1.0f;
  store_rows(total, 0, 1.0f, ones, out, kGroupRows);
  double sum = 0;
  for (float o : out) sum += o;
  return static_cast<int64_t>(sum);
}

#endif  // BITNET_SIMD_AMX
#endif

uint64_t stream_read_simd(const uint8_t* p, size_t bytes) {
  Chunk s0 = load_chunk(p), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < bytes; i += 4 * kChunkBytes) {
    s0 = chunk_add(s0, load_chunk(p + i));
    s1 = chunk_add(s1, load_chunk(p + i + kChunkBytes));
    s2 = chunk_add(s2, load_chunk(p + i + 2 * kChunkBytes));
    s3 = chunk_add(s3, load_chunk(p + i + 3 * kChunkBytes));
  }
  alignas(64) uint8_t out[kChunkBytes];
  store_chunk(out, chunk_add(chunk_add(s0, s1), chunk_add(s2, s3)));
  uint64_t total = 0;
  for (uint8_t b : out) total = total * 31 + b;
  return total;
}

inline float scalar_value(float v) {
  return v;
}
inline float scalar_value(uint16_t h) {
  // IEEE half -> float, for the few tail elements (rows are normally a multiple of the step).
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t bits;
  if (e == 0x1f) {
    bits = sign | 0x7f800000u | (m << 13);
  } else if (e != 0) {
    bits = sign | ((e + 112u) << 23) | (m << 13);
  } else if (m == 0) {
    bits = sign;
  } else {
    float f = static_cast<float>(m) * (1.0f / 16777216.0f);
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// Four accumulators of kFloatStep lanes, combined as ((a0 + a1) + (a2 + a3)), then the lanes in
// order, then the scalar tail: the same order for F32 and F16 rows. NQ vectors x[q] are dotted
// with the same row at once (each row vector loaded, and converted, once for all of them); every
// pair sees the same operations in the same order for any NQ.
template <int NQ, class Load, class T>
inline void dot_rows_nq(const T* w, const float* const* x, int64_t k, Load load, float* out) {
  constexpr int64_t S = kFloatStep;
  FVec acc[NQ][4];
  for (auto& a : acc) a[0] = a[1] = a[2] = a[3] = fvec_zero();
  int64_t i = 0;
  for (; i + 4 * S <= k; i += 4 * S) {
    const FVec w0 = load(w + i), w1 = load(w + i + S), w2 = load(w + i + 2 * S),
               w3 = load(w + i + 3 * S);
    for (int q = 0; q < NQ; ++q) {
      acc[q][0] = fmadd(w0, load_f32(x[q] + i), acc[q][0]);
      acc[q][1] = fmadd(w1, load_f32(x[q] + i + S), acc[q][1]);
      acc[q][2] = fmadd(w2, load_f32(x[q] + i + 2 * S), acc[q][2]);
      acc[q][3] = fmadd(w3, load_f32(x[q] + i + 3 * S), acc[q][3]);
    }
  }
  for (; i + S <= k; i += S) {
    const FVec w0 = load(w + i);
    for (int q = 0; q < NQ; ++q) acc[q][0] = fmadd(w0, load_f32(x[q] + i), acc[q][0]);
  }
  for (int q = 0; q < NQ; ++q) {
    float sum = reduce_add(fadd(fadd(acc[q][0], acc[q][1]), fadd(acc[q][2], acc[q][3])));
    for (int64_t t = i; t < k; ++t) sum += scalar_value(w[t]) * x[q][t];
    out[q] = sum;
  }
}

template <class Load, class T>
inline float dot_rows(const T* w, const float* x, int64_t k, Load load) {
  float out;
  dot_rows_nq<1>(w, &x, k, load, &out);
  return out;
}

inline FVec load_row(const float* p) {
  return load_f32(p);
}
inline FVec load_row(const uint16_t* p) {
  return load_f16(p);
}

float dot_f32_simd(const float* w, const float* x, int64_t k) {
  return dot_rows(w, x, k, [](const float* p) { return load_f32(p); });
}
float dot_f16_simd(const uint16_t* w, const float* x, int64_t k) {
  return dot_rows(w, x, k, [](const uint16_t* p) { return load_f16(p); });
}

// ------------------------------------------------------------- F16 / F32 LM head over rows
// Tiles of TV matrix rows x TR x rows: TV x TR accumulators, TV converted weight vectors and one x
// vector in registers (AVX2: 4 x 2 = 13 of 16; 32-register ISAs: 4 x 4 = 21). One x row: 8 matrix
// rows per tile, eight independent chains. The matrix is walked in blocks of kTileBlockBytes that
// stay in L2 while every tile of x rows passes over them.
#if BITNET_SIMD_AVX2
constexpr int kTileRows = 2;
#else
constexpr int kTileRows = 4;
#endif
constexpr int kTileVocab = 4, kTileVocabOneRow = 8;
constexpr int64_t kTileBlockBytes = 256 * 1024;
constexpr int64_t kHeadStreamBytes = int64_t{16} << 20;

// PF (one x row, a matrix streamed from DRAM): pf's rows - a later tile's - are prefetched into
// L2 a cache line at a time while this tile streams its own. Without it the decode head ran at
// about 70% of what one core reads (eight interleaved 5 KB row streams are too short for the
// hardware prefetcher to follow).
template <int TV, int TR, bool PF = false, class T>
void head_tile(const T* w, int64_t ws, const float* x, int64_t ldx, int64_t k, float* y,
               int64_t ldy, const T* pf = nullptr) {
  constexpr int64_t S = kFloatStep;
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));  // elements per cache line
  FVec acc[TR][TV];
  for (auto& row : acc) {
    for (FVec& a : row) a = fvec_zero();
  }
  int64_t i = 0;
  for (; i + S <= k; i += S) {
    if (PF && (i & (kLine - 1)) < S) {
      for (int v = 0; v < TV; ++v) __builtin_prefetch(pf + v * ws + i, 0, 2);
    }
    FVec wv[TV];
    for (int v = 0; v < TV; ++v) wv[v] = load_row(w + v * ws + i);
    for (int r = 0; r < TR; ++r) {
      const FVec xv = load_f32(x + r * ldx + i);
      for (int v = 0; v < TV; ++v) acc[r][v] = fmadd(wv[v], xv, acc[r][v]);
    }
  }
  for (int r = 0; r < TR; ++r) {
    for (int v = 0; v < TV; ++v) {
      float sum = reduce_add(acc[r][v]);
      for (int64_t t = i; t < k; ++t) sum += scalar_value(w[v * ws + t]) * x[r * ldx + t];
      y[r * ldy + v] = sum;
    }
  }
}

template <int TV, int TR, class T>
inline void head_tile_v(int64_t nv, const T* w, int64_t ws, const float* x, int64_t ldx, int64_t k,
                        float* y, int64_t ldy) {
  if constexpr (TV >= 1) {
    if (nv == TV) return head_tile<TV, TR>(w, ws, x, ldx, k, y, ldy);
    head_tile_v<TV - 1, TR>(nv, w, ws, x, ldx, k, y, ldy);
  }
}

// Matrix rows [0, nv) of a block against x rows in tiles of TR (the last ones by head_tile_v).
template <int TV, int TR, class T>
inline void head_rows(int64_t nv, const T* w, int64_t ws, const float* x, int64_t ldx, int64_t k,
                      float* y, int64_t ldy) {
  int64_t v = 0;
  if constexpr (TR == 1) {
    // Decode over a matrix larger than the caches: a pure stream, two tiles ahead prefetched.
    // (A matrix that fits, like a small model's head, gains nothing and pays the prefetches.)
    if (nv * ws * static_cast<int64_t>(sizeof(T)) > kHeadStreamBytes) {
      for (; v + 3 * TV <= nv; v += TV) {
        head_tile<TV, TR, true>(w + v * ws, ws, x, ldx, k, y + v, ldy, w + (v + 2 * TV) * ws);
      }
    }
  }
  for (; v + TV <= nv; v += TV) head_tile<TV, TR>(w + v * ws, ws, x, ldx, k, y + v, ldy);
  if (v < nv) head_tile_v<TV - 1, TR>(nv - v, w + v * ws, ws, x, ldx, k, y + v, ldy);
}

template <int TR, class T>
inline void head_rows_r(int64_t nr, int64_t nv, const T* w, int64_t ws, const float* x, int64_t ldx,
                        int64_t k, float* y, int64_t ldy) {
  if constexpr (TR >= 1) {
    if (nr == TR) return head_rows<kTileVocab, TR>(nv, w, ws, x, ldx, k, y, ldy);
    head_rows_r<TR - 1>(nr, nv, w, ws, x, ldx, k, y, ldy);
  }
}

template <class T>
void dot_head_tile_simd(const T* w, int64_t w_stride, int64_t nv, const float* x, int64_t ldx,
                        int64_t nr, int64_t k, float* y, int64_t ldy) {
  if (nr == 1) return head_rows<kTileVocabOneRow, 1>(nv, w, w_stride, x, ldx, k, y, ldy);
  const int64_t fit =
      kTileBlockBytes / (static_cast<int64_t>(sizeof(T)) * k) / kTileVocab * kTileVocab;
  const int64_t block = fit > kTileVocab ? fit : kTileVocab;
  for (int64_t v0 = 0; v0 < nv; v0 += block) {
    const int64_t bv = block < nv - v0 ? block : nv - v0;
    const T* wb = w + v0 * w_stride;
    int64_t r = 0;
    for (; r + kTileRows <= nr; r += kTileRows) {
      head_rows<kTileVocab, kTileRows>(bv, wb, w_stride, x + r * ldx, ldx, k, y + r * ldy + v0,
                                       ldy);
    }
    if (r < nr) {
      head_rows_r<kTileRows - 1>(nr - r, bv, wb, w_stride, x + r * ldx, ldx, k, y + r * ldy + v0,
                                 ldy);
    }
  }
}

void axpy_f16_simd(float a, const uint16_t* x, float* y, int64_t n) {
  const FVec av = fbroadcast(a);
  int64_t i = 0;
  for (; i + kFloatStep <= n; i += kFloatStep)
    store_f32(y + i, fmadd(av, load_f16(x + i), load_f32(y + i)));
  for (; i < n; ++i) y[i] += a * scalar_value(x[i]);
}

// ---------------------------------------------------------------------- attention (prefill)
// Query heads sharing a KV head (GQA: 4 in 2B4T) are taken together, so each cached row is loaded
// and converted from F16 once for several of them. Scores: kScoreQueries pairs at a time, four
// accumulators each (dot_rows's order) plus the four row vectors: 12 of AVX2's 16 registers at 2,
// 20 of 32 at 4. Values: kValueQueries output rows x kValueVecs vectors of the head at a time.
#if BITNET_SIMD_AVX2
constexpr int kScoreQueries = 2;
#else
constexpr int kScoreQueries = 4;
#endif
constexpr int kValueQueries = 4, kValueVecs = 2;

template <int NQ, class T>
inline void scores_block(const T* row, const float* q, int64_t ldq, int64_t d, float* s,
                         int64_t lds) {
  const float* x[NQ];
  float out[NQ];
  for (int i = 0; i < NQ; ++i) x[i] = q + i * ldq;
  dot_rows_nq<NQ>(
      row, x, d, [](const T* p) { return load_row(p); }, out);
  for (int i = 0; i < NQ; ++i) s[i * lds] = out[i];
}

template <int NQ, class T>
inline void scores_tail(int64_t nq, const T* row, const float* q, int64_t ldq, int64_t d, float* s,
                        int64_t lds) {
  if constexpr (NQ >= 1) {
    if (nq == NQ) return scores_block<NQ>(row, q, ldq, d, s, lds);
    scores_tail<NQ - 1>(nq, row, q, ldq, d, s, lds);
  }
}

template <class T>
void attn_scores_simd(const T* rows, int64_t stride, int64_t n, const float* q, int64_t ldq,
                      int64_t nq, int64_t d, float* s, int64_t lds) {
  for (int64_t j = 0; j < n; ++j) {
    const T* row = rows + j * stride;
    int64_t i = 0;
    for (; i + kScoreQueries <= nq; i += kScoreQueries) {
      scores_block<kScoreQueries>(row, q + i * ldq, ldq, d, s + i * lds + j, lds);
    }
    scores_tail<kScoreQueries - 1>(nq - i, row, q + i * ldq, ldq, d, s + i * lds + j, lds);
  }
}

// o[i] += p[i][j] * row_j over the rows in order: per element the same fused multiply-adds as
// axpy_f16 called once per row (and its scalar tail past the last full vector).
template <int NQ, class T>
void values_block(const float* p, int64_t ldp, const T* rows, int64_t stride, int64_t n, int64_t d,
                  float* o, int64_t ldo) {
  constexpr int64_t S = kFloatStep;
  int64_t e = 0;
  for (; e + kValueVecs * S <= d; e += kValueVecs * S) {
    FVec acc[NQ][kValueVecs];
    for (int i = 0; i < NQ; ++i) {
      for (int v = 0; v < kValueVecs; ++v) acc[i][v] = load_f32(o + i * ldo + e + v * S);
    }
    for (int64_t j = 0; j < n; ++j) {
      FVec x[kValueVecs];
      for (int v = 0; v < kValueVecs; ++v) x[v] = load_row(rows + j * stride + e + v * S);
      for (int i = 0; i < NQ; ++i) {
        const FVec a = fbroadcast(p[i * ldp + j]);
        for (int v = 0; v < kValueVecs; ++v) acc[i][v] = fmadd(a, x[v], acc[i][v]);
      }
    }
    for (int i = 0; i < NQ; ++i) {
      for (int v = 0; v < kValueVecs; ++v) store_f32(o + i * ldo + e + v * S, acc[i][v]);
    }
  }
  for (; e + S <= d; e += S) {
    FVec acc[NQ];
    for (int i = 0; i < NQ; ++i) acc[i] = load_f32(o + i * ldo + e);
    for (int64_t j = 0; j < n; ++j) {
      const FVec x = load_row(rows + j * stride + e);
      for (int i = 0; i < NQ; ++i) acc[i] = fmadd(fbroadcast(p[i * ldp + j]), x, acc[i]);
    }
    for (int i = 0; i < NQ; ++i) store_f32(o + i * ldo + e, acc[i]);
  }
  for (; e < d; ++e) {
    for (int i = 0; i < NQ; ++i) {
      for (int64_t j = 0; j < n; ++j)
        o[i * ldo + e] += p[i * ldp + j] * scalar_value(rows[j * stride + e]);
    }
  }
}

template <int NQ, class T>
inline void values_tail(int64_t nq, const float* p, int64_t ldp, const T* rows, int64_t stride,
                        int64_t n, int64_t d, float* o, int64_t ldo) {
  if constexpr (NQ >= 1) {
    if (nq == NQ) return values_block<NQ>(p, ldp, rows, stride, n, d, o, ldo);
    values_tail<NQ - 1>(nq, p, ldp, rows, stride, n, d, o, ldo);
  }
}

template <class T>
void attn_values_simd(const float* p, int64_t ldp, int64_t nq, const T* rows, int64_t stride,
                      int64_t n, int64_t d, float* o, int64_t ldo) {
  int64_t i = 0;
  for (; i + kValueQueries <= nq; i += kValueQueries) {
    values_block<kValueQueries>(p + i * ldp, ldp, rows, stride, n, d, o + i * ldo, ldo);
  }
  values_tail<kValueQueries - 1>(nq - i, p + i * ldp, ldp, rows, stride, n, d, o + i * ldo, ldo);
}

// ------------------------------------------------------------------ output matrix (LM head)

void quantize_blocks_simd(const float* x, int64_t k, int64_t block, int8_t* q, float* d,
                          int16_t* bsum) {
  for (int64_t b = 0; b < k / block; ++b) {
    const float* xb = x + b * block;
    FMax fm = fmax_zero();
    for (int64_t j = 0; j < block; j += kFloatStep) fm = absmax_step(fm, xb + j);
    const float s = common::act_scale_from_absmax(reduce_max(fm));
    d[b] = 1.0f / s;
    int8_t* qb = q + b * block;
    for (int64_t j = 0; j < block; j += kQ8SumSpan) {
      ISum is = isum_zero();
      for (int64_t t = j; t < j + kQ8SumSpan; t += kFloatStep) {
        is = quant_step<-127>(is, xb + t, s, qb + t);
      }
      if (bsum) bsum[(b * block + j) / kQ8SumSpan] = static_cast<int16_t>(reduce_sum(is));
    }
  }
}

// Activation rows that share one pass over a weight row: each block is decoded once for all of
// them. Four keeps the AVX2 accumulators and decoded codes within its 16 registers.
constexpr int kDotRows = 4;

// One weight row against activation rows r0 .. r0 + MB - 1; y points at the row's column.
template <int MB>
void q6_k_row(const uint8_t* row, const BlockQ8Rows& a, int64_t r0, float* y, int64_t ldy) {
  const int8_t* q[MB];
  const int16_t* s[MB];
  const float* d[MB];
  FVec acc[MB];
  for (int r = 0; r < MB; ++r) {
    q[r] = a.q + (r0 + r) * a.ldq;
    s[r] = a.bsum + (r0 + r) * a.ldbsum;
    d[r] = a.d + (r0 + r) * a.ldd;
    acc[r] = fvec_zero();
  }
  const int64_t nb = a.k / kQ6KBlock;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * static_cast<int64_t>(kQ6KBytes);
    // Every line of the stream: four hints 64 bytes apart per 210-byte block leave no gap.
    for (int l = 0; l < 4; ++l) __builtin_prefetch(blk + kPrefetchAhead + 64 * l);
    IVec dot[MB];
    q6_k_block<MB>(blk, q, s, dot);
    const float dw = f16_scalar(blk + 208);
    for (int r = 0; r < MB; ++r) {
      acc[r] = fmadd_i32(dot[r], fbroadcast(dw * d[r][b]), acc[r]);
      q[r] += kQ6KBlock;
      s[r] += kQ6KBlock / kQ8SumSpan;
    }
  }
  for (int r = 0; r < MB; ++r) y[(r0 + r) * ldy] = reduce_add(acc[r]);
}

// Two accumulators per row, alternating by step: the float additions of one row form two chains,
// so a single row is not bound by the fused multiply-add latency. The same for every MB, so that
// a row's result does not depend on the rows computed with it.
template <int MB>
void q8_0_row(const uint8_t* row, const BlockQ8Rows& a, int64_t r0, float* y, int64_t ldy) {
  const int8_t* q[MB];
  const float* d[MB];
  FVec acc[MB][2];
  for (int r = 0; r < MB; ++r) {
    q[r] = a.q + (r0 + r) * a.ldq;
    d[r] = a.d + (r0 + r) * a.ldd;
    acc[r][0] = acc[r][1] = fvec_zero();
  }
  constexpr int64_t kStepBytes = kQ80Step * static_cast<int64_t>(kQ80Bytes);
  constexpr int64_t kStepValues = kQ80Step * kQ80Block;
  Q80Scales sc[MB];
  const int64_t nb = a.k / kQ80Block;
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    const uint8_t* blk = row + b * static_cast<int64_t>(kQ80Bytes);
    for (int l = 0; l < 5; ++l) __builtin_prefetch(blk + kPrefetchAhead + 64 * l);  // 272 bytes
    q80_scales8<MB>(blk, d, sc);
    for (int j = 0; j < 8 / kQ80Step; ++j) {
      const Q80W wv = q80_load(blk + j * kStepBytes);
      for (int r = 0; r < MB; ++r) {
        acc[r][j % 2] =
            fmadd_i32(q80_dot(wv, q[r] + j * kStepValues), q80_step_scale(sc[r], j), acc[r][j % 2]);
      }
    }
    for (int r = 0; r < MB; ++r) {
      q[r] += 8 * kQ80Block;
      d[r] += 8;
    }
  }
  if (b < nb) {  // the last 1..7 blocks
    const int rest = static_cast<int>(nb - b);
    const uint8_t* blk = row + b * static_cast<int64_t>(kQ80Bytes);
    for (int r = 0; r < MB; ++r) sc[r] = q80_scales_tail(blk, d[r], rest);
    for (int j = 0; j * kQ80Step < rest; ++j) {
      const int left = rest - j * kQ80Step;
      const Q80W wv = left >= kQ80Step ? q80_load(blk + j * kStepBytes)
                                       : q80_load_partial(blk + j * kStepBytes, left);
      for (int r = 0; r < MB; ++r) {
        acc[r][j % 2] =
            fmadd_i32(q80_dot(wv, q[r] + j * kStepValues), q80_step_scale(sc[r], j), acc[r][j % 2]);
      }
    }
  }
  for (int r = 0; r < MB; ++r) y[(r0 + r) * ldy] = reduce_add(fadd(acc[r][0], acc[r][1]));
}

template <int MB, bool Q6>
inline void block_row(const uint8_t* row, const BlockQ8Rows& a, int64_t r0, float* y, int64_t ldy) {
  if constexpr (Q6) {
    q6_k_row<MB>(row, a, r0, y, ldy);
  } else {
    q8_0_row<MB>(row, a, r0, y, ldy);
  }
}

// The last rows - fewer than kDotRows - with the tile that fits them exactly.
template <int MB, bool Q6>
inline void block_row_tail(int rest, const uint8_t* row, const BlockQ8Rows& a, int64_t r0, float* y,
                           int64_t ldy) {
  if constexpr (MB >= 1) {
    if (rest == MB) return block_row<MB, Q6>(row, a, r0, y, ldy);
    block_row_tail<MB - 1, Q6>(rest, row, a, r0, y, ldy);
  }
}

template <bool Q6>
void block_dot_simd(const uint8_t* w, size_t w_stride, int64_t n, const BlockQ8Rows& a, float* y,
                    int64_t ldy) {
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* row = w + static_cast<size_t>(i) * w_stride;
    int64_t r0 = 0;
    for (; r0 + kDotRows <= a.m; r0 += kDotRows) block_row<kDotRows, Q6>(row, a, r0, y + i, ldy);
    block_row_tail<kDotRows - 1, Q6>(static_cast<int>(a.m - r0), row, a, r0, y + i, ldy);
  }
}

// ---------------------------------------------------------- int8 output matrix (opt-in LM head)
// Tiles of G row groups x R activation rows: G chunks loaded and R activation words prepared per
// 4 columns serve G x R chunk dots (AVX-512: 4 x 4 = 16 vpdpbusd per 8 loads and 4 xors, 24 of 32
// registers; AVX2: each chunk dot is 2 x (vpsignb, vpmaddubsw, vpmaddwd, vpaddd), so 1 x 2 keeps
// within 16 registers). One activation row (decode): a group at a time, one sequential stream
// (i8_group_gemv; interleaving eight groups' streams read DRAM at ~80% of the rate the other
// decode kernels reach). With more rows the groups are walked in blocks of kTileBlockBytes that
// stay in L2 while every tile of rows passes.
#if BITNET_SIMD_AVXVNNI
constexpr int kI8Groups = 2, kI8Rows = 2;  // 8 accumulator ymm, 4 weight, 2 activation
#elif BITNET_SIMD_AVX2
constexpr int kI8Groups = 1, kI8Rows = 2;
#elif BITNET_SIMD_NEON
constexpr int kI8Groups = 2, kI8Rows = 2;
#else
constexpr int kI8Groups = 4, kI8Rows = 4;
#endif

template <int G, int R>
void i8_tile(const Int8MatrixView& w, const QuantizedRows& a, int64_t g0, int64_t m0, float* y,
             int64_t ldy) {
  I8Acc acc[R][G];
  for (auto& row : acc) {
    for (I8Acc& v : row) v = i8_zero();
  }
  const auto* base =
      reinterpret_cast<const uint8_t*>(w.data) + static_cast<size_t>(g0) * w.group_bytes;
  const int8_t* q = a.q + m0 * a.ldq;
  const int64_t chunks = w.k / kI8KMultiple;
  for (int64_t c = 0; c < chunks; ++c) {
    I8Act act[R];
    for (int r = 0; r < R; ++r) act[r] = i8_act(q + r * a.ldq + kI8KMultiple * c);
    for (int g = 0; g < G; ++g) {
      const uint8_t* p = base + g * w.group_bytes + c * kChunkBytes;
      const Chunk ch = load_chunk(p);
      for (int r = 0; r < R; ++r) acc[r][g] = i8_dot4(acc[r][g], ch, act[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int g = 0; g < G; ++g) {
      const int64_t row0 = (g0 + g) * kGroupRows;
      const int n_valid = static_cast<int>(w.n - row0 < kGroupRows ? w.n - row0 : kGroupRows);
      i8_store_rows(acc[r][g], w.row_sum + row0, a.scale[m0 + r], w.row_scale + row0,
                    y + (m0 + r) * ldy + row0, n_valid);
    }
  }
}

// One activation row against one group, a single sequential stream (the hardware prefetcher's
// best case, plus hints kPrefetchAhead ahead when PF): four accumulators over alternating chunks
// hide the dot's latency; integer sums, so their order changes nothing.
template <bool PF>
void i8_group_gemv(const Int8MatrixView& w, const QuantizedRows& a, int64_t g, float* y) {
  constexpr int kChains = 4;
  I8Acc acc[kChains];
  for (I8Acc& v : acc) v = i8_zero();
  const uint8_t* p =
      reinterpret_cast<const uint8_t*>(w.data) + static_cast<size_t>(g) * w.group_bytes;
  const int64_t chunks = w.k / kI8KMultiple;
  int64_t c = 0;
  for (; c + kChains <= chunks; c += kChains) {
    for (int u = 0; u < kChains; ++u) {
      const uint8_t* at = p + (c + u) * kChunkBytes;
      if constexpr (PF) __builtin_prefetch(at + kPrefetchAhead);
      acc[u] = i8_dot4(acc[u], load_chunk(at), i8_act(a.q + kI8KMultiple * (c + u)));
    }
  }
  for (; c < chunks; ++c) {
    acc[0] = i8_dot4(acc[0], load_chunk(p + c * kChunkBytes), i8_act(a.q + kI8KMultiple * c));
  }
  const I8Acc sum = i8_add(i8_add(acc[0], acc[1]), i8_add(acc[2], acc[3]));
  const int64_t row0 = g * kGroupRows;
  const int n_valid = static_cast<int>(w.n - row0 < kGroupRows ? w.n - row0 : kGroupRows);
  i8_store_rows(sum, w.row_sum + row0, a.scale[0], w.row_scale + row0, y + row0, n_valid);
}

// Groups [g0, g1) against rows m0 .. m0 + R - 1: tiles of G groups, then single groups.
template <int G, int R>
inline void i8_groups(const Int8MatrixView& w, const QuantizedRows& a, int64_t g0, int64_t g1,
                      int64_t m0, float* y, int64_t ldy) {
  int64_t g = g0;
  for (; g + G <= g1; g += G) i8_tile<G, R>(w, a, g, m0, y, ldy);
  for (; g < g1; ++g) i8_tile<1, R>(w, a, g, m0, y, ldy);
}

// The last rows - fewer than kI8Rows - with the tile that fits them exactly.
template <int R>
inline void i8_rows_tail(int rest, const Int8MatrixView& w, const QuantizedRows& a, int64_t g0,
                         int64_t g1, int64_t m0, float* y, int64_t ldy) {
  if constexpr (R >= 1) {
    if (rest == R) return i8_groups<kI8Groups, R>(w, a, g0, g1, m0, y, ldy);
    i8_rows_tail<R - 1>(rest, w, a, g0, g1, m0, y, ldy);
  }
}

void matmul_i8_wide(const Int8MatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                    int64_t g0, int64_t g1) {
  if (a.m == 1) {
    if (static_cast<int64_t>(w.group_bytes) * (g1 - g0) > kHeadStreamBytes) {
      for (int64_t g = g0; g < g1; ++g) i8_group_gemv<true>(w, a, g, y);
    } else {
      for (int64_t g = g0; g < g1; ++g) i8_group_gemv<false>(w, a, g, y);
    }
    return;
  }
  const int64_t fit = kTileBlockBytes / static_cast<int64_t>(w.group_bytes) / kI8Groups * kI8Groups;
  const int64_t block = fit > kI8Groups ? fit : kI8Groups;
  for (int64_t b0 = g0; b0 < g1; b0 += block) {
    const int64_t b1 = b0 + block < g1 ? b0 + block : g1;
    int64_t m0 = 0;
    for (; m0 + kI8Rows <= a.m; m0 += kI8Rows)
      i8_groups<kI8Groups, kI8Rows>(w, a, b0, b1, m0, y, ldy);
    i8_rows_tail<kI8Rows - 1>(static_cast<int>(a.m - m0), w, a, b0, b1, m0, y, ldy);
  }
}

void matmul_i8_simd(const Int8MatrixView& w, const QuantizedRows& a, float* y, int64_t ldy,
                    int64_t g0, int64_t g1) {
#if BITNET_SIMD_AMX
  if (a.m >= kAmxRows) {
    amx_split(AmxI8Source{w}, w.n, a, y, ldy, g0, g1,
              [&](const QuantizedRows& rows, float* out, int64_t b0, int64_t b1) {
                matmul_i8_wide(w, rows, out, ldy, b0, b1);
              });
    return;
  }
#endif
  matmul_i8_wide(w, a, y, ldy, g0, g1);
}

}  // namespace

extern const KernelTable BITNET_TABLE_NAME;
// T1 where its digits decode in vpdpbusd's unsigned bytes at AVX-512's width (kept only where the
// core has the ports for it: dispatch.cpp, preferred_layout). AVX-VNNI runs T2:
// on an Intel Xeon (family 6 model 207, 2B4T dummy, Q6_K head, 2 threads) T1 gained 1-3% in decode
// and lost 19-29% in prefill (its GEMM at about 50% of the ymm peak against T2's 79%). AMX runs
// T2: its tiles take T2's fields as they decode (amx_tiles).
#if BITNET_SIMD_AVX512 && !BITNET_SIMD_AMX
constexpr TernaryLayout kPreferredLayout = TernaryLayout::T1;
#else
constexpr TernaryLayout kPreferredLayout = TernaryLayout::T2;
#endif
const KernelTable BITNET_TABLE_NAME = {
    BITNET_TABLE_ISA,
    kPreferredLayout,
    quantize_simd,
    {matmul_simd<TernaryLayout::T2>, matmul_simd<TernaryLayout::T1>},
    int8_peak_simd,
    kPeakMacsPerIteration,
    kPeakMix,
    stream_read_simd,
    dot_f32_simd,
    dot_f16_simd,
    dot_head_tile_simd<uint16_t>,
    dot_head_tile_simd<float>,
    axpy_f16_simd,
    attn_scores_simd<uint16_t>,
    attn_scores_simd<float>,
    attn_values_simd<uint16_t>,
    attn_values_simd<float>,
    quantize_blocks_simd,
    block_dot_simd<true>,
    block_dot_simd<false>,
    matmul_i8_simd};

}  // namespace bitnet::kernels
