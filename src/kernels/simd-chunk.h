// Per-ISA primitives over one 64-byte chunk (16 rows x 4 bytes, kernel-types.h) and one row of
// floats. kernels-simd.cpp writes each kernel once on top of these; the build compiles it once per
// ISA with that ISA's flags, and this header picks the matching primitives from the predefined
// macros. Everything has internal linkage (see ternary-common.h for why).
//
//   Chunk   64 code bytes; Acc: 16 x int32, lane r = row r of the group (not on AVX2 without
//           VNNI, below; AVX-VNNI holds both in two ymm, rows 0-7 and 8-15).
//   kMaxRowsPerTile, kWideGemvSets, kT1Chains: register budgets of the wide kernels.
//   load_chunk(p)          aligned 64-byte load
//   code2<S>(raw)          (raw >> 2S) & 3 per byte (T2 field S)
//   field2_in_place<S>     raw & (3 << 2S) (then acc_sar<2S>; acc_sub); only where
//                          BITNET_SIMD_WIDE_UNSIGNED_DOT is defined (dot4 takes unsigned 0..255)
//   trit(q)                ((q * 3) >> 8) per byte (T1 digit of a byte already multiplied by 3^n)
//   times3(q)              q * 3 mod 256 per byte
//   chunk_add, store_chunk byte-wise add and aligned store (bandwidth probe)
//   dot4(acc, c, q4)       acc[r] += sum_j c[4r + j] * q4[j], codes unsigned, q4 int8
//   store_rows(acc, ...)   epilogue of ternary-common.h for n_valid <= 16 rows
//   Narrow accumulation (AVX2 only, BITNET_SIMD_NARROW_DOT): the same over one panel (a 32-byte
//   half of a chunk, 8 rows) into 16-bit sums, widened to 32 bits every kNarrowDots products:
//   Panel, load_panel, panel_code2<S>, panel_field2_in_place<S>, panel_t1/panel_trit/
//   panel_times3, Acc16, dot4_narrow(_in_order), PAcc, widen, widen_times<C>, pacc_sar<B>,
//   store_panel; opaque() hides a value from the optimizer (peak loop).
//   Quantizer: FMax/absmax_step/reduce_max, ISum/quant_step/reduce_sum over kFloatStep floats;
//              quant_step<Lo> clamps codes to [Lo, 127] and maps NaN to Lo (Lo = -128 or -127).
//   Float dots: FVec, load_f32, load_f16, store_f32, fbroadcast, fmadd, fadd, reduce_add.
//   Int8 matrices (opt-in LM head; weights signed): I8Acc 16 x int32 (lane r = row r), I8Act one
//   activation word prepared once for every chunk it meets, i8_act(q4), i8_zero(),
//   i8_dot4(acc, chunk, act) acc[r] += sum_j w[4r + j] * q4[j] (both signed, exact), i8_add,
//   i8_store_rows(acc, row_sum, act_scale, row_scale, y, n_valid) the epilogue.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define BITNET_SIMD_AVX512 1
#if defined(__AMX_TILE__) && defined(__AMX_INT8__)
// AMX (Intel Xeon from Sapphire Rapids on): the AVX-512 variant, with the prefill GEMMs on the
// tile unit (kernels-simd.cpp, "AMX tiles").
#define BITNET_SIMD_AMX 1
#endif
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* temporaries
// (GCC bug 105593, fixed in GCC 13); the locations are inside the header, so this covers only them.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#elif defined(__AVX2__)
#define BITNET_SIMD_AVX2 1
#if defined(__AVXVNNI__)
// AVX-VNNI (Intel client cores from Alder Lake on; CPUs with AVX-512 VNNI run that instead): the
// AVX2 variant with vpdpbusd on ymm for the dots.
#define BITNET_SIMD_AVXVNNI 1
#endif
#include <immintrin.h>
#elif defined(__ARM_NEON)
#define BITNET_SIMD_NEON 1
#include <arm_neon.h>
#else
#error "simd-chunk.h needs AVX-512 (F, BW, VNNI), AVX2 or NEON"
#endif

