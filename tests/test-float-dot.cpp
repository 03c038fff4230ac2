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

// Prefill attention over a page run of cached rows: the scores are dot_f16 / dot_f32 of every
// pair bit for bit (whatever nq; F16 rows equal to F32 rows give equal results), the values equal
// axpy_f16 applied row by row, and both stay within the float bound of the double result. The
// rows end at a guard page (stride > d leaves a gap that must not matter).
TEST_P(FloatDotTest, AttentionRunsMatchTheSingleRowKernels) {
  const KernelTable& t = *kernels_for(GetParam());
  const KernelTable& ref = *kernels_for(Isa::Scalar);
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float eps = std::numeric_limits<float>::epsilon();
  for (int64_t d : {1, 8, 31, 64, 128}) {
    for (int64_t nq : {1, 2, 3, 4, 5, 9}) {
      for (int64_t n : {0, 1, 5, 17}) {
        const int64_t stride = d + 3, ldq = d + 1, lds = n + 2, ldo = d + 5;
        const size_t cells = static_cast<size_t>(n > 0 ? (n - 1) * stride + d : 0);
        test::GuardedArray<uint16_t> kh(cells, 2);
        test::GuardedArray<float> kf(cells, 4);
        for (size_t i = 0; i < cells; ++i) {
          kh[i] = fp32_to_fp16(nd(rng));
          kf[i] = fp16_to_fp32(kh[i]);
        }
        std::vector<float> q(static_cast<size_t>(nq * ldq));
        for (auto& v : q) v = nd(rng);
        std::vector<float> s16(static_cast<size_t>(nq * lds), -7.0f), s32 = s16, sref = s16;
        t.attn_scores_f16(kh.data(), stride, n, q.data(), ldq, nq, d, s16.data(), lds);
        t.attn_scores_f32(kf.data(), stride, n, q.data(), ldq, nq, d, s32.data(), lds);
        ref.attn_scores_f16(kh.data(), stride, n, q.data(), ldq, nq, d, sref.data(), lds);
        for (int64_t i = 0; i < nq; ++i) {
          for (int64_t j = 0; j < lds; ++j) {
            const size_t at = static_cast<size_t>(i * lds + j);
            if (j >= n) {
              ASSERT_EQ(s16[at], -7.0f) << "scores wrote past n";
              continue;
            }
            const uint16_t* row = kh.data() + j * stride;
            const float want = t.dot_f16(row, q.data() + i * ldq, d);
            ASSERT_EQ(s16[at], want)
                << isa_name(t.isa) << " d=" << d << " nq=" << nq << " " << i << "," << j;
            ASSERT_EQ(s32[at], want) << isa_name(t.isa) << " F32 rows, d=" << d;
            double mag = 0;
            for (int64_t e = 0; e < d; ++e) {
              mag += std::fabs(static_cast<double>(kf[static_cast<size_t>(j * stride + e)]) *
                               q[static_cast<size_t>(i * ldq + e)]);
            }
            ASSERT_NEAR(s16[at], sref[at], 2.0 * static_cast<double>(d) * eps * mag);
          }
        }

        std::vector<float> p(static_cast<size_t>(nq * lds));
        for (auto& v : p) v = nd(rng);
        std::vector<float> o16(static_cast<size_t>(nq * ldo));
        for (auto& v : o16) v = nd(rng);
        std::vector<float> o32 = o16, oaxpy = o16, oref = o16;
        t.attn_values_f16(p.data(), lds, nq, kh.data(), stride, n, d, o16.data(), ldo);
        t.attn_values_f32(p.data(), lds, nq, kf.data(), stride, n, d, o32.data(), ldo);
        ref.attn_values_f16(p.data(), lds, nq, kh.data(), stride, n, d, oref.data(), ldo);
        for (int64_t i = 0; i < nq; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            t.axpy_f16(p[static_cast<size_t>(i * lds + j)], kh.data() + j * stride,
                       oaxpy.data() + i * ldo, d);
          }
        }
        for (int64_t i = 0; i < nq; ++i) {
          for (int64_t e = 0; e < ldo; ++e) {
            const size_t at = static_cast<size_t>(i * ldo + e);
            ASSERT_EQ(o16[at], oaxpy[at]) << isa_name(t.isa) << " values d=" << d << " nq=" << nq
                                          << " n=" << n << " at " << i << "," << e;
            ASSERT_EQ(o32[at], o16[at]) << isa_name(t.isa) << " F32 values";
            if (e >= d) continue;
            // n + 1 roundings, each within eps of the running magnitude.
            double mag = std::fabs(static_cast<double>(oaxpy[at]));
            for (int64_t j = 0; j < n; ++j) {
              mag += std::fabs(static_cast<double>(p[static_cast<size_t>(i * lds + j)]) *
                               kf[static_cast<size_t>(j * stride + e)]);
            }
            ASSERT_NEAR(o16[at], oref[at], 2.0 * static_cast<double>(n + 1) * eps * mag);
          }
        }
      }
    }
  }
}

