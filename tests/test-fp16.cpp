// fp16 / bf16 conversions: exhaustive round trips, hand-checked values, and (where the CPU has
// F16C) agreement with the hardware converter over every half value and many floats.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/cpu-features.h"
#include "core/fp16.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace bitnet {
namespace {

bool is_nan16(uint16_t h) {
  return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
}

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7c00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7e00)));
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));

  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);  // below the halfway point to 65536
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // halfway, ties to even -> infinity
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie, even stays
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, rounds up to even
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal: to even
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp tie -> even
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_TRUE(is_nan16(fp32_to_fp16(std::numeric_limits<float>::quiet_NaN())));
}

TEST(Fp16, ExhaustiveRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    const uint16_t back = fp32_to_fp16(f);
    if (is_nan16(static_cast<uint16_t>(h))) {
      EXPECT_TRUE(is_nan16(back)) << h;
    } else {
      ASSERT_EQ(back, h) << "half 0x" << std::hex << h;
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) float hw_h2f(uint16_t h) {
  return _cvtsh_ss(h);
}
__attribute__((target("f16c"))) uint16_t hw_f2h(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

TEST(Fp16, MatchesF16CHardware) {
  if (!cpu_features().f16c) GTEST_SKIP() << "CPU has no F16C";
  for (uint32_t h = 0; h < 65536; ++h) {
    if (is_nan16(static_cast<uint16_t>(h))) continue;
    ASSERT_EQ(f32_to_bits(fp16_to_fp32(static_cast<uint16_t>(h))),
              f32_to_bits(hw_h2f(static_cast<uint16_t>(h))));
  }
  std::mt19937 rng(1);
  for (int i = 0; i < 2000000; ++i) {
    // Random bit patterns concentrated on the exponents where halves live (incl. subnormals).
    uint32_t u = static_cast<uint32_t>(rng());
    u = (u & 0x807fffffu) | ((100u + (u >> 23) % 60u) << 23);
    const float f = bits_to_f32(u);
    ASSERT_EQ(fp32_to_fp16(f), hw_f2h(f)) << "bits 0x" << std::hex << u;
  }
}
#endif

TEST(Bf16, RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_bf16(f), h);
  }
  EXPECT_EQ(fp32_to_bf16(bits_to_f32(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(fp32_to_bf16(bits_to_f32(0x3f818000u)), 0x3f82);  // tie, rounds to even
  EXPECT_EQ(fp32_to_bf16(bits_to_f32(0x3f808001u)), 0x3f81);
  EXPECT_EQ(fp32_to_bf16(bits_to_f32(0x7f7fffffu)), 0x7f80);  // overflow to infinity
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload sits only in the low 16 bits must not become infinity.
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(bits_to_f32(0x7f800001u)))));
}

TEST(Fp16, RowConverters) {
  const uint16_t h[5] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x0000};
  float f[5];
  fp16_to_fp32_row(h, f, 5);
  uint16_t back[5];
  fp32_to_fp16_row(f, back, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(back[i], h[i]);
  const uint16_t b[2] = {0x3f80, 0xc040};
  float bf[2];
  bf16_to_fp32_row(b, bf, 2);
  EXPECT_EQ(bf[0], 1.0f);
  EXPECT_EQ(bf[1], -3.0f);
}

}  // namespace
}  // namespace bitnet