namespace bitnet::kernels::simd {

static inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

#if BITNET_SIMD_AVX512
// ---------------------------------------------------------------------------------- AVX-512 VNNI
inline constexpr int kMaxRowsPerTile = 8;  // activation rows sharing one decoded weight chunk
inline constexpr int kWideGemvSets = 2;    // accumulator sets of T2 decode (chunks per iteration)
inline constexpr int kT1Chains = 5;        // accumulator pairs of T1 decode (one per digit)

struct Chunk {
  __m512i v;
};
struct Acc {
  __m512i v;
};

static inline Chunk load_chunk(const uint8_t* p) {
  return {_mm512_load_si512(p)};
}
template <int S>
static inline Chunk code2(Chunk raw) {
  return {_mm512_and_si512(_mm512_srli_epi16(raw.v, 2 * S), _mm512_set1_epi8(3))};
}
static inline Chunk trit(Chunk q) {
  const __mmask64 ge1 = _mm512_cmpge_epu8_mask(q.v, _mm512_set1_epi8(86));
  const __mmask64 ge2 = _mm512_cmpge_epu8_mask(q.v, _mm512_set1_epi8(static_cast<char>(171)));
  const __m512i one = _mm512_set1_epi8(1);
  const __m512i t = _mm512_maskz_mov_epi8(ge1, one);
  return {_mm512_mask_add_epi8(t, ge2, t, one)};
}
static inline Chunk times3(Chunk q) {
  return {_mm512_add_epi8(q.v, _mm512_add_epi8(q.v, q.v))};
}
static inline Chunk chunk_add(Chunk a, Chunk b) {
  return {_mm512_add_epi8(a.v, b.v)};
}
static inline void store_chunk(uint8_t* p, Chunk c) {
  _mm512_store_si512(p, c.v);
}
static inline Acc acc_zero() {
  return {_mm512_setzero_si512()};
}
static inline Acc acc_add(Acc a, Acc b) {
  return {_mm512_add_epi32(a.v, b.v)};
}
// dot4 multiplies unsigned bytes of any size (vpdpbusd), so a T2 field can be used in place:
// raw & (3 << 2S) is the code times 4^S, and the accumulator is shifted back by 2S at the end.
#define BITNET_SIMD_WIDE_UNSIGNED_DOT 1
template <int S>
static inline Chunk field2_in_place(Chunk raw) {
  return {_mm512_and_si512(raw.v, _mm512_set1_epi8(static_cast<char>(3 << (2 * S))))};
}
template <int B>
static inline Acc acc_sar(Acc a) {
  return {_mm512_srai_epi32(a.v, B)};
}
static inline Acc acc_sub(Acc a, Acc b) {
  return {_mm512_sub_epi32(a.v, b.v)};
}
static inline Acc dot4(Acc acc, Chunk c, const int8_t* q4) {
  return {_mm512_dpbusd_epi32(acc.v, c.v, _mm512_set1_epi32(load_i32(q4)))};
}
static inline void store_rows(Acc acc, int32_t act_sum, float act_scale, const float* row_scale,
                              float* y, int n_valid) {
  __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc.v, _mm512_set1_epi32(act_sum)));
  v = _mm512_mul_ps(_mm512_div_ps(v, _mm512_set1_ps(act_scale)), _mm512_load_ps(row_scale));
  const __mmask16 mask = static_cast<__mmask16>((1u << n_valid) - 1u);
  _mm512_mask_storeu_ps(y, mask, v);
}

// Int8 matrices: vpdpbusd multiplies unsigned by signed bytes, so the activation word is made
// unsigned (q + 128, an xor of its sign bits) and 128 x the row's code sum is taken off at the end.
struct I8Acc {
  __m512i v;
};
struct I8Act {
  __m512i v;
};
static inline I8Acc i8_zero() {
  return {_mm512_setzero_si512()};
}
static inline I8Act i8_act(const int8_t* q4) {
  return {_mm512_xor_si512(_mm512_set1_epi32(load_i32(q4)), _mm512_set1_epi8(-128))};
}
static inline I8Acc i8_dot4(I8Acc acc, Chunk w, I8Act a) {
  return {_mm512_dpbusd_epi32(acc.v, a.v, w.v)};
}
static inline I8Acc i8_add(I8Acc a, I8Acc b) {
  return {_mm512_add_epi32(a.v, b.v)};
}
static inline void i8_store_rows(I8Acc acc, const int32_t* row_sum, float act_scale,
                                 const float* row_scale, float* y, int n_valid) {
  const __m512i bias = _mm512_slli_epi32(_mm512_load_si512(row_sum), 7);
  __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc.v, bias));
  v = _mm512_mul_ps(_mm512_div_ps(v, _mm512_set1_ps(act_scale)), _mm512_load_ps(row_scale));
  const __mmask16 mask = static_cast<__mmask16>((1u << n_valid) - 1u);
  _mm512_mask_storeu_ps(y, mask, v);
}

