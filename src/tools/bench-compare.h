// Comparing `bitnet bench` results over time: a run against a baseline (per test, the
// Mann-Whitney decision of bench-stats.h) and a run against a history directory of earlier runs.
#pragma once

#include <string>
#include <vector>

#include "tools/bench-stats.h"
#include "tools/bench.h"

namespace bitnet::model {

struct TestComparison {
  std::string test;  // "tg128/t2"
  double baseline_median_tps = 0, current_median_tps = 0;
  RegressionCheck check;
  bool in_baseline = true;  // false: the baseline has no such test (nothing decided)
};

// Per test of `current` (its order): throughput samples against the same test of `baseline`.
std::vector<TestComparison> compare_reports(const BenchReport& current, const BenchReport& baseline,
                                            double tolerance = 0.05, double alpha = 0.05);
bool any_regression(const std::vector<TestComparison>& comparisons);

// What differs between the setups of two runs, so that a comparison of their speeds would not
// compare like with like: the model (name, or path and size), the KV type, the kernels, the
// weight layout, the CPU, the execution-plan switches, the prefill chunk and the tg prompt
// length. Each entry reads "KV type: f16 now, f32 in the baseline". Empty: comparable. Thread
// counts are part of each test's name, so tests with other counts simply do not pair up.
std::vector<std::string> setup_differences(const BenchReport& current, const BenchReport& baseline);

// History directory: one file per run, bench-<UTC timestamp>.json (a --json result), so a
// directory listing sorted by name is in time order. Returns the path written; a second run in the
// same second gets a _002, _003... suffix. Creates the directory.
std::string append_history(const std::string& dir, const BenchReport& report);
// Every bench-*.json of dir in name (time) order; throws std::invalid_argument naming the file
// that does not parse.
std::vector<BenchReport> load_history(const std::string& dir);

struct Trend {
  std::string test;
  int runs = 0;                      // runs holding this test (the current one included)
  std::vector<double> medians;       // median t/s per run, oldest first
  double slope_percent_per_run = 0;  // Theil-Sen slope over run index, % of the runs' median
  double last_vs_median = 0;         // last run's median / median of the earlier runs' medians
};

// For each test of the last run, its series across `runs` (oldest first, last = current).
std::vector<Trend> history_trends(const std::vector<BenchReport>& runs);

}  // namespace bitnet::model
