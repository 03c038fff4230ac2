// Per-ISA primitives over ggml quantization blocks, for the output-matrix (LM head) dots of
// kernel-types.h: how one ISA's registers hold a Q6_K block or a step of Q8_0 blocks and multiply
// them with int8 activation codes. kernels-simd.cpp writes the row loops, the float combination
// and the prefetching once on top of these. Built on simd-chunk.h (ISA selection, FVec); internal
// linkage throughout, like it.
//
//   IVec                       int32 lanes, as many as FVec has floats
//   fmadd_i32(v, f, acc)       acc + float(v) * f, lane-wise
//   f16_scalar(p)              the little-endian fp16 at p (any alignment) as a float
//   q6_k_block<MB>(blk, a, bsum, out)
//                              out[r] (r < MB): int32 lanes whose sum is the exact integer dot
//                              sum_e sc_e (q_e - 32) a[r][e] of the Q6_K block at blk with the 256
//                              codes at a[r] (and their 16 sums at bsum[r]: x86 multiplies the
//                              unsigned codes and subtracts 32 sc bsum; NEON centres the codes)
//   kQ80Step                   Q8_0 blocks per step (AVX-512: 2, one per 256-bit half; else 1)
//   Q80W q80_load(blk)         the weights of kQ80Step blocks from blk (34 bytes apart)
//   q80_load_partial(blk, c)   the first c < kQ80Step blocks; the others and their activation
//                              codes are never read and count as zero
//   q80_dot(w, a)              int32 lanes; the lanes [j L / kQ80Step, (j + 1) L / kQ80Step) sum to
//                              the integer dot of block j of the step with the codes a[32 j ...]
//   Q80Scales                  the products d_w * d_a of eight consecutive blocks, in registers
//   q80_scales8<MB>(blk, da, s)  s[r] from the blocks at blk + 34 j and da[r][j], j < 8
//   q80_scales_tail(blk, da, c)  the same for c < 8 blocks, zero past them
//   q80_step_scale(s, j)       FVec: the lanes of block i of step j hold scale j * kQ80Step + i
#pragma once

#include "kernels/kernel-types.h"
#include "kernels/simd-chunk.h"