inline constexpr int kFloatStep = 16;
struct FMax {
  __m512 v;
};
struct ISum {
  __m512i v;
};
static inline FMax fmax_zero() {
  return {_mm512_setzero_ps()};
}
static inline FMax absmax_step(FMax m, const float* x) {
  // abs first: max_ps returns its second operand when one is NaN, so NaN inputs are skipped
  // exactly as std::fmax skips them in the reference.
  return {_mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x)), m.v)};
}
static inline float reduce_max(FMax m) {
  return _mm512_reduce_max_ps(m.v);
}
static inline ISum isum_zero() {
  return {_mm512_setzero_si512()};
}
template <int Lo = -128>
static inline ISum quant_step(ISum acc, const float* x, float s, int8_t* q) {
  const __m512i i = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(s)));
  const __m512i c = _mm512_max_epi32(i, _mm512_set1_epi32(Lo));  // NaN/overflow -> INT_MIN -> Lo
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(c));
  return {_mm512_add_epi32(acc.v, _mm512_min_epi32(c, _mm512_set1_epi32(127)))};
}
static inline int32_t reduce_sum(ISum s) {
  return _mm512_reduce_add_epi32(s.v);
}
// Float dot products (LM head): FVec holds kFloatStep floats.
struct FVec {
  __m512 v;
};
static inline FVec fvec_zero() {
  return {_mm512_setzero_ps()};
}
static inline FVec load_f32(const float* p) {
  return {_mm512_loadu_ps(p)};
}
static inline FVec load_f16(const uint16_t* p) {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}
static inline void store_f32(float* p, FVec v) {
  _mm512_storeu_ps(p, v.v);
}
static inline FVec fbroadcast(float a) {
  return {_mm512_set1_ps(a)};
}
static inline FVec fmadd(FVec a, FVec b, FVec acc) {
  return {_mm512_fmadd_ps(a.v, b.v, acc.v)};
}
static inline FVec fadd(FVec a, FVec b) {
  return {_mm512_add_ps(a.v, b.v)};
}
static inline float reduce_add(FVec a) {
  return _mm512_reduce_add_ps(a.v);
}

#elif BITNET_SIMD_AVX2
// ------------------------------------------------------------------------------------------ AVX2
// Without VNNI there is no 32-bit byte dot: the ternary kernels use the narrow accumulation below
// (Panel, Acc16, PAcc) instead of Chunk and Acc, which serve only the bandwidth probe here.
struct Chunk {
  __m256i lo, hi;
};

static inline Chunk load_chunk(const uint8_t* p) {
  return {_mm256_load_si256(reinterpret_cast<const __m256i*>(p)),
          _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32))};
}
static inline Chunk chunk_add(Chunk a, Chunk b) {
  return {_mm256_add_epi8(a.lo, b.lo), _mm256_add_epi8(a.hi, b.hi)};
}
static inline void store_chunk(uint8_t* p, Chunk c) {
  _mm256_store_si256(reinterpret_cast<__m256i*>(p), c.lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(p + 32), c.hi);
}
static inline __m256 epilogue8(__m256i acc, int32_t act_sum, float act_scale, const float* rs) {
  const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, _mm256_set1_epi32(act_sum)));
  return _mm256_mul_ps(_mm256_div_ps(v, _mm256_set1_ps(act_scale)), _mm256_load_ps(rs));
}
// 16 rows' results from their two halves (rows 0-7, 8-15), the first n_valid stored.
static inline void store_rows16(__m256i lo, __m256i hi, int32_t act_sum, float act_scale,
                                const float* row_scale, float* y, int n_valid) {
  alignas(32) float tmp[16];
  const bool full = n_valid == 16;
  float* out = full ? y : tmp;
  _mm256_storeu_ps(out, epilogue8(lo, act_sum, act_scale, row_scale));
  _mm256_storeu_ps(out + 8, epilogue8(hi, act_sum, act_scale, row_scale + 8));
  if (!full) {
    for (int r = 0; r < n_valid; ++r) y[r] = tmp[r];
  }
}
// Code bytes of one ymm (a panel of the narrow kernels, half a chunk of AVX-VNNI's wide ones).
template <int S>
static inline __m256i ymm_code2(__m256i raw) {
  const __m256i m = _mm256_set1_epi8(3);
  if constexpr (S == 0) return _mm256_and_si256(raw, m);
  return _mm256_and_si256(_mm256_srli_epi16(raw, 2 * S), m);
}
template <int S>
static inline __m256i ymm_field2_in_place(__m256i raw) {
  return _mm256_and_si256(raw, _mm256_set1_epi8(static_cast<char>(3 << (2 * S))));
}
static inline __m256i ymm_times3(__m256i x) {
  return _mm256_add_epi8(x, _mm256_add_epi8(x, x));
}
// T1 digits without an unsigned byte compare: with the bytes biased by 0x80 (x = q ^ 0x80; 3x =
// 3q + 128 mod 256, so times3 keeps the bias) the digit [q >= 86] + [q >= 171] is two signed
// compares.
static inline __m256i ymm_bias(__m256i q) {
  return _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80)));
}
static inline __m256i ymm_trit_biased(__m256i x) {
  const __m256i ge1 = _mm256_cmpgt_epi8(x, _mm256_set1_epi8(85 - 128));  // -1 where q >= 86
  const __m256i ge2 = _mm256_cmpgt_epi8(x, _mm256_set1_epi8(42));        // -1 where q >= 171
  return _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), ge1), ge2);
}

