// Every matmul kernel on every ISA this CPU has, against the dense scalar oracle: bit-exact, over
// edge shapes (below, at and above the 16-row group, the 16/20-wide K chunks and the row tiles),
// with every buffer ending at an inaccessible page and poison around the outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/ternary-common.h"
#include "kernels/ternary-matmul.h"
#include "test-util.h"

namespace bitnet::kernels {
namespace {

using test::GuardedArray;

struct Problem {
  int64_t m, n, k;
  std::vector<int8_t> w;     // [n][k] ternary
  std::vector<float> scale;  // [n]
  std::vector<int8_t> q;     // [m][k]
  std::vector<float> act_scale;
  std::vector<int32_t> act_sum;

  Problem(int64_t m_, int64_t n_, int64_t k_, uint64_t seed) : m(m_), n(n_), k(k_) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> tern(-1, 1), i8(-128, 127);
    std::uniform_real_distribution<float> sc(0.5f, 1.5f);
    w.resize(static_cast<size_t>(n * k));
    for (auto& v : w) v = static_cast<int8_t>(tern(rng));
    scale.resize(static_cast<size_t>(n));
    for (auto& v : scale) v = sc(rng);
    q.resize(static_cast<size_t>(m * k));
    act_scale.resize(static_cast<size_t>(m));
    act_sum.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      int32_t s = 0;
      for (int64_t j = 0; j < k; ++j) {
        // Mostly full-range codes, with the extremes -128/127 present in every row.
        int v = i8(rng);
        if (j == 0) v = -128;
        if (j == 1) v = 127;
        q[i * k + j] = static_cast<int8_t>(v);
        s += v;
      }
      act_sum[i] = s;
      act_scale[i] = 127.0f / sc(rng);
    }
  }

  std::vector<float> expected() const {
    std::vector<float> y(static_cast<size_t>(m * n));
    QuantizedRows a{q.data(), k, act_scale.data(), act_sum.data(), m};
    dense_matmul_ref(w.data(), scale.data(), n, k, a, y.data(), n);
    return y;
  }
};

// Runs `table` on a copy of everything in guarded memory and checks it against the oracle.
void check_kernel(const KernelTable& table, TernaryLayout layout, const Problem& p, int threads) {
  const TernaryMatrix packed = pack_ternary(layout, p.w.data(), p.n, p.k, p.scale.data());
  const TernaryMatrixView pv = packed.view();
  GuardedArray<uint8_t> wdata(pv.group_bytes * static_cast<size_t>(pv.groups()));
  std::memcpy(wdata.data(), pv.data, wdata.size());
  GuardedArray<float> wscale(static_cast<size_t>(pv.groups()) * kGroupRows);
  std::memcpy(wscale.data(), pv.row_scale, wscale.size() * sizeof(float));
  TernaryMatrixView v = pv;
  v.data = wdata.data();
  v.row_scale = wscale.data();

  GuardedArray<int8_t> q(p.q.size(), 1);
  std::memcpy(q.data(), p.q.data(), p.q.size());
  GuardedArray<float> as(p.act_scale.size(), 4);
  std::memcpy(as.data(), p.act_scale.data(), as.size() * sizeof(float));
  GuardedArray<int32_t> sum(p.act_sum.size(), 4);
  std::memcpy(sum.data(), p.act_sum.data(), sum.size() * sizeof(int32_t));
  const QuantizedRows a{q.data(), p.k, as.data(), sum.data(), p.m};

  const int64_t ldy = p.n + 3;  // a gap after each row that must stay untouched
  GuardedArray<float> y(static_cast<size_t>(p.m * ldy), 4);
  const float poison = std::nanf("0x5a5a");
  for (size_t i = 0; i < y.size(); ++i) y[i] = poison;

  ThreadPool pool(threads);
  ternary_matmul(pool, table, v, a, y.data(), ldy);

  const std::vector<float> want = p.expected();
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < ldy; ++j) {
      const float got = y[static_cast<size_t>(i * ldy + j)];
      if (j < p.n) {
        const float exp = want[static_cast<size_t>(i * p.n + j)];
        ASSERT_EQ(std::memcmp(&got, &exp, sizeof got), 0)
            << isa_name(table.isa) << " " << layout_name(layout) << " M=" << p.m << " N=" << p.n
            << " K=" << p.k << " threads=" << threads << " at y[" << i << "][" << j << "]: got "
            << got << ", want " << exp;
      } else {
        ASSERT_EQ(std::memcmp(&got, &poison, sizeof got), 0)
            << isa_name(table.isa) << " wrote past N at y[" << i << "][" << j << "]";
      }
    }
  }
}

