// Output-matrix (LM head) kernels on every ISA this CPU has: the block quantizer bit-exact against
// its reference and against its definition; the Q6_K and Q8_0 dots exact where every partial sum is
// an integer below 2^24, and otherwise within the contract's float-order bound of the exact value
// (computed here in double from the codes the test chose); and the quantized dot against the float
// dot of the dequantized weights within the bound of the int8 activation rounding. Every buffer
// ends at an inaccessible page; gaps between rows hold NaN or values that would show if read.
#include <gtest/gtest.h>

#include <algorithm>
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

using test::GuardedArray;

constexpr double kEps = std::numeric_limits<float>::epsilon();

// ---------------------------------------------------------------------------- weight matrices

// n rows of k values stored as Q6_K or Q8_0 blocks, built from codes the test chose, so the exact
// value of every element (and the contract's magnitude term) is known without decoding.
struct Weights {
  bool q6 = true;
  int64_t n = 0, k = 0;
  size_t row_bytes = 0;
  std::vector<uint8_t> bytes;  // n * row_bytes
  std::vector<double> value;   // [n][k] the dequantized value
  std::vector<double> mag;     // [n][k] |d sc| (q + 32) for Q6_K, |d w| for Q8_0
};

struct Ranges {
  int sc_lo = -128, sc_hi = 127;  // Q6_K sub-block scales
  int q_lo = 0, q_hi = 63;        // Q6_K 6-bit codes
  int w_lo = -128, w_hi = 127;    // Q8_0 codes
  bool unit_d = false;            // every block's d = 1 (else fp16 of |N(0, 1)| / 64)
};

void put_q6_code(uint8_t* blk, int e, int code) {
  const int h = e / 128, g = e % 128 / 32, l = e % 32;
  uint8_t& lo = blk[64 * h + 32 * (g & 1) + l];
  lo = static_cast<uint8_t>(lo | (code & 0xF) << (g < 2 ? 0 : 4));
  uint8_t& hi = blk[128 + 32 * h + l];
  hi = static_cast<uint8_t>(hi | (code >> 4) << (2 * g));
}

Weights make_weights(bool q6, int64_t n, int64_t k, const Ranges& rg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Weights w;
  w.q6 = q6;
  w.n = n;
  w.k = k;
  const int64_t block = q6 ? kQ6KBlock : kQ80Block;
  const size_t block_bytes = q6 ? kQ6KBytes : kQ80Bytes;
  w.row_bytes = static_cast<size_t>(k / block) * block_bytes;
  w.bytes.assign(static_cast<size_t>(n) * w.row_bytes, 0);
  w.value.resize(static_cast<size_t>(n * k));
  w.mag.resize(static_cast<size_t>(n * k));
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < k / block; ++b) {
      uint8_t* blk = w.bytes.data() + static_cast<size_t>(i) * w.row_bytes +
                     static_cast<size_t>(b) * block_bytes;
      const uint16_t dh = rg.unit_d ? fp32_to_fp16(1.0f) : fp32_to_fp16(std::fabs(nd(rng)) / 64);
      const double d = fp16_to_fp32(dh);
      uint8_t* d_at = q6 ? blk + 208 : blk;
      std::memcpy(d_at, &dh, 2);
      int sc[16];
      if (q6) {
        for (int s = 0; s < 16; ++s) {
          sc[s] = uniform(rg.sc_lo, rg.sc_hi);
          blk[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(sc[s]));
        }
      }
      for (int64_t e = 0; e < block; ++e) {
        const size_t at = static_cast<size_t>(i * k + b * block + e);
        if (q6) {
          const int code = uniform(rg.q_lo, rg.q_hi);
          put_q6_code(blk, static_cast<int>(e), code);
          w.value[at] = d * sc[e / 16] * (code - 32);
          w.mag[at] = std::fabs(d * sc[e / 16]) * (code + 32);
        } else {
          const int code = uniform(rg.w_lo, rg.w_hi);
          blk[2 + e] = static_cast<uint8_t>(static_cast<int8_t>(code));
          w.value[at] = d * code;
          w.mag[at] = std::fabs(d * code);
        }
      }
    }
  }
  return w;
}

// ------------------------------------------------------------------------- activation rows