#if !BITNET_SIMD_AVXVNNI
// Narrow accumulation. vpmaddubsw leaves 16-bit pair sums; adding them with vpaddw and widening
// (vpmaddwd by 1) only every kNarrowDots products takes one multiply per 32 multiply-adds instead
// of two: the integer multiplies are the bottleneck (one pipe on Zen 2; on Zen 4 two, shared with
// the adds). A panel is one 32-byte half of a chunk: 8 rows x 4 bytes.
#define BITNET_SIMD_NARROW_DOT 1
inline constexpr int kPanelRows = 8;
inline constexpr int kPanelsPerChunk = 2;
// Codes are at most 2 and activations in [-128, 127], so a pair sum lies in [-512, 508]: 64 of
// them fit int16 exactly (64 * -512 = -32768).
inline constexpr int kNarrowDots = 64;

struct Panel {
  __m256i v;
};
struct Acc16 {
  __m256i v;
};
struct PAcc {
  __m256i v;
};
static inline Panel load_panel(const uint8_t* p) {
  return {_mm256_load_si256(reinterpret_cast<const __m256i*>(p))};
}
template <int S>
static inline Panel panel_code2(Panel raw) {
  return {ymm_code2<S>(raw.v)};
}
// T1 digits: panel_t1(raw) prepares a panel's bytes q (biased, ymm_bias); panel_trit gives digit n
// of the bytes after n panel_times3.
static inline Panel panel_t1(Panel raw) {
  return {ymm_bias(raw.v)};
}
static inline Panel panel_trit(Panel x) {
  return {ymm_trit_biased(x.v)};
}
static inline Panel panel_times3(Panel x) {
  return {ymm_times3(x.v)};
}
static inline Acc16 acc16_zero() {
  return {_mm256_setzero_si256()};
}
static inline PAcc pacc_zero() {
  return {_mm256_setzero_si256()};
}
static inline Acc16 dot4_narrow(Acc16 acc, Panel c, const int8_t* q4) {
  return {_mm256_add_epi16(acc.v, _mm256_maddubs_epi16(c.v, _mm256_set1_epi32(load_i32(q4))))};
}
// The same with each sum pinned to its register by an empty asm: in a tile GCC otherwise
// reassociates the 16-bit adds (adding the products of several fields first) and spills the
// products of every row. (Where one chain takes one product at a time, the pin only adds moves.)
static inline Acc16 dot4_narrow_in_order(Acc16 acc, Panel c, const int8_t* q4) {
  __m256i s = _mm256_add_epi16(acc.v, _mm256_maddubs_epi16(c.v, _mm256_set1_epi32(load_i32(q4))));
  __asm__("" : "+x"(s));
  return {s};
}
static inline PAcc widen(PAcc acc, Acc16 n) {
  return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(n.v, _mm256_set1_epi16(1)))};
}
// T2 field S in place, raw & (3 << 2S): the code times 4^S, one op instead of two. A single
// vpmaddubsw stays exact for any S (|4^3 * 2 * 128 * 2| = 32768), but fewer products fit 16 bits.
template <int S>
static inline Panel panel_field2_in_place(Panel raw) {
  return {ymm_field2_in_place<S>(raw.v)};
}
template <int C>
static inline PAcc widen_times(PAcc acc, Acc16 n) {
  return {_mm256_add_epi32(acc.v, _mm256_madd_epi16(n.v, _mm256_set1_epi16(C)))};
}
template <int B>
static inline PAcc pacc_sar(PAcc a) {
  return {_mm256_srai_epi32(a.v, B)};
}
static inline void store_panel(PAcc acc, int32_t act_sum, float act_scale, const float* row_scale,
                               float* y, int n_valid) {
  const __m256 v = epilogue8(acc.v, act_sum, act_scale, row_scale);
  if (n_valid == kPanelRows) {
    _mm256_storeu_ps(y, v);
    return;
  }
  alignas(32) float tmp[kPanelRows];
  _mm256_store_ps(tmp, v);
  for (int r = 0; r < n_valid; ++r) y[r] = tmp[r];
}
// Hides a value from the optimizer (the peak loop's operands are loop-invariant otherwise).
static inline Panel opaque(Panel p) {
  __asm__ volatile("" : "+x"(p.v));
  return p;
}

