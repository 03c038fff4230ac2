// Tensor encodings: hand-built blocks checked value by value, encoder/decoder round trips, the
// errors the loader must raise, and the reference GGUF fixtures (same weights in five encodings).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "fixture-gguf.h"
#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"

namespace bitnet::formats {
namespace {

using test::FixtureTensor;
using test::MiniGguf;

constexpr uint32_t kF32 = static_cast<uint32_t>(GgmlType::F32);
constexpr uint32_t kF16 = static_cast<uint32_t>(GgmlType::F16);
constexpr uint32_t kBF16 = static_cast<uint32_t>(GgmlType::BF16);
constexpr uint32_t kQ8_0 = static_cast<uint32_t>(GgmlType::Q8_0);
constexpr uint32_t kQ6_K = static_cast<uint32_t>(GgmlType::Q6_K);
constexpr uint32_t kTQ1_0 = static_cast<uint32_t>(GgmlType::TQ1_0);
constexpr uint32_t kTQ2_0 = static_cast<uint32_t>(GgmlType::TQ2_0);
constexpr uint32_t kI2_S = static_cast<uint32_t>(GgmlType::I2_S);

size_t row_bytes(uint32_t type, int64_t n) {
  return ggml_tensor_bytes(type, &n, 1);
}
size_t tensor_bytes(uint32_t type, int64_t n_rows, int64_t k) {
  const int64_t dims[2] = {k, n_rows};
  return ggml_tensor_bytes(type, dims, 2);
}

std::vector<float> dequantize(uint32_t type, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(type, bytes.data(), out.data(), n);
  return out;
}

std::vector<uint8_t> quantize(uint32_t type, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> out(row_bytes(type, n));
  quantize_row(type, x.data(), out.data(), n);
  return out;
}

void put_u16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  std::memcpy(&b[at], &v, 2);
}

// Runs fn, which must throw std::invalid_argument whose message contains every one of `parts`.
void expect_invalid(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception thrown";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message lacks '" << p << "': " << msg;
    }
  }
}

std::vector<int8_t> random_codes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-1, 1);
  std::vector<int8_t> c(n);
  for (auto& v : c) v = static_cast<int8_t>(dist(rng));
  return c;
}

// ---------------------------------------------------------------------------------------------
// Float types

TEST(FloatRows, HandBuiltBytes) {
  const std::vector<uint8_t> f16 = {0x00, 0x3C, 0x00, 0xC0, 0x00, 0x80, 0x01, 0x00};
  EXPECT_EQ(dequantize(kF16, f16, 4), (std::vector<float>{1.0f, -2.0f, -0.0f, 0x1p-24f}));
  const std::vector<uint8_t> bf16 = {0x80, 0x3F, 0x00, 0xC0, 0x49, 0x40};
  EXPECT_EQ(dequantize(kBF16, bf16, 3), (std::vector<float>{1.0f, -2.0f, 3.140625f}));
  EXPECT_EQ(quantize(kF16, {1.0f, -2.0f, -0.0f, 0x1p-24f}), f16);
  EXPECT_EQ(quantize(kBF16, {1.0f, -2.0f, 3.140625f}), bf16);
}

TEST(FloatRows, RoundTrips) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> x(1000);
  for (auto& v : x) v = dist(rng);
  x[0] = std::numeric_limits<float>::infinity();
  x[1] = -0.0f;
  const auto n = static_cast<int64_t>(x.size());
  const std::vector<float> f32 = dequantize(kF32, quantize(kF32, x), n);
  const std::vector<float> f16 = dequantize(kF16, quantize(kF16, x), n);
  const std::vector<float> bf16 = dequantize(kBF16, quantize(kBF16, x), n);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(f32_to_bits(f32[i]), f32_to_bits(x[i])) << i;
    EXPECT_EQ(f32_to_bits(f16[i]), f32_to_bits(fp16_to_fp32(fp32_to_fp16(x[i])))) << i;
    EXPECT_EQ(f32_to_bits(bf16[i]), f32_to_bits(bf16_to_fp32(fp32_to_bf16(x[i])))) << i;
  }
}

TEST(FloatRows, UnalignedSource) {
  // GGUF data offsets are aligned, but the codecs take any byte pointer.
  std::vector<uint8_t> buf(1 + 8);
  const float v[2] = {1.5f, -7.25f};
  std::memcpy(buf.data() + 1, v, 8);
  float out[2];
  dequantize_row(kF32, buf.data() + 1, out, 2);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -7.25f);
}

// ---------------------------------------------------------------------------------------------
// Q8_0: fp16 d, then 32 int8 codes; x = q * d

TEST(Q8_0, HandBuiltBlocks) {
  std::vector<uint8_t> b(2 * 34, 0);
  put_u16(b, 0, 0x3800);  // d = 0.5
  const int8_t q0[5] = {1, -1, 127, -128, 6};
  for (int j = 0; j < 5; ++j) b[2 + static_cast<size_t>(j)] = static_cast<uint8_t>(q0[j]);
  put_u16(b, 34, 0xC000);  // d = -2
  b[36 + 31] = 3;
  const std::vector<float> y = dequantize(kQ8_0, b, 64);
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[1], -0.5f);
  EXPECT_EQ(y[2], 63.5f);
  EXPECT_EQ(y[3], -64.0f);
  EXPECT_EQ(y[4], 3.0f);
  for (int j = 5; j < 63; ++j) EXPECT_EQ(y[static_cast<size_t>(j)], 0.0f) << j;
  EXPECT_EQ(y[63], -6.0f);
}

