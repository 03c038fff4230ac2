// Row codecs for the float types, Q8_0 and Q6_K, and the dispatch of dequantize_row /
// quantize_row. The ternary encodings live in tensor-codec-ternary.cpp.
#include "formats/tensor-codec.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "formats/ggml-types.h"
#include "formats/tensor-codec-internal.h"

namespace bitnet::formats {

using detail::load_f32;
using detail::load_fp16;
using detail::load_u16;
using detail::store_f32;
using detail::store_u16;

namespace {

constexpr int64_t kQ8Block = 32;
constexpr size_t kQ8Bytes = 34;  // fp16 d, int8 q[32]
constexpr int64_t kQ6Block = 256;
constexpr size_t kQ6Bytes = 210;  // ql[128], qh[64], int8 scales[16], fp16 d

// Q6_K element e of a block (0..255) is a 6-bit field q, value d * scales[e / 16] * (q - 32).
// With e = 128h + 32g + l (h in 0..1, g in 0..3, l in 0..31):
//   low 4 bits:  ql[64h + 32(g & 1) + l], the low nibble for g < 2, the high nibble for g >= 2
//   high 2 bits: qh[32h + l], bits 2g..2g+1
constexpr size_t kQ6Qh = 128;
constexpr size_t kQ6Scales = 192;
constexpr size_t kQ6D = 208;

void check_row_length(uint32_t type_id, int64_t n, const char* what) {
  const int64_t block = ggml_type_info(type_id)->block_elems;
  if (n < 0 || n % block != 0) {
    throw std::invalid_argument(std::string(what) + ": " + ggml_type_name(type_id) +
                                " rows need a length that is a non-negative multiple of " +
                                std::to_string(block) + ", found " + std::to_string(n));
  }
}

void check_finite(const float* x, int64_t n, const char* type) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      throw std::invalid_argument(std::string("quantize_row: ") + type +
                                  " cannot encode the non-finite value " + std::to_string(x[i]) +
                                  " at index " + std::to_string(i));
    }
  }
}

// fp16 bits of a positive block scale, rounded up (never below `d`) so that scaled codes cannot
// exceed their range; throws when d overflows fp16.
uint16_t fp16_scale_round_up(float d, const char* type) {
  uint16_t h = fp32_to_fp16(d);
  if (fp16_to_fp32(h) < d) ++h;  // next larger positive half (0 -> smallest subnormal)
  if (!std::isfinite(fp16_to_fp32(h))) {
    throw std::invalid_argument(std::string("quantize_row: ") + type + " block scale " +
                                std::to_string(d) + " overflows fp16");
  }
  return h;
}

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const uint8_t* blk = src + static_cast<size_t>(b) * kQ8Bytes;
    const float d = load_fp16(blk);
    float* y = dst + b * kQ8Block;
    for (int64_t j = 0; j < kQ8Block; ++j) {
      y[j] = static_cast<float>(static_cast<int8_t>(blk[2 + j])) * d;
    }
  }
}

// ggml's reference Q8_0 quantizer: d = amax / 127 (stored as fp16), q = round(x / d) with the
// unrounded d, half away from zero. Files written with it match llama.cpp's byte for byte.
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n) {
  check_finite(src, n, "Q8_0");
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* x = src + b * kQ8Block;
    uint8_t* blk = dst + static_cast<size_t>(b) * kQ8Bytes;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = fp32_to_fp16(d);
    if (!std::isfinite(fp16_to_fp32(dh))) {
      throw std::invalid_argument("quantize_row: Q8_0 block scale " + std::to_string(d) +
                                  " overflows fp16");
    }
    store_u16(blk, dh);
    for (int64_t j = 0; j < kQ8Block; ++j) {
      const float q = std::clamp(std::round(x[j] * id), -127.0f, 127.0f);
      blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

void dequantize_q6_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQ6Block; ++b) {
    const uint8_t* blk = src + static_cast<size_t>(b) * kQ6Bytes;
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + kQ6Qh;
    const uint8_t* scales = blk + kQ6Scales;
    const float d = load_fp16(blk + kQ6D);
    float* y = dst + b * kQ6Block;
    for (int h = 0; h < 2; ++h) {
      for (int g = 0; g < 4; ++g) {
        for (int l = 0; l < 32; ++l) {
          const uint8_t lo_byte = ql[64 * h + 32 * (g & 1) + l];
          const int lo = g < 2 ? lo_byte & 0xF : lo_byte >> 4;
          const int hi = (qh[32 * h + l] >> (2 * g)) & 3;
          const int e = 128 * h + 32 * g + l;
          const float sc = static_cast<float>(static_cast<int8_t>(scales[e / 16]));
          y[e] = d * sc * static_cast<float>((lo | hi << 4) - 32);
        }
      }
    }
  }
}

