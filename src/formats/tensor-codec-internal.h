// Pieces shared by tensor-codec.cpp (dispatch, float and k-quant types) and
// tensor-codec-ternary.cpp (TQ2_0, TQ1_0, I2_S). Not part of the formats API.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"

namespace bitnet::formats::detail {

// GGUF data is little-endian; loads below copy bytes straight into host integers.
static_assert(std::endian::native == std::endian::little,
              "tensor codecs assume a little-endian host");

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, sizeof v);
}
inline void store_f32(uint8_t* p, float v) {
  std::memcpy(p, &v, sizeof v);
}

inline float load_fp16(const uint8_t* p) {
  return fp16_to_fp32(load_u16(p));
}

constexpr int64_t kTqBlock = 256;
constexpr size_t kTq2Bytes = 66;  // qs[64], fp16 d
constexpr size_t kTq1Bytes = 54;  // qs[48], qh[4], fp16 d

// Ternary codes t in {-1, 0, +1} of one block of 256 (fields decoded as stored, so TQ2_0 may give
// +2 from a field of 3; TQ1_0 cannot encode anything else) and the block's d.
void tq2_0_block_codes(const uint8_t* block, int8_t* t);
void tq1_0_block_codes(const uint8_t* block, int8_t* t);
inline float tq2_0_block_d(const uint8_t* block) {
  return load_fp16(block + 64);
}
inline float tq1_0_block_d(const uint8_t* block) {
  return load_fp16(block + 52);
}

}  // namespace bitnet::formats::detail