// m rows of k codes with block scales and 16-sums, strided with gaps that must not be read: code
// gaps hold 127, scale gaps NaN, sum gaps 32767 (any of them read would change a result).
struct Acts {
  int64_t m = 0, k = 0, block = 0;
  std::vector<int8_t> q;  // [m][k], the codes
  std::vector<float> d;   // [m][k / block]
  std::vector<int16_t> bsum;
  int64_t ldq = 0, ldd = 0, ldb = 0;
};

Acts codes_acts(int64_t m, int64_t k, int64_t block, int a_max, bool unit_d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> code(-a_max, a_max);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  Acts a;
  a.m = m;
  a.k = k;
  a.block = block;
  a.q.resize(static_cast<size_t>(m * k));
  for (auto& v : a.q) v = static_cast<int8_t>(code(rng));
  if (k >= 2) a.q[1] = static_cast<int8_t>(-a_max);  // the extremes in every problem
  a.q[0] = static_cast<int8_t>(a_max);
  a.d.resize(static_cast<size_t>(m * (k / block)));
  for (auto& v : a.d) v = unit_d ? 1.0f : scale(rng);
  a.bsum.resize(static_cast<size_t>(m * (k / kQ8SumSpan)));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < k / kQ8SumSpan; ++j) {
      int s = 0;
      for (int64_t e = 0; e < kQ8SumSpan; ++e) s += a.q[static_cast<size_t>(r * k + 16 * j + e)];
      a.bsum[static_cast<size_t>(r * (k / kQ8SumSpan) + j)] = static_cast<int16_t>(s);
    }
  }
  return a;
}

// Guarded copies of the activation rows with row gaps, the view the kernels take.
struct GuardedActs {
  GuardedArray<int8_t> q;
  GuardedArray<float> d;
  GuardedArray<int16_t> bsum;
  BlockQ8Rows view;

  explicit GuardedActs(const Acts& a)
      : q(static_cast<size_t>((a.m - 1) * (a.k + 64) + a.k), 1),
        d(static_cast<size_t>((a.m - 1) * (a.k / a.block + 3) + a.k / a.block), 4),
        bsum(static_cast<size_t>((a.m - 1) * (a.k / 16 + 5) + a.k / 16), 2) {
    const int64_t nb = a.k / a.block, ns = a.k / kQ8SumSpan;
    view.ldq = a.k + 64;
    view.ldd = nb + 3;
    view.ldbsum = ns + 5;
    for (size_t i = 0; i < q.size(); ++i) q[i] = 127;
    for (size_t i = 0; i < d.size(); ++i) d[i] = std::nanf("");
    for (size_t i = 0; i < bsum.size(); ++i) bsum[i] = 32767;
    for (int64_t r = 0; r < a.m; ++r) {
      std::memcpy(q.data() + r * view.ldq, a.q.data() + r * a.k, static_cast<size_t>(a.k));
      std::memcpy(d.data() + r * view.ldd, a.d.data() + r * nb, static_cast<size_t>(nb) * 4);
      std::memcpy(bsum.data() + r * view.ldbsum, a.bsum.data() + r * ns,
                  static_cast<size_t>(ns) * 2);
    }
    view.q = q.data();
    view.d = d.data();
    view.bsum = bsum.data();
    view.m = a.m;
    view.k = a.k;
  }
};

// Guarded weight rows `stride` bytes apart, the gaps filled with 0xff (d = NaN in either layout).
struct GuardedWeights {
  GuardedArray<uint8_t> bytes;
  size_t stride;
  GuardedWeights(const Weights& w, size_t gap)
      : bytes(static_cast<size_t>(w.n - 1) * (w.row_bytes + gap) + w.row_bytes, 1),
        stride(w.row_bytes + gap) {
    std::memset(bytes.data(), 0xff, bytes.size());
    for (int64_t i = 0; i < w.n; ++i) {
      std::memcpy(bytes.data() + static_cast<size_t>(i) * stride,
                  w.bytes.data() + static_cast<size_t>(i) * w.row_bytes, w.row_bytes);
    }
  }
};

// Exact value of dot(weight row i, activation row r) and the contract's S for it.
void exact_dot(const Weights& w, const Acts& a, int64_t i, int64_t r, double* value, double* s) {
  double v = 0, m = 0;
  for (int64_t e = 0; e < w.k; ++e) {
    const double ae =
        static_cast<double>(a.d[static_cast<size_t>(r * (a.k / a.block) + e / a.block)]) *
        a.q[static_cast<size_t>(r * a.k + e)];
    v += w.value[static_cast<size_t>(i * w.k + e)] * ae;
    m += w.mag[static_cast<size_t>(i * w.k + e)] * std::fabs(ae);
  }
  *value = v;
  *s = m;
}

