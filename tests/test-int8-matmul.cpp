// The int8 output-matrix kernel (the opt-in LM head) on every ISA this CPU has: the row quantizer
// of Int8Matrix against its definition and layout formula; the matmul bit-exact against the
// scalar reference and against its definition (the integer dot computed here in 64 bits, then the
// epilogue), for every tile shape and tail, at the extremes of the codes and of K, on group ranges
// that split a matrix, and on the streamed single-row path of a matrix larger than the caches.
// Activation rows and outputs end at an inaccessible page; gaps between rows hold values that
// would show if read or written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/ternary-matmul.h"
#include "test-util.h"

namespace bitnet::kernels {
namespace {

using test::GuardedArray;

int8_t code_of(const Int8MatrixView& v, int64_t row, int64_t col) {
  const int8_t* grp = v.data + static_cast<size_t>(row / kGroupRows) * v.group_bytes;
  return grp[col / 4 * kChunkBytes + 4 * (row % kGroupRows) + col % 4];
}

// n x k matrix with codes set directly (through set_row of rows whose absmax is 127 and whose
// values are the codes, so each row's scale is exactly 1), or random float rows.
Int8Matrix coded_matrix(int64_t n, int64_t k, int lo, int hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> ud(lo, hi);
  Int8Matrix m(n, k);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    for (auto& v : row) v = static_cast<float>(ud(rng));
    row[static_cast<size_t>(i % k)] = (i % 2) ? 127.0f : -127.0f;  // absmax 127: scale 1
    m.set_row(i, row.data());
  }
  return m;
}

struct Acts {
  GuardedArray<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> sum;
  int64_t ldq;
  Acts(int64_t m, int64_t k, int64_t ldq_)
      : q(static_cast<size_t>((m - 1) * ldq_ + k), 1),
        scale(static_cast<size_t>(m)),
        sum(static_cast<size_t>(m), 0x7fffffff),  // unused by the contract: poison
        ldq(ldq_) {}
  QuantizedRows rows(int64_t m) {
    return QuantizedRows{q.data(), ldq, scale.data(), sum.data(), m};
  }
};

// Random codes and scales; rows k + 12 apart (the gaps keep the poison the kernel must not read).
constexpr int64_t kGap = 12;
void fill_acts(Acts& a, int64_t m, int64_t k, int lo, int hi, uint64_t seed) {
  const int64_t ldq = a.ldq;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> ud(lo, hi);
  std::uniform_real_distribution<float> sd(0.5f, 300.0f);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < k; ++j)
      a.q[static_cast<size_t>(r * ldq + j)] = static_cast<int8_t>(ud(rng));
    a.scale[static_cast<size_t>(r)] = sd(rng);
  }
}

// y by the definition: the exact integer dot (64-bit) and the ternary kernels' epilogue.
std::vector<float> definition(const Int8MatrixView& w, Acts& a, int64_t m) {
  std::vector<float> y(static_cast<size_t>(m * w.n));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t i = 0; i < w.n; ++i) {
      int64_t dot = 0;
      for (int64_t j = 0; j < w.k; ++j)
        dot += code_of(w, i, j) * a.q[static_cast<size_t>(r * a.ldq + j)];
      EXPECT_LE(std::llabs(dot), int64_t{std::numeric_limits<int32_t>::max()});
      y[static_cast<size_t>(r * w.n + i)] = static_cast<float>(static_cast<int32_t>(dot)) /
                                            a.scale[static_cast<size_t>(r)] * w.row_scale[i];
    }
  }
  return y;
}

constexpr float kPoison = -12345.0f;

// Runs the table's kernel over groups [g0, g1) into a guarded output with ldy = n + 3.
std::vector<float> run(const KernelTable& t, const Int8MatrixView& w, Acts& a, int64_t m,
                       int64_t g0, int64_t g1) {
  const int64_t ldy = w.n + 3;
  GuardedArray<float> y(static_cast<size_t>((m - 1) * ldy + w.n), 4);
  for (size_t i = 0; i < y.size(); ++i) y[i] = kPoison;
  t.matmul_i8(w, a.rows(m), y.data(), ldy, g0, g1);
  std::vector<float> out(static_cast<size_t>(m * w.n));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t i = 0; i < w.n; ++i)
      out[static_cast<size_t>(r * w.n + i)] = y[static_cast<size_t>(r * ldy + i)];
    for (int64_t i = w.n; r + 1 < m && i < ldy; ++i) {
      EXPECT_EQ(y[static_cast<size_t>(r * ldy + i)], kPoison) << "wrote past row " << r << " of y";
    }
  }
  return out;
}