class MatmulTest : public ::testing::TestWithParam<std::tuple<Isa, TernaryLayout>> {
 protected:
  const KernelTable& table() const { return *kernels_for(std::get<0>(GetParam())); }
  TernaryLayout layout() const { return std::get<1>(GetParam()); }
};

TEST_P(MatmulTest, EdgeShapes) {
  const int64_t ks[] = {16, 32, 48, 64, 80, 96, 160, 176, 256};
  const int64_t ns[] = {1, 15, 16, 17, 33};
  // Row tiles: 4 (AVX-VNNI) and 8 (AVX-512), up to 12 in equal parts
  // (narrow accumulation: 13 = 7 + 6, 25 = 9 + 8 + 8).
  const int64_t ms[] = {1, 2, 3, 4, 5, 8, 9, 12, 13, 17, 25};
  uint64_t seed = 1;
  for (int64_t k : ks)
    for (int64_t n : ns)
      for (int64_t m : ms) check_kernel(table(), layout(), Problem(m, n, k, seed++), 1);
}

TEST_P(MatmulTest, ModelShapesAndThreads) {
  // 2B4T widths (K 2560 and 6912: 6912 % 80 = 32, so T1 uses two 4-trit chunks) and
  // bitnet_b1_58-3B's 3200, with N not a multiple of the group.
  const int64_t shapes[][3] = {{1, 40, 2560},  {3, 24, 6912},  {1, 17, 3200},  {9, 33, 2560},
                               {30, 20, 6912}, {32, 48, 2560}, {50, 33, 6912}, {64, 80, 3200}};
  for (const auto& s : shapes) {
    for (int threads = 1; threads <= 4; ++threads) {
      check_kernel(table(), layout(), Problem(s[0], s[1], s[2], 100 + threads), threads);
    }
  }
}

TEST_P(MatmulTest, WholeTilesOfSixteenRows) {
  // AMX's shapes: row counts at and around its 16-row tiles (blocks of one or two, rows left to
  // the AVX-512 kernel), K over and between its 64-wide blocks and 1024-wide decoded slabs, N with
  // an odd number of groups and a partial last group; one and two threads (ranges that start at
  // an odd group).
  const int64_t ks[] = {64, 80, 1024, 1040, 2112};
  const int64_t ns[] = {16, 17, 48, 65};
  const int64_t ms[] = {16, 31, 32, 48, 80};
  uint64_t seed = 500;
  for (int64_t k : ks)
    for (int64_t n : ns)
      for (int64_t m : ms) {
        const int threads = static_cast<int>(1 + seed % 2);
        check_kernel(table(), layout(), Problem(m, n, k, seed++), threads);
      }
}

TEST_P(MatmulTest, ExtremeValuesAtLargeK) {
  // K = 20576: 1028 five-trit chunks (past the linear T1 decoder's 1024-chunk fold) plus one
  // four-trit chunk. All-extreme weights and activations give the largest accumulator magnitudes.
  // The 16-bit sums of narrow accumulation reach -32768 exactly (64 pair sums of -512) at every
  // widening: K = 20576 spans many of them in both layouts.
  const int64_t k = 20576;
  // M = 1 takes the decode (GEMV) paths, M > 1 the tiled ones; 80 = three blocks of AMX's
  // activation rows at this K (32 + 32 + 16: about 1 MiB of codes each).
  for (int64_t m : {1, 2, 13, 80}) {
    for (int wv : {1, -1, 0}) {
      for (int qv : {-128, 127}) {
        Problem p(m, 17, k, 9);
        for (auto& v : p.w) v = static_cast<int8_t>(wv);
        for (int64_t i = 0; i < p.m; ++i) {
          for (int64_t j = 0; j < k; ++j)
            p.q[static_cast<size_t>(i * k + j)] = static_cast<int8_t>(qv);
          p.act_sum[static_cast<size_t>(i)] = qv * static_cast<int32_t>(k);
        }
        check_kernel(table(), layout(), p, 2);
      }
    }
  }
}