TEST(Q8_0, QuantizeHandComputed) {
  // amax 127 gives d = 1 exactly; x / d = 2.5 rounds away from zero as in ggml.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = -2.5f;
  x[3] = 0.49f;
  x[4] = -126.6f;
  const std::vector<uint8_t> b = quantize(kQ8_0, x);
  ASSERT_EQ(b.size(), 34u);
  EXPECT_EQ(b[0], 0x00);
  EXPECT_EQ(b[1], 0x3C);
  EXPECT_EQ(static_cast<int8_t>(b[2]), 127);
  EXPECT_EQ(static_cast<int8_t>(b[3]), 3);
  EXPECT_EQ(static_cast<int8_t>(b[4]), -3);
  EXPECT_EQ(static_cast<int8_t>(b[5]), 0);
  EXPECT_EQ(static_cast<int8_t>(b[6]), -127);
}

TEST(Q8_0, RoundTripError) {
  std::mt19937 rng(8);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(32 * 40);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = dist(rng) * std::ldexp(1.0f, static_cast<int>(i / 32) % 20 - 10);
  for (size_t i = 32 * 5; i < 32 * 6; ++i) x[i] = 0.0f;  // an all-zero block
  const std::vector<float> y =
      dequantize(kQ8_0, quantize(kQ8_0, x), static_cast<int64_t>(x.size()));
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    // |x - q d16| <= d / 2 + 127 |d - d16|, with d = amax / 127 and |d - d16| <= d 2^-11.
    const float bound = amax / 254.0f + amax * 0x1p-11f;
    for (size_t j = 0; j < 32; ++j) {
      EXPECT_LE(std::fabs(y[32 * b + j] - x[32 * b + j]), bound) << "block " << b << " elem " << j;
    }
  }
}

TEST(Q8_0, RepresentableInputIsExact) {
  // d = 127 * 2^-3 / 127 = 2^-3 is exact in fp16, so q * d comes back unchanged.
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(static_cast<int>(i * 37 % 255) - 127) * 0.125f;
  x[0] = 127 * 0.125f;
  x[32] = -127 * 0.125f;
  EXPECT_EQ(dequantize(kQ8_0, quantize(kQ8_0, x), 64), x);
}

TEST(Q8_0, RejectsNonFinite) {
  std::vector<float> x(32, 1.0f);
  x[7] = std::nanf("");
  expect_invalid([&] { quantize(kQ8_0, x); }, {"Q8_0", "index 7"});
}

// ---------------------------------------------------------------------------------------------
// Q6_K: ql[128], qh[64], int8 scales[16], fp16 d. Element e = 128h + 32g + l has its low nibble
// in ql[64h + 32(g%2) + l] (low half for g < 2), its top two bits in qh[32h + l] bits 2g..2g+1,
// and the value d * scales[e/16] * (q - 32).

constexpr size_t kQ6Qh = 128, kQ6Sc = 192, kQ6D = 208;

TEST(Q6_K, HandBuiltSparseBlock) {
  // All fields zero gives q - 32 = -32 everywhere; a few bytes then move single elements.
  std::vector<uint8_t> b(210, 0);
  for (size_t s = 0; s < 16; ++s) b[kQ6Sc + s] = 1;
  put_u16(b, kQ6D, 0x3800);                  // d = 0.5
  b[0] = 0x21;                               // element 0 low nibble 1; element 64 low nibble 2
  b[32 + 5] = 0x0F;                          // element 37 low nibble 15 (element 101 keeps 0)
  b[64 + 3] = 0x30;                          // element 128 + 64 + 3 = 195 low nibble 3
  b[kQ6Qh + 0] = 0xE4;                       // top bits: element 0 -> 0, 32 -> 1, 64 -> 2, 96 -> 3
  b[kQ6Qh + 63] = 0x80;                      // element 128 + 96 + 31 = 255 -> top bits 2
  b[kQ6Sc + 12] = static_cast<uint8_t>(-3);  // elements 192..207
  const std::vector<float> y = dequantize(kQ6_K, b, 256);
  std::vector<float> want(256, -16.0f);  // 0.5 * 1 * -32
  want[0] = 0.5f * (1 - 32);
  want[32] = 0.5f * (16 - 32);
  want[37] = 0.5f * (15 - 32);
  want[64] = 0.5f * (32 + 2 - 32);
  want[96] = 0.5f * (48 - 32);
  for (size_t e = 192; e < 208; ++e) want[e] = 0.5f * -3 * -32;
  want[195] = 0.5f * -3 * (3 - 32);
  want[255] = 0.5f * (32 - 32);
  EXPECT_EQ(y, want);
}