class Int8MatmulTest : public ::testing::TestWithParam<Isa> {
 protected:
  const KernelTable& table() const { return *kernels_for(GetParam()); }
};

TEST(Int8Matrix, RowQuantizerFollowsItsDefinitionAndLayout) {
  const int64_t n = 21, k = 36;  // a partial second group; K not a multiple of 16
  Int8Matrix m(n, k);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<std::vector<float>> rows(static_cast<size_t>(n), std::vector<float>(k));
  for (auto& r : rows) {
    for (auto& v : r) v = nd(rng);
  }
  rows[1][7] = -50.0f;                              // an outlier: most codes round to 0
  std::fill(rows[2].begin(), rows[2].end(), 0.0f);  // an all-zero row
  rows[3][0] = std::nanf("");                       // NaN -> -127, skipped by the absmax
  std::fill(rows[4].begin(), rows[4].end(), 0.5f);  // ties: half to even
  rows[4][5] = 1.0f;                                // +127 and -127 at the absmax
  rows[4][6] = -1.0f;
  for (int64_t i = n - 1; i >= 0; --i) m.set_row(i, rows[static_cast<size_t>(i)].data());
  const Int8MatrixView v = m.view();
  ASSERT_EQ(v.n, n);
  ASSERT_EQ(v.k, k);
  ASSERT_EQ(v.group_bytes, static_cast<size_t>(16 * k));
  ASSERT_EQ(v.groups(), 2);
  for (int64_t i = 0; i < n; ++i) {
    const auto& x = rows[static_cast<size_t>(i)];
    float amax = 0;
    for (float e : x) amax = std::fmax(amax, std::fabs(e));
    const float s = 127.0f / std::max(amax, 1e-5f);
    EXPECT_EQ(v.row_scale[i], 1.0f / s) << "row " << i;
    int32_t sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const float e = x[static_cast<size_t>(j)];
      const int8_t want =
          std::isnan(e) ? -127
                        : static_cast<int8_t>(std::clamp(std::nearbyint(e * s), -127.0f, 127.0f));
      ASSERT_EQ(code_of(v, i, j), want) << "row " << i << " col " << j;
      sum += want;
    }
    EXPECT_EQ(v.row_sum[i], sum) << "row " << i;
  }
  EXPECT_EQ(code_of(v, 4, 5), 127);
  EXPECT_EQ(code_of(v, 4, 6), -127);
  EXPECT_EQ(code_of(v, 4, 7), 64);  // 0.5 * 127 = 63.5 -> 64 (even)
  for (int64_t i = n; i < 32; ++i) {
    EXPECT_EQ(v.row_scale[i], 0.0f);
    EXPECT_EQ(v.row_sum[i], 0);
    for (int64_t j = 0; j < k; ++j) EXPECT_EQ(code_of(v, i, j), 0) << "padding row " << i;
  }
}

TEST(Int8Matrix, RejectsShapesTheKernelsCannotTake) {
  EXPECT_THROW(Int8Matrix(0, 16), std::invalid_argument);
  EXPECT_THROW(Int8Matrix(16, 0), std::invalid_argument);
  EXPECT_THROW(Int8Matrix(16, 6), std::invalid_argument);
  EXPECT_THROW(Int8Matrix(16, kI8MaxK + 4), std::invalid_argument);
  EXPECT_NO_THROW(Int8Matrix(1, 4));
}