// Runs the table's dot on guarded copies; returns y[m][n] (ldy > n, the gaps checked untouched).
std::vector<float> run_dot(const KernelTable& t, const Weights& w, const Acts& a, size_t gap) {
  GuardedWeights gw(w, gap);
  GuardedActs ga(a);
  const int64_t ldy = w.n + 2;
  GuardedArray<float> y(static_cast<size_t>((a.m - 1) * ldy + w.n), 4);
  const float poison = std::nanf("0x5a5a");
  for (size_t i = 0; i < y.size(); ++i) y[i] = poison;
  (w.q6 ? t.dot_q6_k : t.dot_q8_0)(gw.bytes.data(), gw.stride, w.n, ga.view, y.data(), ldy);
  std::vector<float> out(static_cast<size_t>(a.m * w.n));
  for (int64_t r = 0; r < a.m; ++r) {
    for (int64_t j = 0; j < ldy && r * ldy + j < static_cast<int64_t>(y.size()); ++j) {
      const float got = y[static_cast<size_t>(r * ldy + j)];
      if (j < w.n) {
        out[static_cast<size_t>(r * w.n + j)] = got;
      } else {
        EXPECT_EQ(std::memcmp(&got, &poison, 4), 0)
            << "wrote past n at y[" << r << "][" << j << "]";
      }
    }
  }
  return out;
}

std::string what(const KernelTable& t, const Weights& w, int64_t m) {
  return std::string(isa_name(t.isa)) + (w.q6 ? " Q6_K" : " Q8_0") + " n=" + std::to_string(w.n) +
         " k=" + std::to_string(w.k) + " m=" + std::to_string(m);
}

class OutputDotTest : public ::testing::TestWithParam<Isa> {
 protected:
  const KernelTable& table() const { return *kernels_for(GetParam()); }
};

// ------------------------------------------------------------------------------- quantizer

TEST_P(OutputDotTest, QuantizerMatchesReferenceAndDefinition) {
  const KernelTable& t = table();
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t block : {kQ80Block, kQ6KBlock}) {
    for (int64_t nb : {1, 2, 3, 10}) {
      const int64_t k = nb * block;
      std::vector<float> x(static_cast<size_t>(k));
      for (auto& v : x) v = nd(rng);
      x[5] = 40.0f;  // an outlier in block 0
      if (nb > 1) {
        for (int64_t e = block; e < 2 * block; ++e)
          x[static_cast<size_t>(e)] = 0.0f;  // a zero block
      }
      x[static_cast<size_t>(k - 1)] = -1e-7f;  // a tiny value in the last block
      GuardedArray<float> xg(x.size(), 4);
      std::memcpy(xg.data(), x.data(), x.size() * 4);
      GuardedArray<int8_t> q(static_cast<size_t>(k), 1), q_ref(static_cast<size_t>(k), 1);
      GuardedArray<float> d(static_cast<size_t>(nb), 4), d_ref(static_cast<size_t>(nb), 4);
      GuardedArray<int16_t> s(static_cast<size_t>(k / 16), 2),
          s_ref(static_cast<size_t>(k / 16), 2);
      t.quantize_blocks(xg.data(), k, block, q.data(), d.data(), s.data());
      ref.quantize_blocks(x.data(), k, block, q_ref.data(), d_ref.data(), s_ref.data());
      const std::string tag = std::string(isa_name(t.isa)) + " block=" + std::to_string(block) +
                              " k=" + std::to_string(k);
      ASSERT_EQ(std::memcmp(q.data(), q_ref.data(), q.size()), 0) << tag;
      ASSERT_EQ(std::memcmp(d.data(), d_ref.data(), d.size() * 4), 0) << tag;
      ASSERT_EQ(std::memcmp(s.data(), s_ref.data(), s.size() * 2), 0) << tag;
      // The definition, element by element.
      for (int64_t b = 0; b < nb; ++b) {
        float amax = 0;
        for (int64_t e = 0; e < block; ++e) amax = std::max(amax, std::fabs(x[b * block + e]));
        const float sc = 127.0f / std::max(amax, 1e-5f);
        ASSERT_EQ(d_ref[static_cast<size_t>(b)], 1.0f / sc) << tag << " block " << b;
        for (int64_t e = 0; e < block; ++e) {
          const float want = std::clamp(std::nearbyint(x[b * block + e] * sc), -127.0f, 127.0f);
          ASSERT_EQ(q_ref[static_cast<size_t>(b * block + e)], static_cast<int8_t>(want))
              << tag << " at " << b * block + e;
        }
      }
      for (int64_t j = 0; j < k / 16; ++j) {
        int sum = 0;
        for (int64_t e = 0; e < 16; ++e) sum += q_ref[static_cast<size_t>(16 * j + e)];
        ASSERT_EQ(s_ref[static_cast<size_t>(j)], sum) << tag << " sum " << j;
      }
      // Without sums (the Q8_0 form) the codes and scales are the same.
      t.quantize_blocks(xg.data(), k, block, q.data(), d.data(), nullptr);
      ASSERT_EQ(std::memcmp(q.data(), q_ref.data(), q.size()), 0) << tag;
    }
  }
}