namespace bitnet::kernels::simd {

static inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

#if BITNET_SIMD_AVX512 || BITNET_SIMD_AVX2
static inline float f16_scalar(const uint8_t* p) {
  return _cvtsh_ss(load_u16(p));
}
// The fp16 d of eight Q8_0 blocks. Eight scalar loads and inserts: a vpgatherdd of the eight
// dwords measured slower (on this Zen 5, Q8_0 decode at 37 instead of 60 GB/s in cache).
static inline __m256 q80_d8(const uint8_t* blk) {
  __m128i h = _mm_cvtsi32_si128(load_u16(blk));
  h = _mm_insert_epi16(h, load_u16(blk + 1 * kQ80Bytes), 1);
  h = _mm_insert_epi16(h, load_u16(blk + 2 * kQ80Bytes), 2);
  h = _mm_insert_epi16(h, load_u16(blk + 3 * kQ80Bytes), 3);
  h = _mm_insert_epi16(h, load_u16(blk + 4 * kQ80Bytes), 4);
  h = _mm_insert_epi16(h, load_u16(blk + 5 * kQ80Bytes), 5);
  h = _mm_insert_epi16(h, load_u16(blk + 6 * kQ80Bytes), 6);
  h = _mm_insert_epi16(h, load_u16(blk + 7 * kQ80Bytes), 7);
  return _mm256_cvtph_ps(h);
}
struct Q80Scales {
  __m256 v;
};
template <int MB>
static inline void q80_scales8(const uint8_t* blk, const float* const* da, Q80Scales* s) {
  const __m256 dw = q80_d8(blk);
  for (int r = 0; r < MB; ++r) s[r].v = _mm256_mul_ps(dw, _mm256_loadu_ps(da[r]));
}
#endif

#if BITNET_SIMD_AVX512
// ---------------------------------------------------------------------------------- AVX-512 VNNI
struct IVec {
  __m512i v;
};
static inline FVec fmadd_i32(IVec a, FVec f, FVec acc) {
  return {_mm512_fmadd_ps(_mm512_cvtepi32_ps(a.v), f.v, acc.v)};
}

// Q6_K: register 2h holds values 128h .. 128h + 63, register 2h + 1 the next 64. The low nibbles
// of ql[64h .. 64h + 64) are values 128h + 0..63 in order, the high nibbles values 128h + 64..127;
// their high bits sit in qh[32h .. 32h + 32), bits 2g..2g+1 for the run of 32 g = 0..3. With qh
// broadcast to both 256-bit halves, one variable shift per 16-bit lane moves the right pair of
// bits to 4..5 for each half (left by 4 / 2 for the low nibbles, right by 0 / 2 for the high).
template <int MB>
static inline void q6_k_block(const uint8_t* blk, const int8_t* const* a,
                              const int16_t* const* bsum, IVec* out) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  __m512i v[4];
  for (int h = 0; h < 2; ++h) {
    const __m512i L = _mm512_loadu_si512(blk + 64 * h);
    const __m512i H = _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)));
    // 0xEA: (A & B) | C
    v[2 * h] =
        _mm512_ternarylogic_epi32(L, m4, _mm512_and_si512(_mm512_sllv_epi16(H, shl), m30), 0xEA);
    v[2 * h + 1] = _mm512_ternarylogic_epi32(
        _mm512_srli_epi16(L, 4), m4, _mm512_and_si512(_mm512_srlv_epi16(H, shr), m30), 0xEA);
  }
  // vpmaddubsw pairs the values, so 16-bit lane j of register c belongs to sub-block 4c + j / 8.
  const __m256i sc16 =
      _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
  const __m512i sc = _mm512_zextsi256_si512(sc16);
  const __m512i j8 = _mm512_srli_epi16(
      _mm512_set_epi32(0x001f001e, 0x001d001c, 0x001b001a, 0x00190018, 0x00170016, 0x00150014,
                       0x00130012, 0x00110010, 0x000f000e, 0x000d000c, 0x000b000a, 0x00090008,
                       0x00070006, 0x00050004, 0x00030002, 0x00010000),
      3);
  __m512i S[4];
  for (int c = 0; c < 4; ++c) {
    S[c] = _mm512_permutexvar_epi16(
        _mm512_add_epi16(j8, _mm512_set1_epi16(static_cast<short>(4 * c))), sc);
  }
  // -32 sc fits int16 for every int8 sc; the 16 sums (|bsum| <= 2032) pair up in lanes 0..7.
  const __m512i corr = _mm512_zextsi256_si512(_mm256_mullo_epi16(sc16, _mm256_set1_epi16(-32)));
  for (int r = 0; r < MB; ++r) {
    const __m512i bs =
        _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsum[r])));
    __m512i acc = _mm512_dpwssd_epi32(_mm512_setzero_si512(), bs, corr);
    for (int c = 0; c < 4; ++c) {
      // Codes 0..63 times int8: pair sums stay within +-16128, so vpmaddubsw never saturates.
      const __m512i p = _mm512_maddubs_epi16(v[c], _mm512_loadu_si512(a[r] + 64 * c));
      acc = _mm512_dpwssd_epi32(acc, p, S[c]);
    }
    out[r].v = acc;
  }
}

// Q8_0, two blocks per register. Signed x signed with vpdpbusd: |w| times a with w's sign moved
// onto a (a >= -127, so -a exists). `live` masks the activation load of a partial step.
inline constexpr int kQ80Step = 2;
struct Q80W {
  __m512i absw;
  __mmask64 neg;
  __mmask64 live;
};
static inline Q80W q80_make(__m512i w, __mmask64 live) {
  return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w), live};
}
static inline Q80W q80_load(const uint8_t* blk) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQ80Bytes + 2));
  return q80_make(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), ~__mmask64{0});
}
static inline Q80W q80_load_partial(const uint8_t* blk, int /*count: always 1*/) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  return q80_make(_mm512_zextsi256_si512(lo), __mmask64{0xffffffffu});
}
static inline IVec q80_dot(const Q80W& w, const int8_t* a) {
  const __m512i x = _mm512_maskz_loadu_epi8(w.live, a);
  const __m512i sx = _mm512_mask_sub_epi8(x, w.neg, _mm512_setzero_si512(), x);
  return {_mm512_dpbusd_epi32(_mm512_setzero_si512(), w.absw, sx)};
}
static inline FVec q80_step_scale(const Q80Scales& s, int j) {
  const __m512i idx =
      _mm512_add_epi32(_mm512_set1_epi32(2 * j),
                       _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi32(1), 1));
  return {_mm512_permutexvar_ps(idx, _mm512_castps256_ps512(s.v))};
}