TEST(Q6_K, HandBuiltFullBlocks) {
  // Every element gets its own 6-bit value, placed by the layout rule; two blocks, signed scales.
  std::vector<uint8_t> b(2 * 210, 0);
  std::vector<float> want(512);
  std::mt19937 rng(14);
  std::uniform_int_distribution<int> field(0, 63);
  for (size_t blk = 0; blk < 2; ++blk) {
    uint8_t* p = b.data() + 210 * blk;
    const float d = blk == 0 ? 0.25f : -0.125f;
    put_u16(b, 210 * blk + kQ6D, blk == 0 ? 0x3400 : 0xB000);
    for (size_t s = 0; s < 16; ++s)
      p[kQ6Sc + s] = static_cast<uint8_t>(static_cast<int>(s) * 9 - 70);
    for (size_t e = 0; e < 256; ++e) {
      const int q = field(rng);
      const size_t h = e / 128, g = e % 128 / 32, l = e % 32;
      p[64 * h + 32 * (g % 2) + l] |= static_cast<uint8_t>((q & 15) << (g < 2 ? 0 : 4));
      p[kQ6Qh + 32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * g));
      const int sc = static_cast<int>(e / 16) * 9 - 70;
      want[256 * blk + e] = d * static_cast<float>(sc) * static_cast<float>(q - 32);
    }
  }
  EXPECT_EQ(dequantize(kQ6_K, b, 512), want);
}

TEST(Q6_K, RoundTripErrorIsSmallAgainstBlockMax) {
  std::mt19937 rng(6);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const size_t n_blocks = 48;
  std::vector<float> x(256 * n_blocks);
  for (size_t i = 0; i < x.size(); ++i) {
    // Magnitudes vary by block (2^-12 .. 2^11) and by sub-block, so fp16 subnormal d is covered.
    const int block_exp = static_cast<int>(i / 256) % 24 - 12;
    const float sub = 1.0f + static_cast<float>(i / 16 % 16);
    x[i] = dist(rng) * sub * std::ldexp(1.0f, block_exp);
  }
  for (size_t i = 256 * 3; i < 256 * 4; ++i) x[i] = 0.0f;       // all-zero block
  for (size_t i = 256 * 4; i < 256 * 4 + 16; ++i) x[i] = 0.0f;  // one all-zero sub-block
  const std::vector<float> y =
      dequantize(kQ6_K, quantize(kQ6_K, x), static_cast<int64_t>(x.size()));
  for (size_t blk = 0; blk < n_blocks; ++blk) {
    float m = 0.0f;
    for (size_t j = 0; j < 256; ++j) m = std::max(m, std::fabs(x[256 * blk + j]));
    // Sub-block step <= amax / 31 + d16 with d16 <= m / (31 * 127) rounded up in fp16 (relative
    // 2^-10, or 2^-24 absolute when subnormal); the error is half a step.
    // A few float roundings in x / step and d * scale * q add ulps of m.
    const float bound = m / 62.0f + m / 7874.0f * (1.0f + 0x1p-10f) + m * 0x1p-22f + 0x1p-25f;
    for (size_t j = 0; j < 256; ++j) {
      EXPECT_LE(std::fabs(y[256 * blk + j] - x[256 * blk + j]), bound)
          << "block " << blk << " elem " << j << " x " << x[256 * blk + j];
    }
  }
  for (size_t i = 256 * 3; i < 256 * 4 + 16; ++i) EXPECT_EQ(y[i], 0.0f) << i;
}

TEST(Q6_K, RejectsNonFiniteAndOverflow) {
  std::vector<float> x(256, 1.0f);
  x[200] = -std::numeric_limits<float>::infinity();
  expect_invalid([&] { quantize(kQ6_K, x); }, {"Q6_K", "index 200"});
  x[200] = 3e9f;  // needs d = 3e9 / 31 / 127 > 65504
  expect_invalid([&] { quantize(kQ6_K, x); }, {"Q6_K", "overflows fp16"});
}

// ---------------------------------------------------------------------------------------------
// Row dispatch errors

TEST(RowCodec, RejectsUnsupportedTypesAndLengths) {
  std::vector<uint8_t> b(1024);
  std::vector<float> f(512);
  expect_invalid(
      [&] { dequantize_row(static_cast<uint32_t>(GgmlType::Q4_0), b.data(), f.data(), 32); },
      {"Q4_0"});
  expect_invalid([&] { dequantize_row(99, b.data(), f.data(), 32); }, {"type 99"});
  expect_invalid([&] { dequantize_row(kI2_S, b.data(), f.data(), 128); },
                 {"I2_S", "decode_ternary"});
  expect_invalid([&] { dequantize_row(kQ6_K, b.data(), f.data(), 128); }, {"Q6_K", "256", "128"});
  expect_invalid([&] { dequantize_row(kQ8_0, b.data(), f.data(), -32); }, {"Q8_0"});
  expect_invalid([&] { quantize_row(kTQ2_0, f.data(), b.data(), 256); },
                 {"TQ2_0", "encode_ternary"});
  expect_invalid(
      [&] { quantize_row(static_cast<uint32_t>(GgmlType::Q4_K), f.data(), b.data(), 256); },
      {"Q4_K"});
}

// ---------------------------------------------------------------------------------------------
// TQ2_0: qs[64], fp16 d. Element 128h + 32l + m is bits 2l..2l+1 of qs[32h + m], holding t + 1.