// Int8 matrices without VNNI: vpmaddubsw of |q| (unsigned, up to 128) by w with q's sign
// (vpsignb), so a pair sum is at most 2 x 128 x 127 = 32512 and never saturates; widened to 32
// bits (vpmaddwd by 1) at once. A chunk is two panels (rows 0-7, 8-15).
struct I8Acc {
  __m256i lo, hi;
};
struct I8Act {
  __m256i mag, sign;
};
static inline I8Acc i8_zero() {
  return {_mm256_setzero_si256(), _mm256_setzero_si256()};
}
static inline I8Act i8_act(const int8_t* q4) {
  const __m256i b = _mm256_set1_epi32(load_i32(q4));
  return {_mm256_abs_epi8(b), b};
}
static inline __m256i i8_dot_panel(__m256i acc, __m256i w, I8Act a) {
  const __m256i pairs = _mm256_maddubs_epi16(a.mag, _mm256_sign_epi8(w, a.sign));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
static inline I8Acc i8_dot4(I8Acc acc, Chunk w, I8Act a) {
  return {i8_dot_panel(acc.lo, w.lo, a), i8_dot_panel(acc.hi, w.hi, a)};
}
static inline I8Acc i8_add(I8Acc a, I8Acc b) {
  return {_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)};
}
static inline void i8_store_rows(I8Acc acc, const int32_t*, float act_scale, const float* row_scale,
                                 float* y, int n_valid) {
  store_rows16(acc.lo, acc.hi, 0, act_scale, row_scale, y, n_valid);
}

#else
// AVX-VNNI: the wide kernels of AVX-512 at half the width. A chunk is two ymm (lo: rows 0-7, hi:
// rows 8-15) and so is an accumulator, so the register budget is half of AVX-512's in count and a
// quarter in width: four activation rows per tile (8 accumulators, 2 codes, 2 raw, broadcast and
// mask: 14 of 16), one set of four accumulators in T2 decode, three pairs in T1's (see
// kernels-simd.cpp).
inline constexpr int kMaxRowsPerTile = 4;
inline constexpr int kWideGemvSets = 1;
inline constexpr int kT1Chains = 3;

