// Float dot products of the LM head: every ISA against the scalar reference within the bound of
// float summation (k * eps * sum |w x|), and F16 rows giving exactly the F32 rows' result.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "kernels/ternary-matmul.h"
#include "test-util.h"

namespace bitnet::kernels {
namespace {

class FloatDotTest : public ::testing::TestWithParam<Isa> {};

TEST_P(FloatDotTest, MatchesReferenceAndF16EqualsF32) {
  const KernelTable& t = *kernels_for(GetParam());
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t k : {1, 7, 16, 63, 64, 65, 256, 2560, 3201}) {
    std::vector<uint16_t> h(static_cast<size_t>(k));
    std::vector<float> w(static_cast<size_t>(k)), x(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
      h[static_cast<size_t>(i)] = fp32_to_fp16(nd(rng));
      w[static_cast<size_t>(i)] = fp16_to_fp32(h[static_cast<size_t>(i)]);  // same values
      x[static_cast<size_t>(i)] = nd(rng);
    }
    test::GuardedArray<float> wg(w.size(), 4), xg(x.size(), 4);
    test::GuardedArray<uint16_t> hg(h.size(), 2);
    std::memcpy(wg.data(), w.data(), w.size() * 4);
    std::memcpy(xg.data(), x.data(), x.size() * 4);
    std::memcpy(hg.data(), h.data(), h.size() * 2);
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < k; ++i) {
      exact += static_cast<double>(w[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)];
      mag += std::fabs(static_cast<double>(w[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)]);
    }
    const double bound = static_cast<double>(k) * std::numeric_limits<float>::epsilon() * mag;
    const float f32 = t.dot_f32(wg.data(), xg.data(), k);
    const float f16 = t.dot_f16(hg.data(), xg.data(), k);
    EXPECT_NEAR(f32, exact, bound) << isa_name(t.isa) << " k=" << k;
    EXPECT_NEAR(ref.dot_f32(w.data(), x.data(), k), exact, bound) << "k=" << k;
    EXPECT_EQ(f32, f16) << isa_name(t.isa) << " k=" << k;

    // axpy: y += a * x, one rounding per element (a fused multiply-add or a multiply and add).
    std::vector<float> y(static_cast<size_t>(k), 0.25f), y_ref = y;
    t.axpy_f16(-1.5f, hg.data(), y.data(), k);
    for (int64_t i = 0; i < k; ++i) {
      const double want = 0.25 + -1.5 * static_cast<double>(w[static_cast<size_t>(i)]);
      ASSERT_NEAR(y[static_cast<size_t>(i)], want,
                  2 * std::numeric_limits<float>::epsilon() * (std::fabs(want) + 1))
          << isa_name(t.isa) << " k=" << k << " i=" << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, FloatDotTest, ::testing::ValuesIn(available_isas()),
                         [](const auto& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

}  // namespace
}  // namespace bitnet::kernels
