#include "tools/bench-stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace bitnet::model {
namespace {

std::vector<double> sorted(std::span<const double> x) {
  std::vector<double> s(x.begin(), x.end());
  std::sort(s.begin(), s.end());
  return s;
}

// Counts of U = 0 .. m n over all C(m + n, m) orderings of m a-values and n b-values without ties.
// The largest value is an a (beating all n b-values: U - n left for the rest) or a b, so
// count(m, n) = count(m - 1, n) shifted by n + count(m, n - 1).
std::vector<double> u_counts(size_t m, size_t n) {
  // row[j] = counts for (i, j) while i runs from 0 to m.
  std::vector<std::vector<double>> row(n + 1, std::vector<double>{1.0});
  for (size_t i = 1; i <= m; ++i) {
    std::vector<std::vector<double>> next(n + 1);
    next[0] = {1.0};
    for (size_t j = 1; j <= n; ++j) {
      std::vector<double> c(i * j + 1, 0.0);
      for (size_t u = 0; u < row[j].size(); ++u) c[u + j] += row[j][u];
      for (size_t u = 0; u < next[j - 1].size(); ++u) c[u] += next[j - 1][u];
      next[j] = std::move(c);
    }
    row = std::move(next);
  }
  return row[n];
}

double exact_p_less(size_t m, size_t n, double u) {
  const std::vector<double> c = u_counts(m, n);
  double below = 0, total = 0;
  for (size_t k = 0; k < c.size(); ++k) {
    total += c[k];
    if (static_cast<double>(k) <= u + 1e-9) below += c[k];
  }
  return below / total;
}

}  // namespace

double mean(std::span<const double> x) {
  if (x.empty()) return 0;
  double s = 0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

double stddev(std::span<const double> x) {
  if (x.size() < 2) return 0;
  const double m = mean(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(x.size() - 1));
}

double median(std::span<const double> x) {
  return x.empty() ? 0 : percentile(x, 0.5);
}

double percentile(std::span<const double> x, double p) {
  if (x.empty()) throw std::invalid_argument("percentile of an empty sample");
  const std::vector<double> s = sorted(x);
  const double pos = std::clamp(p, 0.0, 1.0) * static_cast<double>(s.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, s.size() - 1);
  return s[lo] + (pos - static_cast<double>(lo)) * (s[hi] - s[lo]);
}

MannWhitney mann_whitney_less(std::span<const double> a, std::span<const double> b) {
  MannWhitney r;
  if (a.empty() || b.empty()) return r;
  bool ties = false;
  for (double x : a) {
    for (double y : b) {
      if (x > y) r.u += 1;
      if (x == y) r.u += 0.5;
    }
  }
  // Tie groups over the pooled sample, for the exactness decision and the variance correction.
  std::vector<double> pooled(a.begin(), a.end());
  pooled.insert(pooled.end(), b.begin(), b.end());
  std::sort(pooled.begin(), pooled.end());
  double tie_term = 0;
  for (size_t i = 0; i < pooled.size();) {
    size_t j = i;
    while (j < pooled.size() && pooled[j] == pooled[i]) ++j;
    const double t = static_cast<double>(j - i);
    if (t > 1) ties = true;
    tie_term += t * t * t - t;
    i = j;
  }
  const double m = static_cast<double>(a.size()), n = static_cast<double>(b.size());
  if (!ties && a.size() + b.size() <= MannWhitney::kExactLimit) {
    r.exact = true;
    r.p_less = exact_p_less(a.size(), b.size(), r.u);
    return r;
  }
  const double total = m + n;
  const double var = m * n / 12.0 * ((total + 1) - tie_term / (total * (total - 1)));
  if (var <= 0) {
    r.p_less = 1;  // every value equal: no evidence either way
    return r;
  }
  const double z = (r.u + 0.5 - m * n / 2.0) / std::sqrt(var);
  r.p_less = std::min(1.0, 0.5 * std::erfc(-z / std::sqrt(2.0)));
  return r;
}

double hodges_lehmann_ratio(std::span<const double> a, std::span<const double> b) {
  std::vector<double> r;
  for (double x : a)
    for (double y : b)
      if (y != 0) r.push_back(x / y);
  return r.empty() ? 0 : median(r);
}

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Regression:
      return "REGRESSION";
    case Verdict::NoRegression:
      return "ok";
    case Verdict::Faster:
      return "faster";
    case Verdict::TooFewReps:
      return "too few reps";
  }
  return "?";
}

RegressionCheck check_regression(std::span<const double> current, std::span<const double> baseline,
                                 double tolerance, double alpha) {
  RegressionCheck c;
  if (current.empty() || baseline.empty()) {
    c.verdict = Verdict::TooFewReps;
    return c;
  }
  c.ratio_median = median(current) / median(baseline);
  c.ratio_hl = hodges_lehmann_ratio(current, baseline);
  std::vector<double> lowered(baseline.begin(), baseline.end());
  for (double& v : lowered) v *= 1.0 - tolerance;
  const MannWhitney slower = mann_whitney_less(current, lowered);
  c.p_value = slower.p_less;
  c.exact = slower.exact;
  // The smallest p-value these sample sizes allow (complete separation, no ties).
  std::vector<double> lo(current.size()), hi(baseline.size());
  for (size_t i = 0; i < lo.size(); ++i) lo[i] = static_cast<double>(i);
  for (size_t i = 0; i < hi.size(); ++i) hi[i] = static_cast<double>(lo.size() + i);
  if (mann_whitney_less(lo, hi).p_less >= alpha) {
    c.verdict = Verdict::TooFewReps;
    return c;
  }
  if (slower.p_less < alpha) {
    c.verdict = Verdict::Regression;
    return c;
  }
  std::vector<double> raised(baseline.begin(), baseline.end());
  for (double& v : raised) v *= 1.0 + tolerance;
  c.verdict =
      mann_whitney_less(raised, current).p_less < alpha ? Verdict::Faster : Verdict::NoRegression;
  return c;
}

double theil_sen_slope(std::span<const double> x, std::span<const double> y) {
  std::vector<double> slopes;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    for (size_t j = i + 1; j < x.size() && j < y.size(); ++j)
      if (x[j] != x[i]) slopes.push_back((y[j] - y[i]) / (x[j] - x[i]));
  return slopes.empty() ? 0 : median(slopes);
}

}  // namespace bitnet::model