struct Acc {
  __m256i lo, hi;
};
static inline __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8) {
  return _mm256_dpbusd_avx_epi32(acc, u8, s8);
}
template <int S>
static inline Chunk code2(Chunk raw) {
  return {ymm_code2<S>(raw.lo), ymm_code2<S>(raw.hi)};
}
static inline Chunk trit(Chunk q) {
  return {ymm_trit_biased(ymm_bias(q.lo)), ymm_trit_biased(ymm_bias(q.hi))};
}
static inline Chunk times3(Chunk q) {
  return {ymm_times3(q.lo), ymm_times3(q.hi)};
}
static inline Acc acc_zero() {
  return {_mm256_setzero_si256(), _mm256_setzero_si256()};
}
static inline Acc acc_add(Acc a, Acc b) {
  return {_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)};
}
// vpdpbusd takes unsigned bytes of any size, as on AVX-512.
#define BITNET_SIMD_WIDE_UNSIGNED_DOT 1
template <int S>
static inline Chunk field2_in_place(Chunk raw) {
  return {ymm_field2_in_place<S>(raw.lo), ymm_field2_in_place<S>(raw.hi)};
}
template <int B>
static inline Acc acc_sar(Acc a) {
  return {_mm256_srai_epi32(a.lo, B), _mm256_srai_epi32(a.hi, B)};
}
static inline Acc acc_sub(Acc a, Acc b) {
  return {_mm256_sub_epi32(a.lo, b.lo), _mm256_sub_epi32(a.hi, b.hi)};
}
static inline Acc dot4(Acc acc, Chunk c, const int8_t* q4) {
  const __m256i b = _mm256_set1_epi32(load_i32(q4));
  return {dpbusd(acc.lo, c.lo, b), dpbusd(acc.hi, c.hi, b)};
}
static inline void store_rows(Acc acc, int32_t act_sum, float act_scale, const float* row_scale,
                              float* y, int n_valid) {
  store_rows16(acc.lo, acc.hi, act_sum, act_scale, row_scale, y, n_valid);
}

// Int8 matrices: as on AVX-512, the activation word is made unsigned (q ^ 0x80 = q + 128) and
// 128 x the row's code sum is taken off at the end.
using I8Acc = Acc;
struct I8Act {
  __m256i v;
};
static inline I8Acc i8_zero() {
  return acc_zero();
}
static inline I8Act i8_act(const int8_t* q4) {
  return {_mm256_xor_si256(_mm256_set1_epi32(load_i32(q4)), _mm256_set1_epi8(-128))};
}
static inline I8Acc i8_dot4(I8Acc acc, Chunk w, I8Act a) {
  return {dpbusd(acc.lo, a.v, w.lo), dpbusd(acc.hi, a.v, w.hi)};
}
static inline I8Acc i8_add(I8Acc a, I8Acc b) {
  return acc_add(a, b);
}
static inline void i8_store_rows(I8Acc acc, const int32_t* row_sum, float act_scale,
                                 const float* row_scale, float* y, int n_valid) {
  const auto* rs = reinterpret_cast<const __m256i*>(row_sum);
  acc.lo = _mm256_sub_epi32(acc.lo, _mm256_slli_epi32(_mm256_loadu_si256(rs), 7));
  acc.hi = _mm256_sub_epi32(acc.hi, _mm256_slli_epi32(_mm256_loadu_si256(rs + 1), 7));
  store_rows(acc, 0, act_scale, row_scale, y, n_valid);
}
#endif

inline constexpr int kFloatStep = 8;
struct FMax {
  __m256 v;
};
struct ISum {
  __m256i v;
};
static inline FMax fmax_zero() {
  return {_mm256_setzero_ps()};
}
static inline FMax absmax_step(FMax m, const float* x) {
  const __m256 abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_loadu_ps(x));
  return {_mm256_max_ps(abs, m.v)};  // NaN lanes keep m, as std::fmax does
}
static inline float reduce_max(FMax m) {
  __m128 v = _mm_max_ps(_mm256_castps256_ps128(m.v), _mm256_extractf128_ps(m.v, 1));
  v = _mm_max_ps(v, _mm_movehl_ps(v, v));
  v = _mm_max_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}
static inline ISum isum_zero() {
  return {_mm256_setzero_si256()};
}
template <int Lo = -128>
static inline ISum quant_step(ISum acc, const float* x, float s, int8_t* q) {
  __m256i i = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), _mm256_set1_ps(s)));
  i = _mm256_min_epi32(_mm256_max_epi32(i, _mm256_set1_epi32(Lo)), _mm256_set1_epi32(127));
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  const __m128i b = _mm_packs_epi16(w, w);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(q), b);
  return {_mm256_add_epi32(acc.v, i)};
}
static inline int32_t reduce_sum(ISum s) {
  __m128i v = _mm_add_epi32(_mm256_castsi256_si128(s.v), _mm256_extracti128_si256(s.v, 1));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
  return _mm_cvtsi128_si32(v);
}
// Float dot products (LM head): FVec holds kFloatStep floats.
struct FVec {
  __m256 v;
};
static inline FVec fvec_zero() {
  return {_mm256_setzero_ps()};
}
static inline FVec load_f32(const float* p) {
  return {_mm256_loadu_ps(p)};
}
static inline FVec load_f16(const uint16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
}
static inline void store_f32(float* p, FVec v) {
  _mm256_storeu_ps(p, v.v);
}
static inline FVec fbroadcast(float a) {
  return {_mm256_set1_ps(a)};
}
static inline FVec fmadd(FVec a, FVec b, FVec acc) {
  return {_mm256_fmadd_ps(a.v, b.v, acc.v)};
}
static inline FVec fadd(FVec a, FVec b) {
  return {_mm256_add_ps(a.v, b.v)};
}
static inline float reduce_add(FVec a) {
  __m128 v = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}