TEST_P(Int8MatmulTest, ExactAgainstReferenceAndDefinitionForEveryTile) {
  const KernelTable& t = table();
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  uint64_t seed = 1;
  for (int64_t k : {4, 8, 36, 256, 260, 2560}) {
    for (int64_t n : {1, 15, 16, 17, 50, 131}) {
      const Int8Matrix mat = coded_matrix(n, k, -127, 127, seed++);
      const Int8MatrixView w = mat.view();
      for (int64_t m : {1, 2, 3, 4, 5, 7, 9}) {
        Acts a(m, k, k + kGap);
        fill_acts(a, m, k, -128, 127, seed++);
        const std::string tag = std::string(isa_name(t.isa)) + " n=" + std::to_string(n) +
                                " k=" + std::to_string(k) + " m=" + std::to_string(m);
        const std::vector<float> want = definition(w, a, m);
        ASSERT_EQ(run(ref, w, a, m, 0, w.groups()), want) << tag << " (reference)";
        ASSERT_EQ(run(t, w, a, m, 0, w.groups()), want) << tag;
      }
    }
  }
}

TEST_P(Int8MatmulTest, WholeTilesOfSixteenRows) {
  // AMX's shapes (its tiles take 16 rows and K in blocks of 64, slabs of 1024): rows left over,
  // ragged K blocks copied with zero padding, partial last groups.
  const KernelTable& t = table();
  uint64_t seed = 300;
  for (int64_t k : {64, 100, 1024, 1028, 2560}) {
    for (int64_t n : {16, 17, 50, 131}) {
      const Int8Matrix mat = coded_matrix(n, k, -127, 127, seed++);
      const Int8MatrixView w = mat.view();
      for (int64_t m : {16, 17, 33, 48}) {
        Acts a(m, k, k + kGap);
        fill_acts(a, m, k, -128, 127, seed++);
        ASSERT_EQ(run(t, w, a, m, 0, w.groups()), definition(w, a, m))
            << isa_name(t.isa) << " n=" << n << " k=" << k << " m=" << m;
      }
    }
  }
}

TEST_P(Int8MatmulTest, GroupRangesWriteOnlyTheirRows) {
  const KernelTable& t = table();
  const int64_t n = 200, k = 64, m = 3;  // 13 groups, the last partial
  const Int8Matrix mat = coded_matrix(n, k, -127, 127, 7);
  const Int8MatrixView w = mat.view();
  Acts a(m, k, k + kGap);
  fill_acts(a, m, k, -128, 127, 8);
  const std::vector<float> want = definition(w, a, m);
  for (auto [g0, g1] : {std::pair<int64_t, int64_t>{0, 1}, {3, 8}, {5, 13}, {12, 13}}) {
    const std::vector<float> got = run(t, w, a, m, g0, g1);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        const bool inside = i >= g0 * kGroupRows && i < g1 * kGroupRows;
        const float v = got[static_cast<size_t>(r * n + i)];
        if (inside) {
          ASSERT_EQ(v, want[static_cast<size_t>(r * n + i)]) << "groups " << g0 << ".." << g1;
        } else {
          ASSERT_EQ(v, kPoison) << "row " << i << " outside groups " << g0 << ".." << g1;
        }
      }
    }
  }
}

// At K = kI8MaxK with every code and activation at its extreme, the integer dot (and, on
// AVX-512, the sum of (q + 128) * w) is at the edge of int32: any narrower accumulation or
// saturation shows.
TEST_P(Int8MatmulTest, ExactAtTheLargestKAndExtremeCodes) {
  const KernelTable& t = table();
  const int64_t n = 32, k = kI8MaxK, m = 16;  // a whole AMX tile
  Int8Matrix mat(n, k);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const int sign = i < 8 ? 1 : i < 16 ? -1 : ((i + j) % 2 ? 1 : -1);
      row[static_cast<size_t>(j)] = static_cast<float>(127 * sign);
    }
    mat.set_row(i, row.data());
  }
  const Int8MatrixView w = mat.view();
  Acts a(m, k, k);
  const int8_t fill[4] = {127, -128, -127, 1};
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < k; ++j) a.q[static_cast<size_t>(r * k + j)] = fill[r % 4];
    a.scale[static_cast<size_t>(r)] = 1.0f;
  }
  const std::vector<float> want = definition(w, a, m);
  EXPECT_EQ(want[0], 127.0f * 127.0f * static_cast<float>(k));
  ASSERT_EQ(run(t, w, a, m, 0, w.groups()), want) << isa_name(t.isa);
  ASSERT_EQ(run(t, w, a, 1, 0, w.groups()), std::vector<float>(want.begin(), want.begin() + n))
      << isa_name(t.isa) << " one row";
}