TEST(TQ2_0, HandBuiltBlock) {
  std::vector<uint8_t> b(66, 0x55);  // every field 1: weight 0
  b[0] = 0x92;                       // fields 2, 0, 1, 2: elements 0, 32, 64, 96 = +1, -1, 0, +1
  b[32 + 5] = 0x54;                  // field 0 at l = 0: element 128 + 5 = -1
  put_u16(b, 64, 0x3800);            // d = 0.5
  const std::vector<float> y = dequantize(kTQ2_0, b, 256);
  std::vector<float> want(256, 0.0f);
  want[0] = 0.5f;
  want[32] = -0.5f;
  want[96] = 0.5f;
  want[133] = -0.5f;
  EXPECT_EQ(y, want);

  std::vector<int8_t> codes(256, 0);
  codes[0] = 1, codes[32] = -1, codes[96] = 1, codes[133] = -1;
  const float d = 0.5f;
  std::vector<uint8_t> enc(66);
  encode_ternary_row(kTQ2_0, codes.data(), &d, enc.data(), 256);
  EXPECT_EQ(enc, b);
}

// TQ1_0: qs[48], qh[4], fp16 d; 5 trits per byte as ceil(v * 256 / 243), v = sum t'_n 3^(4-n).
TEST(TQ1_0, HandBuiltBlock) {
  std::vector<uint8_t> b(54, 128);  // v = 121 (all trits 1): ceil(121 * 256 / 243) = 128
  for (size_t j = 48; j < 52; ++j) b[j] = 127;  // four trits 1 then 0: v = 120 -> 127
  b[0] = 186;              // elements 0, 32, 64, 96, 128 = +1, -1, 0, 0, +1: v = 176 -> 186
  b[32 + 3] = 0;           // elements 163, 179, 195, 211, 227 = -1
  b[48 + 2] = 247;         // elements 242, 246, 250, 254 = +1, +1, +1, -1: v = 234 -> 247
  put_u16(b, 52, 0x3400);  // d = 0.25
  std::vector<int8_t> codes(256, 0);
  codes[0] = 1, codes[32] = -1, codes[128] = 1;
  for (int e : {163, 179, 195, 211, 227}) codes[static_cast<size_t>(e)] = -1;
  codes[242] = 1, codes[246] = 1, codes[250] = 1, codes[254] = -1;
  std::vector<float> want(256);
  for (size_t i = 0; i < 256; ++i) want[i] = 0.25f * codes[i];
  EXPECT_EQ(dequantize(kTQ1_0, b, 256), want);

  const float d = 0.25f;
  std::vector<uint8_t> enc(54);
  encode_ternary_row(kTQ1_0, codes.data(), &d, enc.data(), 256);
  EXPECT_EQ(enc, b);
}

TEST(TQ1_0, AllFiveTritGroupsRoundTrip) {
  // All 243 trit combinations in qs[0] (elements 0, 32, 64, 96, 128) and 81 in qh[0].
  for (int v = 0; v < 243; ++v) {
    std::vector<int8_t> codes(256, 0);
    int r = v;
    for (int n = 4; n >= 0; --n, r /= 3)
      codes[static_cast<size_t>(32 * n)] = static_cast<int8_t>(r % 3 - 1);
    r = v % 81;
    for (int n = 3; n >= 0; --n, r /= 3)
      codes[static_cast<size_t>(240 + 4 * n)] = static_cast<int8_t>(r % 3 - 1);
    const float d = 1.0f;
    std::vector<uint8_t> enc(54);
    encode_ternary_row(kTQ1_0, codes.data(), &d, enc.data(), 256);
    const std::vector<float> y = dequantize(kTQ1_0, enc, 256);
    for (size_t i = 0; i < 256; ++i)
      ASSERT_EQ(y[i], static_cast<float>(codes[i])) << "v " << v << " elem " << i;
  }
}

TEST(TernaryRow, RejectsBadInput) {
  std::vector<int8_t> codes(512, 0);
  std::vector<uint8_t> out(2 * 66);
  const float d[2] = {1.0f, 1.0f};
  codes[300] = 2;
  expect_invalid([&] { encode_ternary_row(kTQ2_0, codes.data(), d, out.data(), 512); },
                 {"2", "300"});
  codes[300] = 0;
  const float big[2] = {1.0f, 1e6f};
  expect_invalid([&] { encode_ternary_row(kTQ2_0, codes.data(), big, out.data(), 512); },
                 {"block 1"});
  expect_invalid([&] { encode_ternary_row(kTQ1_0, codes.data(), d, out.data(), 100); }, {"256"});
  expect_invalid([&] { encode_ternary_row(kI2_S, codes.data(), d, out.data(), 512); }, {"I2_S"});
}

// ---------------------------------------------------------------------------------------------
// I2_S: blocks of 128 over the flattened tensor; element j of a block sits in byte j % 32, bits
// 7-2(j/32)..6-2(j/32), as code t + 1. Trailer of 32 bytes: f32 scale, then zeros when we write.

TEST(I2_S, HandBuiltLayout) {
  std::vector<int8_t> codes(2 * 64, 0);  // 2 rows of k = 64: one block spanning both rows
  codes[33] = 1;                         // byte 1, bits 5:4 = 2
  codes[127] = -1;                       // byte 31, bits 1:0 = 0
  codes[64] = 1;                         // row 1 column 0 -> byte 0, bits 3:2 = 2
  std::vector<uint8_t> enc(tensor_bytes(kI2_S, 2, 64));
  ASSERT_EQ(enc.size(), 32u + 32u);
  encode_ternary(kI2_S, codes.data(), 2, 64, 0.75f, enc.data(), enc.size());
  std::vector<uint8_t> want(64, 0x55);
  want[1] = 0x65;
  want[31] = 0x54;
  want[0] = 0x59;
  const float s = 0.75f;
  std::memcpy(&want[32], &s, 4);
  for (size_t i = 36; i < 64; ++i) want[i] = 0;
  EXPECT_EQ(enc, want);

  // Decoding ignores trailer bytes 4..31 (bitnet.cpp leaves data there).
  for (size_t i = 36; i < 64; ++i) enc[i] = 0xEE;
  std::vector<int8_t> w(128);
  float scale[2];
  decode_ternary(kI2_S, enc.data(), enc.size(), 2, 64, "w", w.data(), scale);
  EXPECT_EQ(w, codes);
  EXPECT_EQ(scale[0], 0.75f);
  EXPECT_EQ(scale[1], 0.75f);
}