TEST_P(OutputDotTest, QuantizerNonFiniteInputsAgreeWithReference) {
  const KernelTable& t = table();
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  std::vector<float> x(512, 0.5f);
  x[3] = std::nanf("");
  x[40] = -2.0f;
  x[300] =
      std::numeric_limits<float>::infinity();  // its block's scale is 0: every x * s is 0 or NaN
  std::vector<int8_t> q(512), q_ref(512);
  std::vector<float> d(2), d_ref(2);
  std::vector<int16_t> s(32), s_ref(32);
  t.quantize_blocks(x.data(), 512, 256, q.data(), d.data(), s.data());
  ref.quantize_blocks(x.data(), 512, 256, q_ref.data(), d_ref.data(), s_ref.data());
  EXPECT_EQ(q, q_ref);
  EXPECT_EQ(s, s_ref);
  EXPECT_EQ(std::memcmp(d.data(), d_ref.data(), 8), 0);
  EXPECT_EQ(q_ref[3], -127);  // NaN -> -127, never -128
  EXPECT_EQ(q_ref[40], -127);
}

// ------------------------------------------------------------------------------------ dots

// Unit scales and magnitudes chosen so that every partial sum in any order is an integer below
// 2^24 (checked): the float result must be the exact integer.
TEST_P(OutputDotTest, IntegerDotsAreExact) {
  const KernelTable& t = table();
  struct Case {
    bool q6;
    int64_t k;
    Ranges rg;
    int a_max;
  };
  Ranges q6_small;
  q6_small.sc_lo = -1, q6_small.sc_hi = 1, q6_small.unit_d = true;
  Ranges q6_wide = q6_small;
  q6_wide.sc_lo = -4, q6_wide.sc_hi = 4;
  Ranges q80 = q6_small;  // Q8_0 codes keep their full range
  const Case cases[] = {
      {true, 256, q6_wide, 127},  {true, 512, q6_small, 127}, {true, 768, q6_small, 60},
      {true, 2560, q6_small, 60}, {false, 32, q80, 127},      {false, 96, q80, 127},
      {false, 224, q80, 127},     {false, 256, q80, 127},     {false, 288, q80, 127},
      {false, 2560, q80, 40},     {false, 2592, q80, 40},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    for (int64_t n : {1, 3, 17}) {
      for (int64_t m : {1, 2, 3, 4, 5, 9}) {
        const Weights w = make_weights(c.q6, n, c.k, c.rg, seed++);
        const Acts a = codes_acts(m, c.k, c.q6 ? kQ6KBlock : kQ80Block, c.a_max, true, seed++);
        const std::vector<float> y = run_dot(t, w, a, n % 2 ? 0 : 7);
        for (int64_t r = 0; r < m; ++r) {
          for (int64_t i = 0; i < n; ++i) {
            double exact, s;
            exact_dot(w, a, i, r, &exact, &s);
            ASSERT_LT(s, 16777216.0) << "test case too large to be exact in float";
            ASSERT_EQ(static_cast<double>(y[static_cast<size_t>(r * n + i)]), exact)
                << what(t, w, m) << " at y[" << r << "][" << i << "]";
          }
        }
      }
    }
  }
}

