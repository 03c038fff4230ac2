// Wall-clock helpers for the CLI's speed summaries (benchmarks proper use Google Benchmark).
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace bitnet {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median wall time of `reps` calls of f (after one untimed warm-up call).
template <class F>
double median_seconds(int reps, F&& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace bitnet