// ---------------------------------------------------------------------------------------------
// encode_ternary / decode_ternary round trips over every ternary encoding and several shapes

struct Shape {
  int64_t n_rows, k;
};

void round_trip(uint32_t type, Shape s, float scale, uint32_t seed) {
  SCOPED_TRACE(ggml_type_name(type) + " " + std::to_string(s.n_rows) + "x" + std::to_string(s.k));
  const auto n = static_cast<size_t>(s.n_rows * s.k);
  const std::vector<int8_t> codes = random_codes(n, seed);
  std::vector<uint8_t> enc(tensor_bytes(type, s.n_rows, s.k));
  encode_ternary(type, codes.data(), s.n_rows, s.k, scale, enc.data(), enc.size());
  std::vector<int8_t> w(n, 7);
  std::vector<float> row_scale(static_cast<size_t>(s.n_rows), -1.0f);
  decode_ternary(type, enc.data(), enc.size(), s.n_rows, s.k, "t", w.data(), row_scale.data());
  EXPECT_EQ(w, codes);
  // Folded floats cannot keep the scale of an all-zero tensor (a 1x1 draw may be one).
  const bool all_zero = std::all_of(codes.begin(), codes.end(), [](int8_t c) { return c == 0; });
  const bool folded = type == kF32 || type == kF16 || type == kBF16;
  for (float rs : row_scale) EXPECT_EQ(rs, folded && all_zero ? 0.0f : scale);
  if (type == kTQ2_0 || type == kTQ1_0) {
    // Row dequantization agrees with the codes times the block scale.
    const size_t rb = enc.size() / static_cast<size_t>(s.n_rows);
    std::vector<float> y(static_cast<size_t>(s.k));
    for (int64_t r = 0; r < s.n_rows; ++r) {
      dequantize_row(type, enc.data() + static_cast<size_t>(r) * rb, y.data(), s.k);
      for (int64_t c = 0; c < s.k; ++c) {
        ASSERT_EQ(y[static_cast<size_t>(c)], scale * codes[static_cast<size_t>(r * s.k + c)]);
      }
    }
  }
  if (type == kI2_S) {
    float trailer;
    std::memcpy(&trailer, enc.data() + n / 4, 4);
    EXPECT_EQ(trailer, scale);
    for (size_t i = n / 4 + 4; i < enc.size(); ++i) EXPECT_EQ(enc[i], 0) << i;
  }
}

TEST(TernaryTensor, RoundTripsEveryEncoding) {
  const float scale = 0.0703125f;  // fp16 and bf16 representable, so every encoding keeps it
  uint32_t seed = 1;
  for (uint32_t type : {kTQ2_0, kTQ1_0}) {
    for (Shape s : {Shape{1, 256}, Shape{3, 512}, Shape{5, 768}, Shape{2, 2560}}) {
      round_trip(type, s, scale, seed++);
    }
  }
  // I2_S blocks run over the flattened tensor, so k need not be a multiple of 128.
  for (Shape s : {Shape{1, 128}, Shape{4, 96}, Shape{3, 256}, Shape{8, 80}, Shape{7, 384}}) {
    round_trip(kI2_S, s, scale, seed++);
  }
  for (uint32_t type : {kF32, kF16, kBF16}) {
    for (Shape s : {Shape{1, 1}, Shape{3, 5}, Shape{4, 256}, Shape{9, 33}}) {
      round_trip(type, s, scale, seed++);
    }
  }
}

TEST(TernaryTensor, FoldedFloatAcceptsSignedZeroAndAllZero) {
  const std::vector<float> v = {0.0f, -0.0f, 0.5f, -0.5f, 0.0f, 0.5f};
  std::vector<int8_t> w(6);
  float scale[2];
  decode_ternary(kF32, reinterpret_cast<const uint8_t*>(v.data()), 24, 2, 3, "w", w.data(), scale);
  EXPECT_EQ(w, (std::vector<int8_t>{0, 0, 1, -1, 0, 1}));
  EXPECT_EQ(scale[0], 0.5f);
  EXPECT_EQ(scale[1], 0.5f);

  const std::vector<uint16_t> zeros(512, 0x8000);  // -0.0 in fp16
  std::vector<int8_t> wz(512, 5);
  float sz[2] = {-1.0f, -1.0f};
  decode_ternary(kF16, reinterpret_cast<const uint8_t*>(zeros.data()), 1024, 2, 256, "z", wz.data(),
                 sz);
  EXPECT_EQ(wz, std::vector<int8_t>(512, 0));
  EXPECT_EQ(sz[0], 0.0f);
  EXPECT_EQ(sz[1], 0.0f);
}