// One scale per 16 elements, amax / 31, so codes stay in -31..31 (the format allows -32..31; the
// symmetric range keeps the choice simple). The 16 scales share the fp16 d = max scale / 127
// (rounded up), and each is rounded up onto d's integer grid, so no element clips:
// |error| <= (amax_sub / 31 + d) / 2 <= about max|x| / 62 of the block.
void quantize_q6_k(const float* src, uint8_t* dst, int64_t n) {
  check_finite(src, n, "Q6_K");
  for (int64_t b = 0; b < n / kQ6Block; ++b) {
    const float* x = src + b * kQ6Block;
    uint8_t* blk = dst + static_cast<size_t>(b) * kQ6Bytes;
    float sub_scale[16];
    float max_scale = 0.0f;
    for (int s = 0; s < 16; ++s) {
      float amax = 0.0f;
      for (int j = 0; j < 16; ++j) amax = std::max(amax, std::fabs(x[16 * s + j]));
      sub_scale[s] = amax / 31.0f;
      max_scale = std::max(max_scale, sub_scale[s]);
    }
    std::memset(blk, 0, kQ6Bytes);
    const uint16_t dh = max_scale > 0.0f ? fp16_scale_round_up(max_scale / 127.0f, "Q6_K") : 0;
    const float d = fp16_to_fp32(dh);
    store_u16(blk + kQ6D, dh);
    int q[256];
    for (int s = 0; s < 16; ++s) {
      // d >= max_scale / 127, so the quotient is at most 127 up to rounding.
      const float sc = d > 0.0f ? std::min(127.0f, std::ceil(sub_scale[s] / d)) : 0.0f;
      blk[kQ6Scales + static_cast<size_t>(s)] = static_cast<uint8_t>(sc);
      const float eff = d * sc;
      for (int j = 0; j < 16; ++j) {
        const float v = eff > 0.0f ? std::round(x[16 * s + j] / eff) : 0.0f;
        q[16 * s + j] = static_cast<int>(std::clamp(v, -31.0f, 31.0f)) + 32;
      }
    }
    for (int h = 0; h < 2; ++h) {
      for (int g = 0; g < 4; ++g) {
        for (int l = 0; l < 32; ++l) {
          const int v = q[128 * h + 32 * g + l];
          uint8_t& lo_byte = blk[64 * h + 32 * (g & 1) + l];
          lo_byte = static_cast<uint8_t>(lo_byte | (v & 0xF) << (g < 2 ? 0 : 4));
          uint8_t& hi_byte = blk[kQ6Qh + static_cast<size_t>(32 * h + l)];
          hi_byte = static_cast<uint8_t>(hi_byte | (v >> 4) << (2 * g));
        }
      }
    }
  }
}

template <size_t kBlockBytes, void (*kCodes)(const uint8_t*, int8_t*),
          float (*kBlockD)(const uint8_t*)>
void dequantize_tq(const uint8_t* src, float* dst, int64_t n) {
  int8_t t[detail::kTqBlock];
  for (int64_t b = 0; b < n / detail::kTqBlock; ++b) {
    const uint8_t* blk = src + static_cast<size_t>(b) * kBlockBytes;
    kCodes(blk, t);
    const float d = kBlockD(blk);
    float* y = dst + b * detail::kTqBlock;
    for (int64_t j = 0; j < detail::kTqBlock; ++j) y[j] = static_cast<float>(t[j]) * d;
  }
}

void dequantize_f32(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_f32(src + 4 * i);
}
void dequantize_f16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_fp16(src + 2 * i);
}
void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(src + 2 * i));
}
void quantize_f32(const float* src, uint8_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) store_f32(dst + 4 * i, src[i]);
}
void quantize_f16(const float* src, uint8_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) store_u16(dst + 2 * i, fp32_to_fp16(src[i]));
}
void quantize_bf16(const float* src, uint8_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) store_u16(dst + 2 * i, fp32_to_bf16(src[i]));
}

struct RowCodec {
  GgmlType type;
  void (*dequantize)(const uint8_t* src, float* dst, int64_t n);
  void (*quantize)(const float* src, uint8_t* dst, int64_t n);  // null: no float encoder
};

constexpr RowCodec kRowCodecs[] = {
    {GgmlType::F32, dequantize_f32, quantize_f32},
    {GgmlType::F16, dequantize_f16, quantize_f16},
    {GgmlType::BF16, dequantize_bf16, quantize_bf16},
    {GgmlType::Q8_0, dequantize_q8_0, quantize_q8_0},
    {GgmlType::Q6_K, dequantize_q6_k, quantize_q6_k},
    {GgmlType::TQ2_0,
     dequantize_tq<detail::kTq2Bytes, detail::tq2_0_block_codes, detail::tq2_0_block_d>, nullptr},
    {GgmlType::TQ1_0,
     dequantize_tq<detail::kTq1Bytes, detail::tq1_0_block_codes, detail::tq1_0_block_d>, nullptr},
};

const RowCodec* find_row_codec(uint32_t type_id) {
  for (const RowCodec& c : kRowCodecs) {
    if (static_cast<uint32_t>(c.type) == type_id) return &c;
  }
  return nullptr;
}

}  // namespace

void dequantize_row(uint32_t type_id, const uint8_t* src, float* dst, int64_t n) {
  const RowCodec* codec = find_row_codec(type_id);
  if (!codec) {
    throw std::invalid_argument(
        "dequantize_row: tensor type " + ggml_type_name(type_id) + " is not supported" +
        (type_id == static_cast<uint32_t>(GgmlType::I2_S)
             ? " (I2_S keeps a per-tensor scale after the data: use decode_ternary)"
             : ""));
  }
  check_row_length(type_id, n, "dequantize_row");
  codec->dequantize(src, dst, n);
}

void quantize_row(uint32_t type_id, const float* src, uint8_t* dst, int64_t n) {
  const RowCodec* codec = find_row_codec(type_id);
  if (!codec || !codec->quantize) {
    const bool ternary = type_id == static_cast<uint32_t>(GgmlType::TQ2_0) ||
                         type_id == static_cast<uint32_t>(GgmlType::TQ1_0) ||
                         type_id == static_cast<uint32_t>(GgmlType::I2_S);
    throw std::invalid_argument(
        "quantize_row: tensor type " + ggml_type_name(type_id) + " is not supported" +
        (ternary ? " (ternary types take codes: use encode_ternary_row or encode_ternary)" : ""));
  }
  check_row_length(type_id, n, "quantize_row");
  codec->quantize(src, dst, n);
}

}  // namespace bitnet::formats