#elif BITNET_SIMD_AVX2
// ------------------------------------------------------------------------------------------ AVX2
// Without VNNI: vpmaddubsw + vpmaddwd, one run of 32 values (one (h, g) of the Q6_K layout) per
// register.
struct IVec {
  __m256i v;
};
static inline FVec fmadd_i32(IVec a, FVec f, FVec acc) {
  return {_mm256_fmadd_ps(_mm256_cvtepi32_ps(a.v), f.v, acc.v)};
}

template <int MB>
static inline void q6_k_block(const uint8_t* blk, const int8_t* const* a,
                              const int16_t* const* bsum, IVec* out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
  const __m256i corr = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(sc8), _mm256_set1_epi16(-32));
  __m256i acc[MB];
  for (int r = 0; r < MB; ++r) {
    acc[r] = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsum[r])), corr);
  }
  const __m128i half = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  for (int h = 0; h < 2; ++h) {
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h));
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32));
    const __m256i H = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
    const __m256i q0h = _mm256_srli_epi16(q0, 4), q1h = _mm256_srli_epi16(q1, 4);
    const __m256i v[4] = {
        _mm256_or_si256(_mm256_and_si256(q0, m4), _mm256_and_si256(_mm256_slli_epi16(H, 4), m30)),
        _mm256_or_si256(_mm256_and_si256(q1, m4), _mm256_and_si256(_mm256_slli_epi16(H, 2), m30)),
        _mm256_or_si256(_mm256_and_si256(q0h, m4), _mm256_and_si256(H, m30)),
        _mm256_or_si256(_mm256_and_si256(q1h, m4), _mm256_and_si256(_mm256_srli_epi16(H, 2), m30))};
    for (int g = 0; g < 4; ++g) {
      // Run 4h + g holds sub-blocks 2(4h + g) and 2(4h + g) + 1: 16-bit lanes 0..7 and 8..15.
      const int run = 4 * h + g;
      const __m256i S = _mm256_cvtepi8_epi16(
          _mm_shuffle_epi8(sc8, _mm_add_epi8(half, _mm_set1_epi8(static_cast<char>(2 * run)))));
      for (int r = 0; r < MB; ++r) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[r] + 32 * run));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(v[g], x), S));
      }
    }
  }
  for (int r = 0; r < MB; ++r) out[r].v = acc[r];
}

// Q8_0, one block per register: |w| times a with w's sign (vpsignb; a >= -127).
inline constexpr int kQ80Step = 1;
struct Q80W {
  __m256i absw, w;
};
static inline Q80W q80_load(const uint8_t* blk) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  return {_mm256_abs_epi8(w), w};
}
static inline Q80W q80_load_partial(const uint8_t* blk, int /*never called: kQ80Step is 1*/) {
  return q80_load(blk);
}
static inline IVec q80_dot(const Q80W& w, const int8_t* a) {
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  const __m256i p = _mm256_maddubs_epi16(w.absw, _mm256_sign_epi8(x, w.w));  // |pair| <= 32512
  return {_mm256_madd_epi16(p, _mm256_set1_epi16(1))};
}
static inline FVec q80_step_scale(const Q80Scales& s, int j) {
  return {_mm256_permutevar8x32_ps(s.v, _mm256_set1_epi32(j))};
}

#elif BITNET_SIMD_NEON
// ------------------------------------------------------------------------------------------ NEON
// Signed multiplies: Q6_K codes are centred (q - 32 in -32..31) and bsum is not needed.
struct IVec {
  int32x4_t v;
};
static inline FVec fmadd_i32(IVec a, FVec f, FVec acc) {
  return {vfmaq_f32(acc.v, vcvtq_f32_s32(a.v), f.v)};
}
static inline float f16_scalar(const uint8_t* p) {
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(load_u16(p)))), 0);
}