TEST(TernaryTensor, TqZeroBlocksDoNotConstrainTheRowScale) {
  // Row 0: block 0 all zero with d = 3, block 1 nonzero with d = 0.5 -> scale 0.5.
  // Row 1: all zero, blocks with d = 2 and 4 -> its first block's d.
  std::vector<int8_t> codes(2 * 512, 0);
  codes[256 + 10] = 1;
  const float d0[2] = {3.0f, 0.5f};
  const float d1[2] = {2.0f, 4.0f};
  for (uint32_t type : {kTQ2_0, kTQ1_0}) {
    const size_t rb = row_bytes(type, 512);
    std::vector<uint8_t> enc(2 * rb);
    encode_ternary_row(type, codes.data(), d0, enc.data(), 512);
    encode_ternary_row(type, codes.data() + 512, d1, enc.data() + rb, 512);
    std::vector<int8_t> w(1024);
    float scale[2];
    decode_ternary(type, enc.data(), enc.size(), 2, 512, "w", w.data(), scale);
    EXPECT_EQ(w, codes);
    EXPECT_EQ(scale[0], 0.5f);
    EXPECT_EQ(scale[1], 2.0f);
  }
}

// ---------------------------------------------------------------------------------------------
// decode_ternary errors: each names the tensor and where the problem is.

TEST(TernaryErrors, NonTernaryFloatValue) {
  std::vector<float> v(4 * 8, 0.0f);
  v[3] = 0.5f;
  v[2 * 8 + 5] = -0.25f;  // row 2, column 5
  std::vector<int8_t> w(32);
  std::vector<float> s(4);
  expect_invalid(
      [&] {
        decode_ternary(kF32, reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4, 4, 8,
                       "blk.3.ffn_up.weight", w.data(), s.data());
      },
      {"blk.3.ffn_up.weight", "row 2", "column 5", "-0.25", "0.5"});

  std::vector<uint16_t> h(2 * 4, 0);
  h[0] = 0x3C00;  // 1.0
  h[6] = 0x3BFF;  // 0.99951172, one ulp below: no rounding to the scale
  expect_invalid(
      [&] {
        decode_ternary(kF16, reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2, 2, 4,
                       "blk.0.attn_q.weight", w.data(), s.data());
      },
      {"blk.0.attn_q.weight", "row 1", "column 2", "0.999511719"});

  v.assign(8, 0.0f);
  v[1] = std::nanf("");
  v[2] = 1.0f;
  expect_invalid(
      [&] {
        decode_ternary(kF32, reinterpret_cast<const uint8_t*>(v.data()), 32, 1, 8, "nan.weight",
                       w.data(), s.data());
      },
      {"nan.weight", "column 1", "nan"});
  v[1] = std::numeric_limits<float>::infinity();
  expect_invalid(
      [&] {
        decode_ternary(kF32, reinterpret_cast<const uint8_t*>(v.data()), 32, 1, 8, "inf.weight",
                       w.data(), s.data());
      },
      {"inf.weight", "inf"});
}

TEST(TernaryErrors, I2SCodeThree) {
  std::vector<int8_t> codes(256, 0);
  std::vector<uint8_t> enc(tensor_bytes(kI2_S, 2, 128));
  encode_ternary(kI2_S, codes.data(), 2, 128, 1.0f, enc.data(), enc.size());
  enc[32 + 7] |= 0x0C;  // second block (row 1), byte 7, bits 3:2 -> element 64 + 7
  std::vector<int8_t> w(256);
  float s[2];
  expect_invalid(
      [&] {
        decode_ternary(kI2_S, enc.data(), enc.size(), 2, 128, "blk.1.attn_k.weight", w.data(), s);
      },
      {"blk.1.attn_k.weight", "code 3", "row 1", "column 71"});
  enc[32 + 7] &= 0xF3;
  enc[32 + 7] |= 0x04;
  const float nan = std::nanf("");
  std::memcpy(&enc[64], &nan, 4);
  expect_invalid(
      [&] { decode_ternary(kI2_S, enc.data(), enc.size(), 2, 128, "x.weight", w.data(), s); },
      {"x.weight", "trailer"});
}

TEST(TernaryErrors, TqScaleVariesWithinRow) {
  std::vector<int8_t> codes = random_codes(3 * 512, 42);
  for (uint32_t type : {kTQ2_0, kTQ1_0}) {
    const size_t rb = row_bytes(type, 512);
    std::vector<uint8_t> enc(3 * rb);
    const float same[2] = {0.5f, 0.5f};
    const float differ[2] = {0.5f, 0.25f};
    for (size_t r = 0; r < 3; ++r) {
      encode_ternary_row(type, codes.data() + 512 * r, r == 1 ? differ : same, enc.data() + r * rb,
                         512);
    }
    std::vector<int8_t> w(3 * 512);
    float s[3];
    expect_invalid(
        [&] {
          decode_ternary(type, enc.data(), enc.size(), 3, 512, "blk.2.ffn_down.weight", w.data(),
                         s);
        },
        {"blk.2.ffn_down.weight", "row 1", "block 1", "0.25", "0.5"});
  }
}

TEST(TernaryErrors, Tq2FieldThree) {
  std::vector<int8_t> codes(256, 0);
  const float d = 1.0f;
  std::vector<uint8_t> enc(66);
  encode_ternary_row(kTQ2_0, codes.data(), &d, enc.data(), 256);
  enc[32 + 2] |= 0x30;  // element 128 + 64 + 2
  std::vector<int8_t> w(256);
  float s;
  expect_invalid(
      [&] { decode_ternary(kTQ2_0, enc.data(), enc.size(), 1, 256, "q.weight", w.data(), &s); },
      {"q.weight", "field 3", "column 194"});
}