std::string param_name(const ::testing::TestParamInfo<MatmulTest::ParamType>& info) {
  return std::string(isa_name(std::get<0>(info.param))) + "_" +
         layout_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllIsas, MatmulTest,
                         ::testing::Combine(::testing::ValuesIn(available_isas()),
                                            ::testing::Values(TernaryLayout::T2,
                                                              TernaryLayout::T1)),
                         param_name);

// ------------------------------------------------------------------------------ packing

TEST(TernaryPack, RoundTripAllLayouts) {
  for (TernaryLayout layout : {TernaryLayout::T2, TernaryLayout::T1}) {
    for (int64_t k : {16, 80, 96, 2560, 6912}) {
      const Problem p(1, 35, k, static_cast<uint64_t>(k));
      const TernaryMatrix packed = pack_ternary(layout, p.w.data(), p.n, p.k, p.scale.data());
      std::vector<int8_t> back(p.w.size());
      unpack_ternary(packed.view(), back.data());
      EXPECT_EQ(back, p.w) << layout_name(layout) << " K=" << k;
      for (int64_t r = 0; r < 48; ++r) {
        EXPECT_EQ(packed.view().row_scale[r], r < p.n ? p.scale[r] : 0.0f);
      }
    }
  }
}

TEST(TernaryPack, T1DigitsDecodeForEveryByteValue) {
  // All 243 five-trit combinations survive encode/decode.
  for (unsigned v = 0; v < 243; ++v) {
    uint8_t d[5] = {static_cast<uint8_t>(v / 81), static_cast<uint8_t>(v / 27 % 3),
                    static_cast<uint8_t>(v / 9 % 3), static_cast<uint8_t>(v / 3 % 3),
                    static_cast<uint8_t>(v % 3)};
    const uint8_t byte = common::t1_encode(d);
    for (int n = 0; n < 5; ++n) ASSERT_EQ(common::t1_digit(byte, n), d[n]) << "v=" << v;
  }
}

TEST(TernaryPack, BitsPerWeight) {
  EXPECT_DOUBLE_EQ(layout_bits_per_weight(TernaryLayout::T2, 2560), 2.0);
  EXPECT_DOUBLE_EQ(layout_bits_per_weight(TernaryLayout::T1, 2560), 1.6);
  // 6912 = 80 * 86 + 32: 344 five-trit chunks and 2 four-trit chunks per group.
  EXPECT_NEAR(layout_bits_per_weight(TernaryLayout::T1, 6912), 8.0 * 346 * 64 / (16 * 6912), 1e-12);
}

TEST(TernaryPack, RejectsBadInput) {
  std::vector<int8_t> w(16 * 32, 0);
  std::vector<float> s(16, 1.0f);
  w[5 * 32 + 7] = 2;
  try {
    pack_ternary(TernaryLayout::T2, w.data(), 16, 32, s.data());
    FAIL() << "a non-ternary value was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("row 5, column 7"), std::string::npos) << e.what();
  }
  w[5 * 32 + 7] = 0;
  EXPECT_THROW(pack_ternary(TernaryLayout::T2, w.data(), 16, 24, s.data()), std::invalid_argument);
  EXPECT_THROW(pack_ternary(TernaryLayout::T1, w.data(), 0, 32, s.data()), std::invalid_argument);
}

}  // namespace
}  // namespace bitnet::kernels
