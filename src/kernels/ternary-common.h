// Scalar building blocks shared by the reference kernels, the packer and the SIMD bodies. Every
// function has internal linkage (static): each per-ISA translation unit gets its own copy, so a
// copy compiled with AVX-512 flags can never be picked by the linker for the scalar path.
#pragma once

#include <cstdint>

#include "kernels/kernel-types.h"

namespace bitnet::kernels::common {

static inline float act_scale_from_absmax(float absmax) {
  return 127.0f / (absmax > 1e-5f ? absmax : 1e-5f);
}

// Round half to even, as torch.round and bitnet.cpp (the current FP rounding mode, which is
// round-to-nearest-even unless a program changes it; the SIMD paths use the same mode).
static inline int8_t quantize_one(float x, float s) {
  float r = __builtin_nearbyintf(x * s);
  if (!(r > -128.0f)) r = -128.0f;  // also maps NaN to -128, as the SIMD conversions do
  if (r > 127.0f) r = 127.0f;
  return static_cast<int8_t>(r);
}

static inline float epilogue(int32_t acc, int32_t act_sum, float act_scale, float row_scale) {
  return static_cast<float>(acc - act_sum) / act_scale * row_scale;
}

// T1 geometry (see kernel-types.h).
static inline int64_t t1_chunks5(int64_t k) {
  return 4 * (k / 80);
}
static inline int64_t t1_chunks4(int64_t k) {
  return (k % 80) / 16;
}

static inline size_t group_bytes(TernaryLayout layout, int64_t k) {
  const int64_t chunks = layout == TernaryLayout::T2 ? k / 16 : t1_chunks5(k) + t1_chunks4(k);
  return static_cast<size_t>(chunks) * kChunkBytes;
}

// Five base-3 digits c0..c4 (each 0..2, c0 most significant) -> one byte; decoded by t1_digit.
static inline uint8_t t1_encode(const uint8_t c[5]) {
  const unsigned v = c[0] * 81u + c[1] * 27u + c[2] * 9u + c[3] * 3u + c[4];
  return static_cast<uint8_t>((v * 256u + 242u) / 243u);
}
static inline unsigned t1_digit(uint8_t byte, int n) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const uint8_t shifted = static_cast<uint8_t>(byte * kPow3[n]);
  return (shifted * 3u) >> 8;
}

}  // namespace bitnet::kernels::common