// One activation row over a matrix larger than kernels' streaming threshold (16 MiB per call):
// the prefetching decode path, whole and split.
TEST_P(Int8MatmulTest, StreamedSingleRowEqualsTheReference) {
  const KernelTable& t = table();
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  const int64_t n = 4200, k = 4096;  // 17.2 MB
  const Int8Matrix mat = coded_matrix(n, k, -127, 127, 21);
  const Int8MatrixView w = mat.view();
  Acts a(1, k, k);
  fill_acts(a, 1, k, -128, 127, 22);
  const std::vector<float> want = run(ref, w, a, 1, 0, w.groups());
  ASSERT_EQ(run(t, w, a, 1, 0, w.groups()), want) << isa_name(t.isa);
  std::vector<float> split(static_cast<size_t>(n));
  const int64_t mid = 131;
  const std::vector<float> lo = run(t, w, a, 1, 0, mid), hi = run(t, w, a, 1, mid, w.groups());
  for (int64_t i = 0; i < n; ++i) {
    split[static_cast<size_t>(i)] =
        i < mid * kGroupRows ? lo[static_cast<size_t>(i)] : hi[static_cast<size_t>(i)];
  }
  ASSERT_EQ(split, want) << isa_name(t.isa) << " split at group " << mid;
}

// Through the threaded driver, on a real quantized float matrix: the int8 head approximates the
// float dot within the rounding of both operands.
TEST_P(Int8MatmulTest, ApproximatesTheFloatDot) {
  const KernelTable& t = table();
  const int64_t n = 300, k = 256, m = 6;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> wf(static_cast<size_t>(n * k)), xf(static_cast<size_t>(m * k));
  for (auto& v : wf) v = nd(rng);
  for (auto& v : xf) v = nd(rng);
  Int8Matrix mat(n, k);
  for (int64_t i = 0; i < n; ++i) mat.set_row(i, wf.data() + i * k);
  std::vector<int8_t> q(static_cast<size_t>(m * k));
  std::vector<float> scale(static_cast<size_t>(m));
  std::vector<int32_t> sum(static_cast<size_t>(m));
  t.quantize(xf.data(), k, m, k, q.data(), k, scale.data(), sum.data());
  ThreadPool pool(2);
  std::vector<float> y(static_cast<size_t>(m * n));
  int8_matmul(pool, t, mat.view(), QuantizedRows{q.data(), k, scale.data(), sum.data(), m},
              y.data(), n);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      double exact = 0, mag = 0, wmax = 0, xmax = 0;
      for (int64_t j = 0; j < k; ++j) {
        exact += static_cast<double>(wf[static_cast<size_t>(i * k + j)]) *
                 xf[static_cast<size_t>(r * k + j)];
        wmax = std::max(wmax, std::fabs(static_cast<double>(wf[static_cast<size_t>(i * k + j)])));
        xmax = std::max(xmax, std::fabs(static_cast<double>(xf[static_cast<size_t>(r * k + j)])));
      }
      for (int64_t j = 0; j < k; ++j) {
        mag += 0.5 * (wmax / 127) * std::fabs(xf[static_cast<size_t>(r * k + j)]) +
               0.5 * (xmax / 127) * std::fabs(wf[static_cast<size_t>(i * k + j)]) +
               0.25 * (wmax / 127) * (xmax / 127);
      }
      ASSERT_NEAR(y[static_cast<size_t>(r * n + i)], exact, mag * 1.001 + 1e-4)
          << isa_name(t.isa) << " row " << r << " vocab " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Int8MatmulTest, ::testing::ValuesIn(available_isas()),
                         [](const auto& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

}  // namespace
}  // namespace bitnet::kernels