TEST(TernaryErrors, WrongByteSizeAndShape) {
  std::vector<uint8_t> buf(4096, 0x55);
  std::vector<int8_t> w(1024);
  std::vector<float> s(4);
  for (uint32_t type : {kI2_S, kTQ2_0, kTQ1_0, kF32, kF16, kBF16}) {
    const size_t want = tensor_bytes(type, 2, 256);
    for (size_t bytes : {want - 1, want + 1, size_t{0}}) {
      expect_invalid(
          [&] {
            decode_ternary(type, buf.data(), bytes, 2, 256, "blk.0.attn_v.weight", w.data(),
                           s.data());
          },
          {"blk.0.attn_v.weight", std::to_string(want), std::to_string(bytes)});
    }
  }
  // TQ blocks run along k: k = 128 cannot be held; I2_S needs n * k to be a multiple of 128.
  expect_invalid(
      [&] { decode_ternary(kTQ2_0, buf.data(), 132, 4, 128, "a.weight", w.data(), s.data()); },
      {"a.weight", "256"});
  expect_invalid(
      [&] { decode_ternary(kI2_S, buf.data(), 48, 1, 64, "b.weight", w.data(), s.data()); },
      {"b.weight", "128"});
  expect_invalid(
      [&] { decode_ternary(kQ8_0, buf.data(), 68, 1, 64, "c.weight", w.data(), s.data()); },
      {"c.weight", "Q8_0"});
  expect_invalid([&] { decode_ternary(kF32, buf.data(), 0, 0, 4, "d.weight", w.data(), s.data()); },
                 {"d.weight"});
}

TEST(TernaryErrors, EncodeRejectsBadInput) {
  std::vector<int8_t> codes(512, 1);
  std::vector<uint8_t> out(tensor_bytes(kTQ1_0, 2, 256));
  expect_invalid(
      [&] { encode_ternary(kTQ1_0, codes.data(), 2, 256, 1.0f, out.data(), out.size() - 1); },
      {std::to_string(out.size())});
  expect_invalid(
      [&] { encode_ternary(kTQ1_0, codes.data(), 2, 256, -1.0f, out.data(), out.size()); },
      {"scale"});
  codes[300] = -2;
  expect_invalid(
      [&] { encode_ternary(kTQ1_0, codes.data(), 2, 256, 1.0f, out.data(), out.size()); },
      {"row 1", "column 44"});
  codes[300] = 0;
  std::vector<uint8_t> f16(tensor_bytes(kF16, 2, 256));
  expect_invalid([&] { encode_ternary(kF16, codes.data(), 2, 256, 1e6f, f16.data(), f16.size()); },
                 {"overflows F16"});
  expect_invalid([&] { encode_ternary(kQ6_K, codes.data(), 2, 256, 1.0f, out.data(), out.size()); },
                 {"Q6_K"});
}

// ---------------------------------------------------------------------------------------------
// Reference fixtures: tiny-b158 holds the same weights as F32, F16, I2_S, TQ2_0 and TQ1_0. The
// tensor data is located with the test-only parser in fixture-gguf.h, independent of the formats
// layer's GGUF reader.

std::filesystem::path models_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  return std::filesystem::path(env && *env ? env : BITNET_REFERENCE_DIR_DEFAULT) / "models";
}

// Parsed once per test program: the files are small (17 MB for the largest).
const MiniGguf* fixture(const std::string& file) {
  static std::map<std::string, std::unique_ptr<MiniGguf>> cache;
  auto& slot = cache[file];
  const std::filesystem::path path = models_dir() / file;
  if (!slot && std::filesystem::exists(path)) slot = std::make_unique<MiniGguf>(path);
  return slot.get();
}

#define REQUIRE_FIXTURE(var, file)                                                            \
  const MiniGguf* var = fixture(file);                                                        \
  if (!var) {                                                                                 \
    GTEST_SKIP() << "reference fixture " << (models_dir() / (file)).string()                  \
                 << " not found; set BITNET_REFERENCE_DIR to the shared reference directory"; \
  }

struct Decoded {
  std::vector<int8_t> w;
  std::vector<float> scale;
};

Decoded decode_fixture(const FixtureTensor& t, const std::string& name) {
  EXPECT_EQ(t.dims.size(), 2u) << name;
  const int64_t k = t.dims[0], n = t.dims[1];
  Decoded d{std::vector<int8_t>(static_cast<size_t>(n * k)),
            std::vector<float>(static_cast<size_t>(n))};
  decode_ternary(t.type, t.data, t.bytes, n, k, name, d.w.data(), d.scale.data());
  return d;
}