#elif BITNET_SIMD_NEON
// ------------------------------------------------------------------------------------------ NEON
// v[i] holds rows 4i..4i+3. With the dotprod extension dot4 is one sdot per quarter; without it,
// widening multiplies and pairwise adds. Codes (0..2) are valid int8, so both operands are signed.
inline constexpr int kMaxRowsPerTile = 4;

struct Chunk {
  uint8x16_t v[4];
};
struct Acc {
  int32x4_t v[4];
};

static inline Chunk load_chunk(const uint8_t* p) {
  return {{vld1q_u8(p), vld1q_u8(p + 16), vld1q_u8(p + 32), vld1q_u8(p + 48)}};
}
template <int S>
static inline Chunk code2(Chunk raw) {
  Chunk out;
  for (int i = 0; i < 4; ++i) {
    if constexpr (S == 0) {
      out.v[i] = vandq_u8(raw.v[i], vdupq_n_u8(3));
    } else {
      out.v[i] = vandq_u8(vshrq_n_u8(raw.v[i], 2 * S), vdupq_n_u8(3));
    }
  }
  return out;
}
static inline Chunk trit(Chunk q) {
  Chunk out;
  for (int i = 0; i < 4; ++i) {
    const uint8x16_t ge1 = vcgeq_u8(q.v[i], vdupq_n_u8(86));
    const uint8x16_t ge2 = vcgeq_u8(q.v[i], vdupq_n_u8(171));
    out.v[i] = vsubq_u8(vsubq_u8(vdupq_n_u8(0), ge1), ge2);
  }
  return out;
}
static inline Chunk times3(Chunk q) {
  Chunk out;
  for (int i = 0; i < 4; ++i) out.v[i] = vaddq_u8(q.v[i], vaddq_u8(q.v[i], q.v[i]));
  return out;
}
static inline Chunk chunk_add(Chunk a, Chunk b) {
  Chunk out;
  for (int i = 0; i < 4; ++i) out.v[i] = vaddq_u8(a.v[i], b.v[i]);
  return out;
}
static inline void store_chunk(uint8_t* p, Chunk c) {
  for (int i = 0; i < 4; ++i) vst1q_u8(p + 16 * i, c.v[i]);
}
static inline Acc acc_zero() {
  return {{vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)}};
}
static inline Acc acc_add(Acc a, Acc b) {
  Acc out;
  for (int i = 0; i < 4; ++i) out.v[i] = vaddq_s32(a.v[i], b.v[i]);
  return out;
}
// Signed by signed bytes (sdot, or widening multiplies): ternary codes (0..2) are valid int8, and
// so are the int8 head's weights (a product at most 128 x 127, a pair sum 32512, within int16).
struct I8Act {
  int8x16_t v;
};
static inline I8Act i8_act(const int8_t* q4) {
  return {vreinterpretq_s8_s32(vdupq_n_s32(load_i32(q4)))};
}
static inline Acc i8_dot4(Acc acc, Chunk c, I8Act a) {
  for (int i = 0; i < 4; ++i) {
    const int8x16_t ci = vreinterpretq_s8_u8(c.v[i]);
#if defined(__ARM_FEATURE_DOTPROD)
    acc.v[i] = vdotq_s32(acc.v[i], ci, a.v);
#else
    // addp leaves the pairs of rows 4i..4i+3 adjacent, and sadalp adds each adjacent pair into
    // that row's int32 lane.
    const int16x8_t pairs =
        vpaddq_s16(vmull_s8(vget_low_s8(ci), vget_low_s8(a.v)), vmull_high_s8(ci, a.v));
    acc.v[i] = vpadalq_s16(acc.v[i], pairs);
#endif
  }
  return acc;
}
// No field2_in_place: sdot multiplies signed bytes, so a field above 127 would change sign.
static inline Acc dot4(Acc acc, Chunk c, const int8_t* q4) {
  return i8_dot4(acc, c, i8_act(q4));
}
static inline void store_rows(Acc acc, int32_t act_sum, float act_scale, const float* row_scale,
                              float* y, int n_valid) {
  float tmp[16];
  float* out = n_valid == 16 ? y : tmp;
  for (int i = 0; i < 4; ++i) {
    float32x4_t v = vcvtq_f32_s32(vsubq_s32(acc.v[i], vdupq_n_s32(act_sum)));
    v = vmulq_f32(vdivq_f32(v, vdupq_n_f32(act_scale)), vld1q_f32(row_scale + 4 * i));
    vst1q_f32(out + 4 * i, v);
  }
  if (out == tmp) {
    for (int r = 0; r < n_valid; ++r) y[r] = tmp[r];
  }
}