// Random scales and full-range codes (including Q6_K's -128 scales and 0/63 codes): within
// k * eps * S of the exact value, the reference too; every row's result independent of m.
TEST_P(OutputDotTest, WithinFloatBoundAndIndependentOfOtherRows) {
  const KernelTable& t = table();
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  uint64_t seed = 100;
  for (bool q6 : {true, false}) {
    const int64_t block = q6 ? kQ6KBlock : kQ80Block;
    for (int64_t k : {block, 3 * block, 10 * block, int64_t{2560}, int64_t{4096}}) {
      for (int64_t m : {1, 4, 6}) {
        const Weights w = make_weights(q6, 5, k, Ranges{}, seed++);
        const Acts a = codes_acts(m, k, block, 127, false, seed++);
        const std::vector<float> y = run_dot(t, w, a, 3);
        const std::vector<float> y_ref = run_dot(ref, w, a, 0);
        for (int64_t r = 0; r < m; ++r) {
          Acts one = codes_acts(1, k, block, 127, false, 0);
          one.q.assign(a.q.begin() + r * k, a.q.begin() + (r + 1) * k);
          one.d.assign(a.d.begin() + r * (k / block), a.d.begin() + (r + 1) * (k / block));
          one.bsum.assign(a.bsum.begin() + r * (k / 16), a.bsum.begin() + (r + 1) * (k / 16));
          const std::vector<float> y_one = run_dot(t, w, one, 0);
          for (int64_t i = 0; i < w.n; ++i) {
            double exact, s;
            exact_dot(w, a, i, r, &exact, &s);
            const double bound = static_cast<double>(k) * kEps * s;
            const size_t at = static_cast<size_t>(r * w.n + i);
            ASSERT_NEAR(y[at], exact, bound) << what(t, w, m) << " at y[" << r << "][" << i << "]";
            ASSERT_NEAR(y_ref[at], exact, bound) << "reference " << what(ref, w, m);
            ASSERT_EQ(std::memcmp(&y[at], &y_one[static_cast<size_t>(i)], 4), 0)
                << what(t, w, m) << ": row " << r << " differs when computed alone";
          }
        }
      }
    }
  }
}

// The quantized dot against the float dot of the dequantized weights with the float activations:
// |x - d q| <= d (1/2 + 128 * 2^-23) per element (x * s rounds once before the rounding to an
// integer, d = 1 / s once more), so the difference is within sum_e |w_e| d_e (1/2 + 2^-15) plus
// the kernel's own float bound.
TEST_P(OutputDotTest, QuantizedDotWithinActivationRoundingOfFloatDot) {
  const KernelTable& t = table();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  uint64_t seed = 300;
  for (bool q6 : {true, false}) {
    const int64_t block = q6 ? kQ6KBlock : kQ80Block;
    const int64_t k = 2560, m = 3;
    const Weights w = make_weights(q6, 9, k, Ranges{}, seed++);
    std::vector<float> x(static_cast<size_t>(m * k));
    for (auto& v : x) v = nd(rng);
    x[77] = 25.0f;  // an outlier channel, as final hidden states have
    Acts a;
    a.m = m;
    a.k = k;
    a.block = block;
    a.q.resize(x.size());
    a.d.resize(static_cast<size_t>(m * (k / block)));
    a.bsum.resize(static_cast<size_t>(m * (k / 16)));
    for (int64_t r = 0; r < m; ++r) {
      t.quantize_blocks(x.data() + r * k, k, block, a.q.data() + r * k,
                        a.d.data() + r * (k / block), a.bsum.data() + r * (k / 16));
    }
    const std::vector<float> y = run_dot(t, w, a, 0);
    int differ = 0;
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t i = 0; i < w.n; ++i) {
        double exact_float = 0, rounding = 0;
        for (int64_t e = 0; e < k; ++e) {
          const double we = w.value[static_cast<size_t>(i * k + e)];
          exact_float += we * x[static_cast<size_t>(r * k + e)];
          rounding += std::fabs(we) * a.d[static_cast<size_t>(r * (k / block) + e / block)] *
                      (0.5 + std::ldexp(1.0, -15));
        }
        double exact_q, s;
        exact_dot(w, a, i, r, &exact_q, &s);
        const float got = y[static_cast<size_t>(r * w.n + i)];
        ASSERT_NEAR(got, exact_float, rounding + static_cast<double>(k) * kEps * s)
            << what(t, w, m) << " at y[" << r << "][" << i << "]";
        differ += static_cast<float>(exact_float) != got;
      }
    }
    EXPECT_GT(differ, 0) << "the quantized dot equals the float dot everywhere: not quantized?";
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, OutputDotTest, ::testing::ValuesIn(available_isas()),
                         [](const auto& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

}  // namespace
}  // namespace bitnet::kernels