std::vector<std::string> ternary_names(int n_layers) {
  std::vector<std::string> names;
  for (int l = 0; l < n_layers; ++l) {
    for (const char* kind :
         {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      names.push_back("blk." + std::to_string(l) + "." + kind + ".weight");
    }
  }
  return names;
}

TEST(Fixtures, TinyB158TernaryTensorsAgreeAcrossEncodings) {
  REQUIRE_FIXTURE(f32, "tiny-b158.f32.gguf");
  REQUIRE_FIXTURE(f16, "tiny-b158.f16.gguf");
  REQUIRE_FIXTURE(i2s, "tiny-b158.i2_s.gguf");
  REQUIRE_FIXTURE(tq2, "tiny-b158.tq2_0.gguf");
  REQUIRE_FIXTURE(tq1, "tiny-b158.tq1_0.gguf");
  const std::vector<std::pair<const MiniGguf*, uint32_t>> others = {
      {f16, kF16}, {i2s, kI2_S}, {tq2, kTQ2_0}, {tq1, kTQ1_0}};
  for (const std::string& name : ternary_names(4)) {
    SCOPED_TRACE(name);
    const FixtureTensor& ref_t = f32->tensor(name);
    ASSERT_EQ(ref_t.type, kF32);
    const int64_t k = ref_t.dims[0], n = ref_t.dims[1];
    const Decoded ref = decode_fixture(ref_t, name);
    // Real ternary data: one positive scale per tensor and all three codes present.
    const float scale = ref.scale[0];
    EXPECT_GT(scale, 0.0f);
    for (float s : ref.scale) ASSERT_EQ(s, scale);
    int count[3] = {0, 0, 0};
    for (int8_t v : ref.w) ++count[v + 1];
    EXPECT_GT(count[0], n * k / 5);
    EXPECT_GT(count[1], n * k / 5);
    EXPECT_GT(count[2], n * k / 5);

    for (const auto& [file, type] : others) {
      const FixtureTensor& t = file->tensor(name);
      ASSERT_EQ(t.type, type) << ggml_type_name(t.type);
      ASSERT_EQ(t.dims, ref_t.dims);
      const Decoded got = decode_fixture(t, name);
      EXPECT_EQ(got.w, ref.w) << ggml_type_name(type);
      EXPECT_EQ(got.scale, ref.scale) << ggml_type_name(type);

      // Our encoder reproduces the file's bytes (I2_S: up to the trailer's first 4 bytes; the
      // rest of bitnet.cpp's trailer is not specified).
      std::vector<uint8_t> enc(t.bytes);
      encode_ternary(type, ref.w.data(), n, k, scale, enc.data(), enc.size());
      const size_t compare = type == kI2_S ? static_cast<size_t>(n * k / 4 + 4) : t.bytes;
      EXPECT_EQ(std::memcmp(enc.data(), t.data, compare), 0)
          << ggml_type_name(type) << " bytes differ";

      if (type == kTQ2_0 || type == kTQ1_0) {
        // Row dequantization gives the F32 master bit for bit.
        const size_t rb = t.bytes / static_cast<size_t>(n);
        std::vector<float> y(static_cast<size_t>(k));
        for (int64_t r = 0; r < n; ++r) {
          dequantize_row(type, t.data + static_cast<size_t>(r) * rb, y.data(), k);
          ASSERT_EQ(
              std::memcmp(y.data(), ref_t.data + static_cast<size_t>(r * k) * 4, y.size() * 4), 0)
              << ggml_type_name(type) << " row " << r;
        }
      }
    }
  }
}

TEST(Fixtures, TinyB158TokenEmbeddingF16MatchesF32) {
  REQUIRE_FIXTURE(f32, "tiny-b158.f32.gguf");
  const FixtureTensor& ref = f32->tensor("token_embd.weight");
  ASSERT_EQ(ref.type, kF32);
  ASSERT_EQ(ref.dims, (std::vector<int64_t>{256, 4112}));
  const int64_t n = ref.dims[0] * ref.dims[1];
  std::vector<float> want(static_cast<size_t>(n));
  dequantize_row(kF32, ref.data, want.data(), n);
  for (const char* file : {"tiny-b158.f16.gguf", "tiny-b158.i2_s.gguf", "tiny-b158.tq2_0.gguf",
                           "tiny-b158.tq1_0.gguf"}) {
    SCOPED_TRACE(file);
    REQUIRE_FIXTURE(g, file);
    const FixtureTensor& t = g->tensor("token_embd.weight");
    ASSERT_EQ(t.type, kF16);
    ASSERT_EQ(t.dims, ref.dims);
    std::vector<float> got(static_cast<size_t>(n));
    dequantize_row(kF16, t.data, got.data(), n);
    EXPECT_EQ(got, want);
    // Every value is fp16-representable, so re-encoding gives the file's bytes.
    std::vector<uint8_t> enc(t.bytes);
    quantize_row(kF16, want.data(), enc.data(), n);
    EXPECT_EQ(std::memcmp(enc.data(), t.data, t.bytes), 0);
  }
}

TEST(Fixtures, TinyBitnetTq2MatchesF32WithUnitScale) {
  REQUIRE_FIXTURE(f32, "tiny-bitnet.f32.gguf");
  REQUIRE_FIXTURE(tq2, "tiny-bitnet.tq2_0.gguf");
  for (const std::string& name : ternary_names(2)) {
    SCOPED_TRACE(name);
    const Decoded ref = decode_fixture(f32->tensor(name), name);
    const Decoded got = decode_fixture(tq2->tensor(name), name);
    EXPECT_EQ(got.w, ref.w);
    EXPECT_EQ(ref.scale, std::vector<float>(ref.scale.size(), 1.0f));
    EXPECT_EQ(got.scale, ref.scale);
  }
}

}  // namespace
}  // namespace bitnet::formats