// Int8 matrices: i8_act and i8_dot4 above (the ternary dot4 is the same operation).
using I8Acc = Acc;
static inline I8Acc i8_zero() {
  return acc_zero();
}
static inline I8Acc i8_add(I8Acc a, I8Acc b) {
  return acc_add(a, b);
}
static inline void i8_store_rows(I8Acc acc, const int32_t*, float act_scale, const float* row_scale,
                                 float* y, int n_valid) {
  store_rows(acc, 0, act_scale, row_scale, y, n_valid);
}

inline constexpr int kFloatStep = 4;
struct FMax {
  float32x4_t v;
};
struct ISum {
  int32x4_t v;
};
static inline FMax fmax_zero() {
  return {vdupq_n_f32(0.0f)};
}
static inline FMax absmax_step(FMax m, const float* x) {
  return {vmaxnmq_f32(m.v, vabsq_f32(vld1q_f32(x)))};
}
static inline float reduce_max(FMax m) {
  return vmaxvq_f32(m.v);
}
static inline ISum isum_zero() {
  return {vdupq_n_s32(0)};
}
template <int Lo = -128>
static inline ISum quant_step(ISum acc, const float* x, float s, int8_t* q) {
  const float32x4_t p = vmulq_n_f32(vld1q_f32(x), s);
  int32x4_t i = vcvtnq_s32_f32(p);  // round to nearest, ties to even, whatever FPCR says
  i = vminq_s32(vmaxq_s32(i, vdupq_n_s32(Lo)), vdupq_n_s32(127));
  // fcvtns turns NaN into 0; the reference (and x86's INT_MIN) give Lo. Test the product, not x:
  // a row holding +-inf has s = 127 / inf = 0, so inf * s is NaN although x is not.
  const uint32x4_t nan = vmvnq_u32(vceqq_f32(p, p));
  i = vbslq_s32(nan, vdupq_n_s32(Lo), i);
  const int16x4_t h = vmovn_s32(i);
  const int8x8_t b = vmovn_s16(vcombine_s16(h, h));
  vst1_lane_s32(reinterpret_cast<int32_t*>(q), vreinterpret_s32_s8(b), 0);
  return {vaddq_s32(acc.v, i)};
}
static inline int32_t reduce_sum(ISum s) {
  return vaddvq_s32(s.v);
}
// Float dot products (LM head): FVec holds kFloatStep floats.
struct FVec {
  float32x4_t v;
};
static inline FVec fvec_zero() {
  return {vdupq_n_f32(0.0f)};
}
static inline FVec load_f32(const float* p) {
  return {vld1q_f32(p)};
}
static inline FVec load_f16(const uint16_t* p) {
  return {vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)))};
}
static inline void store_f32(float* p, FVec v) {
  vst1q_f32(p, v.v);
}
static inline FVec fbroadcast(float a) {
  return {vdupq_n_f32(a)};
}
static inline FVec fmadd(FVec a, FVec b, FVec acc) {
  return {vfmaq_f32(acc.v, a.v, b.v)};
}
static inline FVec fadd(FVec a, FVec b) {
  return {vaddq_f32(a.v, b.v)};
}
static inline float reduce_add(FVec a) {
  float t[4];
  vst1q_f32(t, a.v);
  return ((t[0] + t[1]) + t[2]) + t[3];
}
#endif

}  // namespace bitnet::kernels::simd