// Sum of w * x over 16 int8 pairs in int32x4 lanes. Without dotprod: two products per int16 lane
// (|w| <= 128, |x| <= 127: at most 32512), then pairwise widening.
static inline int32x4_t dot16(int8x16_t w, int8x16_t x) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(vdupq_n_s32(0), w, x);
#else
  const int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x);
  return vpaddlq_s16(p);
#endif
}

template <int MB>
static inline void q6_k_block(const uint8_t* blk, const int8_t* const* a,
                              const int16_t* const* /*bsum: codes are centred*/, IVec* out) {
  const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
  int32x4_t acc[MB];
  for (int r = 0; r < MB; ++r) acc[r] = vdupq_n_s32(0);
  const uint8x16_t m3 = vdupq_n_u8(3);
  const int8x16_t k32 = vdupq_n_s8(32);
  for (int h = 0; h < 2; ++h) {
    for (int l0 = 0; l0 < 32; l0 += 16) {
      const uint8x16_t q0 = vld1q_u8(blk + 64 * h + l0), q1 = vld1q_u8(blk + 64 * h + 32 + l0);
      const uint8x16_t H = vld1q_u8(blk + 128 + 32 * h + l0);
      // vsli keeps the low nibble of its first operand and puts the second above it.
      const uint8x16_t v[4] = {vsliq_n_u8(q0, vandq_u8(H, m3), 4),
                               vsliq_n_u8(q1, vandq_u8(vshrq_n_u8(H, 2), m3), 4),
                               vsliq_n_u8(vshrq_n_u8(q0, 4), vandq_u8(vshrq_n_u8(H, 4), m3), 4),
                               vsliq_n_u8(vshrq_n_u8(q1, 4), vshrq_n_u8(H, 6), 4)};
      for (int g = 0; g < 4; ++g) {
        const int e0 = 128 * h + 32 * g + l0;
        const int8x16_t w = vsubq_s8(vreinterpretq_s8_u8(v[g]), k32);
        for (int r = 0; r < MB; ++r) {
          acc[r] = vmlaq_n_s32(acc[r], dot16(w, vld1q_s8(a[r] + e0)), sc[e0 / 16]);
        }
      }
    }
  }
  for (int r = 0; r < MB; ++r) out[r].v = acc[r];
}

inline constexpr int kQ80Step = 1;
struct Q80W {
  int8x16_t w0, w1;
};
static inline Q80W q80_load(const uint8_t* blk) {
  return {vld1q_s8(reinterpret_cast<const int8_t*>(blk + 2)),
          vld1q_s8(reinterpret_cast<const int8_t*>(blk + 18))};
}
static inline Q80W q80_load_partial(const uint8_t* blk, int /*never called: kQ80Step is 1*/) {
  return q80_load(blk);
}
static inline IVec q80_dot(const Q80W& w, const int8_t* a) {
  return {vaddq_s32(dot16(w.w0, vld1q_s8(a)), dot16(w.w1, vld1q_s8(a + 16)))};
}
struct Q80Scales {
  float f[8];
};
static inline FVec q80_step_scale(const Q80Scales& s, int j) {
  return {vld1q_dup_f32(s.f + j)};
}
template <int MB>
static inline void q80_scales8(const uint8_t* blk, const float* const* da, Q80Scales* s) {
  for (int j = 0; j < 8; ++j) {
    const float dw = f16_scalar(blk + j * kQ80Bytes);
    for (int r = 0; r < MB; ++r) s[r].f[j] = dw * da[r][j];
  }
}
#endif

static inline Q80Scales q80_scales_tail(const uint8_t* blk, const float* da, int count) {
  alignas(32) float f[8];
  for (int j = 0; j < 8; ++j) f[j] = j < count ? f16_scalar(blk + j * kQ80Bytes) * da[j] : 0.0f;
#if BITNET_SIMD_NEON
  Q80Scales s;
  for (int j = 0; j < 8; ++j) s.f[j] = f[j];
  return s;
#else
  return {_mm256_load_ps(f)};
#endif
}

}  // namespace bitnet::kernels::simd