// A decode row over a matrix larger than the caches takes the streaming path (the next tiles
// prefetched, kernels-simd.cpp's kHeadStreamBytes): its logits are bit-identical to the same row's
// in a two-row call, which never streams, for F16 and F32 matrices ending at a guard page.
TEST_P(FloatDotTest, StreamedDecodeHeadEqualsTheTiledOne) {
  const KernelTable& t = *kernels_for(GetParam());
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t k = 2560, ws = k + 16, ldx = k;
  for (const bool f16 : {true, false}) {
    const int64_t nv = f16 ? 3501 : 1751;  // 17.9 MB: over the 16 MiB streaming threshold
    test::GuardedArray<uint16_t> w16(static_cast<size_t>(f16 ? (nv - 1) * ws + k : 1), 2);
    test::GuardedArray<float> w32(static_cast<size_t>(f16 ? 1 : (nv - 1) * ws + k), 4);
    for (size_t i = 0; i < w16.size(); ++i) w16[i] = fp32_to_fp16(nd(rng));
    for (size_t i = 0; i < w32.size(); ++i) w32[i] = nd(rng);
    std::vector<float> x(static_cast<size_t>(2 * ldx));
    for (auto& v : x) v = nd(rng);
    std::vector<float> one(static_cast<size_t>(nv), -3.0f), two(static_cast<size_t>(2 * nv), -3.0f);
    if (f16) {
      t.dot_f16_tile(w16.data(), ws, nv, x.data(), ldx, 1, k, one.data(), nv);
      t.dot_f16_tile(w16.data(), ws, nv, x.data(), ldx, 2, k, two.data(), nv);
    } else {
      t.dot_f32_tile(w32.data(), ws, nv, x.data(), ldx, 1, k, one.data(), nv);
      t.dot_f32_tile(w32.data(), ws, nv, x.data(), ldx, 2, k, two.data(), nv);
    }
    for (int64_t v = 0; v < nv; ++v) {
      ASSERT_EQ(one[static_cast<size_t>(v)], two[static_cast<size_t>(v)])
          << isa_name(t.isa) << (f16 ? " F16" : " F32") << " matrix row " << v;
    }
  }
}

// The F16 LM head over a step's rows: within the float bound of the double result, and each row's
// logits bit-identical whether computed alone, with the other rows, or for a subset of the
// matrix rows (the register tiles differ; the per-pair arithmetic must not). The matrix ends at a
// guard page; y has a gap after each row that must stay untouched.
TEST_P(FloatDotTest, F16TileRowsAreIndependentOfTheirTile) {
  const KernelTable& t = *kernels_for(GetParam());
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float eps = std::numeric_limits<float>::epsilon();
  for (int64_t k : {1, 9, 64, 256, 300}) {
    for (int64_t nv : {1, 3, 4, 5, 8, 9, 37}) {
      const int64_t ws = k + 2, nr = 7, ldx = k + 1, ldy = nv + 3;
      test::GuardedArray<uint16_t> w(static_cast<size_t>((nv - 1) * ws + k), 2);
      for (size_t i = 0; i < w.size(); ++i) w[i] = fp32_to_fp16(nd(rng));
      std::vector<float> x(static_cast<size_t>(nr * ldx));
      for (auto& v : x) v = nd(rng);
      std::vector<float> all(static_cast<size_t>(nr * ldy), -3.0f), all32 = all;
      t.dot_f16_tile(w.data(), ws, nv, x.data(), ldx, nr, k, all.data(), ldy);
      std::vector<float> w32(w.size());
      for (size_t i = 0; i < w.size(); ++i) w32[i] = fp16_to_fp32(w[i]);
      t.dot_f32_tile(w32.data(), ws, nv, x.data(), ldx, nr, k, all32.data(), ldy);
      ASSERT_EQ(all32, all) << isa_name(t.isa) << ": F32 rows of equal values, k=" << k;
      for (int64_t r = 0; r < nr; ++r) {
        for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{3}}) {  // row r first in a tile of m
          if (r + m > nr) continue;
          std::vector<float> part(static_cast<size_t>(m * ldy), -3.0f);
          t.dot_f16_tile(w.data(), ws, nv, x.data() + r * ldx, ldx, m, k, part.data(), ldy);
          for (int64_t v = 0; v < ldy; ++v) {
            ASSERT_EQ(part[static_cast<size_t>(v)], all[static_cast<size_t>(r * ldy + v)])
                << isa_name(t.isa) << " k=" << k << " nv=" << nv << " row " << r << " in " << m
                << " at " << v;
          }
        }
        for (int64_t v = 0; v < nv; ++v) {
          double exact = 0, mag = 0;
          for (int64_t e = 0; e < k; ++e) {
            const double p = static_cast<double>(fp16_to_fp32(w[static_cast<size_t>(v * ws + e)])) *
                             x[static_cast<size_t>(r * ldx + e)];
            exact += p;
            mag += std::fabs(p);
          }
          ASSERT_NEAR(all[static_cast<size_t>(r * ldy + v)], exact,
                      static_cast<double>(k) * eps * mag)
              << isa_name(t.isa) << " k=" << k << " nv=" << nv;
        }
        for (int64_t v = nv; v < ldy; ++v) ASSERT_EQ(all[static_cast<size_t>(r * ldy + v)], -3.0f);
      }
      // A subset of the matrix rows gives the same logits for them.
      if (nv > 2) {
        std::vector<float> sub(static_cast<size_t>(nr * ldy), -3.0f);
        t.dot_f16_tile(w.data() + ws, ws, nv - 2, x.data(), ldx, nr, k, sub.data(), ldy);
        for (int64_t r = 0; r < nr; ++r) {
          for (int64_t v = 0; v < nv - 2; ++v) {
            ASSERT_EQ(sub[static_cast<size_t>(r * ldy + v)],
                      all[static_cast<size_t>(r * ldy + v + 1)]);
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, FloatDotTest, ::testing::ValuesIn(available_isas()),
                         [](const auto& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

}  // namespace
}  // namespace bitnet::kernels
