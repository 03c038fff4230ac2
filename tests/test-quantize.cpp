// The per-token int8 activation quantizer: hand-computed cases (ties round to even), then every
// ISA against the scalar reference, bit for bit, over odd lengths and awkward values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/ternary-matmul.h"
#include "test-util.h"

namespace bitnet::kernels {
namespace {

struct Quantized {
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> sum;
};

Quantized run(const KernelTable& t, const std::vector<float>& x, int64_t m, int64_t k) {
  test::GuardedArray<float> xg(x.size(), 4);
  std::memcpy(xg.data(), x.data(), x.size() * sizeof(float));
  test::GuardedArray<int8_t> qg(static_cast<size_t>(m * k), 1);
  Quantized out;
  out.scale.resize(static_cast<size_t>(m));
  out.sum.resize(static_cast<size_t>(m));
  t.quantize(xg.data(), k, m, k, qg.data(), k, out.scale.data(), out.sum.data());
  out.q.assign(qg.data(), qg.data() + m * k);
  return out;
}

class QuantizeTest : public ::testing::TestWithParam<Isa> {
 protected:
  const KernelTable& table() const { return *kernels_for(GetParam()); }
};

TEST_P(QuantizeTest, HandComputedRow) {
  // absmax 127 gives s = 1 exactly, so x * s is x and the ties are visible: half to even.
  std::vector<float> x = {127.0f, -127.0f, 2.5f,  3.5f,   -2.5f,   -3.5f,  0.49f, -0.51f, 0.5f,
                          1.5f,   0.0f,    -0.0f, 100.4f, -100.6f, 126.5f, 1.0f,  7.0f};
  const Quantized r = run(table(), x, 1, static_cast<int64_t>(x.size()));
  const std::vector<int8_t> want = {127, -127, 2, 4,   -2,   -4,  0, -1, 0,
                                    2,   0,    0, 100, -101, 126, 1, 7};
  EXPECT_EQ(r.q, want);
  EXPECT_EQ(r.scale[0], 1.0f);
  int32_t s = 0;
  for (int8_t v : want) s += v;
  EXPECT_EQ(r.sum[0], s);
}

TEST_P(QuantizeTest, ZeroRowUsesEpsilon) {
  std::vector<float> x(37, 0.0f);
  const Quantized r = run(table(), x, 1, 37);
  EXPECT_EQ(r.scale[0], 127.0f / 1e-5f);
  EXPECT_EQ(r.sum[0], 0);
  for (int8_t v : r.q) EXPECT_EQ(v, 0);
}

TEST_P(QuantizeTest, MatchesReferenceBitForBit) {
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int64_t k : {1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 256, 2560, 6912}) {
    for (int64_t m : {1, 2, 5}) {
      std::vector<float> x(static_cast<size_t>(m * k));
      for (auto& v : x) v = nd(rng);
      if (k > 4) {
        x[2] = std::numeric_limits<float>::denorm_min();
        x[3] = -x[0] * 4.0f;  // the row's absmax is exactly representable as a multiple
      }
      const Quantized a = run(ref, x, m, k), b = run(table(), x, m, k);
      EXPECT_EQ(a.q, b.q) << "k=" << k << " m=" << m;
      EXPECT_EQ(std::memcmp(a.scale.data(), b.scale.data(), a.scale.size() * 4), 0) << "k=" << k;
      EXPECT_EQ(a.sum, b.sum) << "k=" << k;
    }
  }
}

TEST_P(QuantizeTest, NonFiniteInputsAreDeterministic) {
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  std::vector<float> x(40, 1.0f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[17] = -2.0f;
  x[35] = std::numeric_limits<float>::quiet_NaN();
  const Quantized a = run(ref, x, 1, 40), b = run(table(), x, 1, 40);
  EXPECT_EQ(a.q, b.q);
  EXPECT_EQ(a.q[3], -128);
  EXPECT_EQ(a.q[17], -127);
  EXPECT_EQ(a.scale[0], b.scale[0]);

  // An infinity makes s = 127 / inf = 0, so inf * s is NaN: every path must map it to -128.
  std::vector<float> y(40, 1.0f);
  y[9] = std::numeric_limits<float>::infinity();
  y[38] = -std::numeric_limits<float>::infinity();
  const Quantized c = run(ref, y, 1, 40), d = run(table(), y, 1, 40);
  EXPECT_EQ(c.q, d.q);
  EXPECT_EQ(c.sum, d.sum);
  EXPECT_EQ(c.q[9], -128);
  EXPECT_EQ(c.q[38], -128);
  EXPECT_EQ(c.q[0], 0);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, QuantizeTest, ::testing::ValuesIn(available_isas()),
                         [](const auto& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

}  // namespace
}  // namespace bitnet::kernels
