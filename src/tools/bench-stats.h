// Statistics for `bitnet bench`: summaries of repeated timings, the Mann-Whitney U test that
// decides regressions against a baseline, and the Theil-Sen slope that summarizes a history.
//
// Why Mann-Whitney: wall times on this shared VM are skewed and drift between states (see
// docs/PERFORMANCE.md), so a test on ranks, which assumes no distribution, fits better than a
// t-test; with 5 repetitions per side its exact one-sided p-value can reach 1/252, enough to
// decide at alpha = 0.05 (2 per side cannot: the smallest p is then 1/6).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bitnet::model {

double mean(std::span<const double> x);
double stddev(std::span<const double> x);  // sample standard deviation (n - 1); 0 when n < 2
double median(std::span<const double> x);
// Linear interpolation between order statistics (Hyndman-Fan type 7, numpy's default):
// position (n - 1) p of the sorted values, p in [0, 1]. Throws std::invalid_argument on empty x.
double percentile(std::span<const double> x, double p);

struct MannWhitney {
  double u = 0;        // U of sample a: #{a_i > b_j} + 0.5 #{a_i == b_j}
  double p_less = 1;   // one-sided p-value for "a tends to be smaller than b"
  bool exact = false;  // exact null distribution (no ties, n_a + n_b <= kExactLimit)
  static constexpr size_t kExactLimit = 60;
};

// Exact p from the null distribution of U counted over all C(n_a + n_b, n_a) rank assignments
// when there are no ties and the samples are small; otherwise the normal approximation with tie
// correction of the variance and a continuity correction of 0.5.
MannWhitney mann_whitney_less(std::span<const double> a, std::span<const double> b);

// Hodges-Lehmann estimate of the ratio a / b: the median of all pairwise ratios a_i / b_j.
double hodges_lehmann_ratio(std::span<const double> a, std::span<const double> b);

enum class Verdict { Regression, NoRegression, Faster, TooFewReps };
const char* verdict_name(Verdict v);

struct RegressionCheck {
  double ratio_median = 0;  // median(current) / median(baseline)
  double ratio_hl = 0;      // Hodges-Lehmann ratio, a robust estimate of the same thing
  double p_value = 1;       // of "current < (1 - tolerance) x baseline"
  bool exact = false;
  Verdict verdict = Verdict::NoRegression;
};

// Throughputs (higher is better) of the current run against a baseline. Regression when the
// current samples are, with one-sided Mann-Whitney p < alpha, smaller than the baseline samples
// scaled by (1 - tolerance): the test asks "slower by more than tolerance", not "slower at all".
// Faster when the mirror test (baseline scaled by 1 + tolerance below current) is significant.
// TooFewReps when even perfect separation could not reach alpha (e.g. 2 vs 2 samples).
RegressionCheck check_regression(std::span<const double> current, std::span<const double> baseline,
                                 double tolerance = 0.05, double alpha = 0.05);

// Theil-Sen slope of y over x: the median of the pairwise slopes (y_j - y_i) / (x_j - x_i).
// 0 with fewer than two points.
double theil_sen_slope(std::span<const double> x, std::span<const double> y);

}  // namespace bitnet::model
