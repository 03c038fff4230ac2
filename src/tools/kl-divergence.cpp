#include "tools/kl-divergence.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace bitnet::model {

double log_sum_exp(const float* logits, int64_t n) {
  assert(n >= 1);
  double mx = logits[0];
  for (int64_t v = 1; v < n; ++v) mx = std::max(mx, static_cast<double>(logits[v]));
  if (std::isnan(mx) || std::isinf(mx)) return mx;  // all -inf, or a +inf logit
  double sum = 0;
  for (int64_t v = 0; v < n; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  return mx + std::log(sum);  // NaN when any logit is NaN
}

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t v = 1; v < n; ++v) {
    if (logits[v] > logits[best]) best = v;
  }
  return static_cast<int32_t>(best);
}

PositionComparison compare_position(const float* base, const float* test, int64_t n_vocab,
                                    int32_t next) {
  assert(next >= 0 && next < n_vocab);
  const double lse_p = log_sum_exp(base, n_vocab);
  const double lse_q = log_sum_exp(test, n_vocab);
  double kl = 0;
  for (int64_t v = 0; v < n_vocab; ++v) {
    const double log_p = static_cast<double>(base[v]) - lse_p;
    const double p = std::exp(log_p);
    if (p == 0) continue;
    kl += p * (log_p - (static_cast<double>(test[v]) - lse_q));
  }
  PositionComparison c;
  c.kl = kl;
  c.top1_base = argmax(base, n_vocab);
  c.top1_test = argmax(test, n_vocab);
  c.nll_base = lse_p - static_cast<double>(base[next]);
  c.nll_test = lse_q - static_cast<double>(test[next]);
  return c;
}

double quantile(std::vector<double> values, double p) {
  if (values.empty()) throw std::invalid_argument("quantile of no values");
  if (!(p >= 0 && p <= 1)) throw std::invalid_argument("quantile: p must be in [0, 1]");
  std::sort(values.begin(), values.end());
  const double h = static_cast<double>(values.size() - 1) * p;
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= values.size()) return values.back();
  return values[lo] + (h - static_cast<double>(lo)) * (values[lo + 1] - values[lo]);
}

KlSummary summarize(std::span<const PositionComparison> positions) {
  if (positions.empty()) throw std::invalid_argument("no positions to summarize");
  KlSummary s;
  s.positions = static_cast<int64_t>(positions.size());
  std::vector<double> kl;
  kl.reserve(positions.size());
  double kl_sum = 0, nll_base = 0, nll_test = 0;
  s.kl_max = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < positions.size(); ++i) {
    const PositionComparison& c = positions[i];
    kl.push_back(c.kl);
    kl_sum += c.kl;
    if (c.kl > s.kl_max) {
      s.kl_max = c.kl;
      s.kl_max_index = static_cast<int64_t>(i);
    }
    if (c.top1_base == c.top1_test) ++s.top1_same;
    nll_base += c.nll_base;
    nll_test += c.nll_test;
  }
  const double n = static_cast<double>(positions.size());
  s.kl_mean = kl_sum / n;
  s.kl_median = quantile(kl, 0.5);
  s.kl_p99 = quantile(std::move(kl), 0.99);
  s.top1_agreement = static_cast<double>(s.top1_same) / n;
  s.ppl_base = std::exp(nll_base / n);
  s.ppl_test = std::exp(nll_test / n);
  return s;
}

}  // namespace bitnet::model
