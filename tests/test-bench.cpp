// bitnet bench: statistics on fixed data with hand-computed answers, the regression detector on
// synthetic samples (quiet on identical distributions, loud on a 10% slowdown), target checks,
// the JSON round trip, and an end-to-end bench of a generated tiny-1m model. No timing is
// asserted: the end-to-end test checks that the numbers are well-formed, not how fast they are.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tools/bench-compare.h"
#include "tools/bench-plot.h"
#include "tools/bench-stats.h"
#include "tools/bench.h"
#include "tools/dummy-model.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;

TEST(BenchStats, SummariesOnKnownData) {
  const std::vector<double> x{2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(mean(x), 5.0);
  EXPECT_NEAR(stddev(x), 2.1380899352993950, 1e-12);  // sqrt(32 / 7)
  EXPECT_DOUBLE_EQ(median(x), 4.5);
  const std::vector<double> five{5, 1, 4, 2, 3};  // unsorted on purpose
  EXPECT_DOUBLE_EQ(percentile(five, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(five, 0.5), 3.0);
  EXPECT_DOUBLE_EQ(percentile(five, 0.95), 4.8);   // 1 + 0.95 * 4 -> between 4 and 5
  EXPECT_DOUBLE_EQ(percentile(five, 0.99), 4.96);  // position 3.96
  EXPECT_DOUBLE_EQ(percentile(five, 1.0), 5.0);
  EXPECT_DOUBLE_EQ(percentile(std::vector<double>{10, 20}, 0.25), 12.5);
  EXPECT_THROW(percentile(std::vector<double>{}, 0.5), std::invalid_argument);
  EXPECT_DOUBLE_EQ(stddev(std::vector<double>{3}), 0.0);
}

// Null distribution of U for 3 vs 3 (20 orderings): counts 1 1 2 3 3 3 3 2 1 1 for U = 0..9.
TEST(BenchStats, MannWhitneyExactSmallSamples) {
  auto mw = [](std::vector<double> a, std::vector<double> b) { return mann_whitney_less(a, b); };
  MannWhitney r = mw({1, 2, 3}, {4, 5, 6});
  EXPECT_DOUBLE_EQ(r.u, 0);
  EXPECT_TRUE(r.exact);
  EXPECT_DOUBLE_EQ(r.p_less, 1.0 / 20);
  r = mw({1, 2, 4}, {3, 5, 6});
  EXPECT_DOUBLE_EQ(r.u, 1);
  EXPECT_DOUBLE_EQ(r.p_less, 2.0 / 20);
  r = mw({1, 3, 4}, {2, 5, 6});
  EXPECT_DOUBLE_EQ(r.u, 2);
  EXPECT_DOUBLE_EQ(r.p_less, 4.0 / 20);
  r = mw({4, 5, 6}, {1, 2, 3});
  EXPECT_DOUBLE_EQ(r.u, 9);
  EXPECT_DOUBLE_EQ(r.p_less, 1.0);
  // 5 vs 5 completely separated: 1 / C(10, 5).
  r = mw({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10});
  EXPECT_DOUBLE_EQ(r.p_less, 1.0 / 252);
  // Unequal sizes, 2 vs 4: C(6, 2) = 15 orderings; U = 0 once, U = 1 once.
  r = mw({1, 3}, {2, 4, 5, 6});
  EXPECT_DOUBLE_EQ(r.u, 1);
  EXPECT_DOUBLE_EQ(r.p_less, 2.0 / 15);
}

TEST(BenchStats, MannWhitneyNormalApproximationWithTies) {
  // U = 1 (two 2-vs-2 ties count 0.5 each). Ties {1,1}, {2,2,2}, {3,3,3}: sum(t^3 - t) = 54, so
  // var = 16/12 * (9 - 54/56) = 10.7142857; z = (1 + 0.5 - 8) / sqrt(var) = -1.98578.
  const MannWhitney r =
      mann_whitney_less(std::vector<double>{1, 1, 2, 2}, std::vector<double>{2, 3, 3, 3});
  EXPECT_DOUBLE_EQ(r.u, 1.0);
  EXPECT_FALSE(r.exact);
  EXPECT_NEAR(r.p_less, 0.0235287231, 1e-8);
  // All equal: no evidence.
  EXPECT_DOUBLE_EQ(mann_whitney_less(std::vector<double>{1, 1}, std::vector<double>{1, 1}).p_less,
                   1.0);
}

TEST(BenchStats, HodgesLehmannAndTheilSen) {
  // Pairwise ratios of {2, 4} / {1, 2}: 2, 1, 4, 2 -> median 2.
  EXPECT_DOUBLE_EQ(hodges_lehmann_ratio(std::vector<double>{2, 4}, std::vector<double>{1, 2}), 2.0);
  // y = 2x + 1 with one wild point: the median of pairwise slopes ignores it.
  const std::vector<double> x{0, 1, 2, 3, 4, 5}, y{1, 3, 5, 70, 9, 11};
  EXPECT_DOUBLE_EQ(theil_sen_slope(x, y), 2.0);
  EXPECT_DOUBLE_EQ(theil_sen_slope(std::vector<double>{1}, std::vector<double>{1}), 0.0);
}

// Throughput samples around `level` with uniform +-3% noise (the spread of repeated tiny-model
// runs on this VM in its stable state).
std::vector<double> samples(std::mt19937& rng, double level, int n) {
  std::uniform_real_distribution<double> u(-0.03, 0.03);
  std::vector<double> s;
  for (int i = 0; i < n; ++i) s.push_back(level * (1 + u(rng)));
  return s;
}

TEST(BenchStats, DetectorQuietOnIdenticalDistributions) {
  std::mt19937 rng(7);
  int regressions = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const auto base = samples(rng, 100, 5), cur = samples(rng, 100, 5);
    const RegressionCheck c = check_regression(cur, base);
    if (c.verdict == Verdict::Regression) ++regressions;
    EXPECT_NE(c.verdict, Verdict::TooFewReps);
  }
  EXPECT_EQ(regressions, 0);
  // The very same samples: ratio 1; against 0.95 x themselves U = 15 of 25, p = 183/252.
  const std::vector<double> s{10, 11, 12, 13, 14};
  const RegressionCheck same = check_regression(s, s);
  EXPECT_EQ(same.verdict, Verdict::NoRegression);
  EXPECT_DOUBLE_EQ(same.ratio_median, 1.0);
  EXPECT_DOUBLE_EQ(same.p_value, 183.0 / 252);  // counted by enumerating all 252 orderings
}

TEST(BenchStats, DetectorCatchesTenPercentSlowdown) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const auto base = samples(rng, 100, 5), cur = samples(rng, 90, 5);
    const RegressionCheck c = check_regression(cur, base);
    EXPECT_EQ(c.verdict, Verdict::Regression) << "trial " << trial << " p " << c.p_value;
    EXPECT_NEAR(c.ratio_median, 0.9, 0.06);
  }
  // 3% slower is inside the 5% tolerance: not a regression.
  const RegressionCheck small =
      check_regression(std::vector<double>{97, 97.1, 97.2, 97.3, 97.4},
                       std::vector<double>{100, 100.1, 100.2, 100.3, 100.4});
  EXPECT_EQ(small.verdict, Verdict::NoRegression);
  // 20% faster.
  EXPECT_EQ(check_regression(std::vector<double>{120, 121, 122, 123, 124},
                             std::vector<double>{100, 101, 102, 103, 104})
                .verdict,
            Verdict::Faster);
  // 2 vs 2 cannot reach p < 0.05 whatever the data (smallest p = 1/6).
  EXPECT_EQ(check_regression(std::vector<double>{50, 51}, std::vector<double>{100, 101}).verdict,
            Verdict::TooFewReps);
}

BenchReport fixed_report() {
  BenchReport r;
  r.tool_version = "0.1.0";
  r.timestamp = "2026-11-24T05:00:00Z";
  r.machine = {"Test CPU", 2, "avx512", "t1", "F16"};
  r.model_path = "/x/model.gguf";
  r.model_name = "tiny";
  r.ternary_params = 1000;
  r.params.n_prompt = {128};
  r.params.n_gen = {32};
  r.params.threads = {1};
  r.params.reps = 3;
  BenchResult pp;
  pp.kind = "pp";
  pp.n_tokens = 128;
  pp.threads = 1;
  pp.tokens_per_second = {100, 110, 120};
  pp.ttft_ms = {1.5, 1.25, 1.0};
  pp.peak_rss_bytes = 50'000'000;
  pp.ops_per_token = 2000;
  pp.int8_peak_ops = 1e9;
  BenchResult tg;
  tg.kind = "tg";
  tg.n_tokens = 32;
  tg.threads = 1;
  tg.tokens_per_second = {10, 11, 12};
  tg.ttft_ms = {0.5, 0.5, 0.75};
  tg.step_ms = {1, 2, 3, 4, 100};
  tg.peak_rss_bytes = 50'000'000;
  tg.bytes_per_token = 1e6;
  tg.read_bytes_per_second = 44e6;
  r.results = {pp, tg};
  return r;
}

TEST(BenchResults, DerivedFigures) {
  const BenchReport r = fixed_report();
  const BenchResult& pp = r.results[0];
  const BenchResult& tg = r.results[1];
  EXPECT_EQ(pp.name(), "pp128/t1");
  EXPECT_EQ(tg.name(), "tg32/t1");
  EXPECT_DOUBLE_EQ(pp.median_tps(), 110);
  EXPECT_DOUBLE_EQ(pp.sd_tps(), 10);
  EXPECT_DOUBLE_EQ(pp.median_ttft_ms(), 1.25);
  EXPECT_DOUBLE_EQ(pp.roofline_percent(), 100.0 * 2000 * 110 / 1e9);
  EXPECT_DOUBLE_EQ(tg.roofline_percent(), 25.0);  // 1 MB x 11 t/s / 44 MB/s
  EXPECT_DOUBLE_EQ(tg.mean_latency_ms(), 22);
  EXPECT_DOUBLE_EQ(tg.latency_ms(0.5), 3);
  EXPECT_DOUBLE_EQ(tg.latency_ms(0.99), 96.16);
  EXPECT_DOUBLE_EQ(pp.latency_ms(0.99), 0);  // no decode steps in a pp test
}

TEST(BenchResults, MeetsTargets) {
  const BenchReport r = fixed_report();
  Targets t;
  t["pp128"].min_prompt_tps = 105;        // median 110: met
  t["tg32/t1"].min_gen_tps = 12;          // median 11: missed
  t["tg32/t1"].max_mean_latency_ms = 30;  // 22: met
  t["tg32/t1"].max_p99_latency_ms = 50;   // 96.16: missed
  EXPECT_EQ(meets_targets(r, t).size(), 1u + 1u);
  t["*"].max_peak_rss_mb = 40;  // 50 MB in both tests
  t["tg999"].min_gen_tps = 1;   // no such test
  const auto miss = meets_targets(r, t);
  ASSERT_EQ(miss.size(), 5u);
  std::vector<std::string> what;
  for (const auto& m : miss) what.push_back(m.test + " " + m.what);
  EXPECT_NE(std::find(what.begin(), what.end(), "tg32/t1 min_gen_tps"), what.end());
  EXPECT_NE(std::find(what.begin(), what.end(), "tg32/t1 max_p99_latency_ms"), what.end());
  EXPECT_NE(std::find(what.begin(), what.end(), "pp128/t1 max_peak_rss_mb"), what.end());
  EXPECT_NE(std::find(what.begin(), what.end(), "tg32/t1 max_peak_rss_mb"), what.end());
  EXPECT_NE(std::find(what.begin(), what.end(), "tg999 no such test"), what.end());
  // Generation limits do not apply to pp tests, nor prompt limits to tg tests.
  Targets cross;
  cross["pp128"].min_gen_tps = 1e9;
  cross["tg32"].min_prompt_tps = 1e9;
  EXPECT_TRUE(meets_targets(r, cross).empty());

  const Targets parsed = targets_from_json(nlohmann::json::parse(
      R"({"tg32/t1": {"min_gen_tps": 12, "max_p99_latency_ms": 50}, "pp128": {"min_prompt_tps": 105}})"));
  EXPECT_EQ(meets_targets(r, parsed).size(), 2u);
  EXPECT_THROW(targets_from_json(nlohmann::json::parse(R"({"tg32": {"min_gen_tp": 1}})")),
               std::invalid_argument);
  EXPECT_THROW(targets_from_json(nlohmann::json::parse(R"({"tg32": {"min_gen_tps": "1"}})")),
               std::invalid_argument);
}

TEST(BenchResults, JsonRoundTrip) {
  const BenchReport r = fixed_report();
  const std::string text = to_json(r).dump();
  const BenchReport back = report_from_json(nlohmann::json::parse(text));
  EXPECT_EQ(to_json(back).dump(), text);
  ASSERT_EQ(back.results.size(), 2u);
  EXPECT_EQ(back.results[1].step_ms, r.results[1].step_ms);
  EXPECT_EQ(back.machine.cpu, "Test CPU");

  nlohmann::json broken = nlohmann::json::parse(text);
  broken["results"][1].erase("tokens_per_second");
  try {
    report_from_json(broken);
    FAIL() << "a missing field must throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("results[1]: missing field 'tokens_per_second'"),
              std::string::npos)
        << e.what();
  }
}

TEST(BenchResults, SetupDifferencesNameWhatDiffers) {
  const BenchReport r = fixed_report();
  EXPECT_TRUE(setup_differences(r, r).empty());
  BenchReport other = r;
  other.model_name = "2b4t";
  other.params.kv = KvType::F32;
  other.machine.isa = "avx2";
  const auto d = setup_differences(r, other);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0],
            "model: tiny (1000 ternary parameters) now, 2b4t (1000 ternary parameters) in "
            "the baseline");
  EXPECT_EQ(d[1], "KV type: f16 now, f32 in the baseline");
  EXPECT_EQ(d[2], "kernels: avx512 now, avx2 in the baseline");
  BenchReport plan = r;
  plan.params.fused_norm_quant = false;
  ASSERT_EQ(setup_differences(r, plan).size(), 1u);
  EXPECT_NE(setup_differences(r, plan)[0].find("execution plan"), std::string::npos);
}

TEST(BenchResults, CompareHistoryAndPlot) {
  const BenchReport r = fixed_report();
  const auto same = compare_reports(r, r);
  ASSERT_EQ(same.size(), 2u);
  EXPECT_FALSE(any_regression(same));
  // 3 vs 3 separated: smallest p = 1/20 is not below 0.05, so too few reps to decide.
  BenchReport slow = r;
  for (double& v : slow.results[1].tokens_per_second) v *= 0.5;
  const auto cmp = compare_reports(slow, r);
  EXPECT_EQ(cmp[1].check.verdict, Verdict::TooFewReps);
  EXPECT_FALSE(any_regression(cmp));
  slow.results[1].tokens_per_second = {5, 5.1, 5.2, 5.3, 5.4};
  BenchReport base = r;
  base.results[1].tokens_per_second = {10, 10.1, 10.2, 10.3, 10.4};
  EXPECT_TRUE(any_regression(compare_reports(slow, base)));

  const fs::path dir =
      fs::temp_directory_path() / ("bitnet-bench-history-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string p1 = append_history(dir.string(), base);
  const std::string p2 = append_history(dir.string(), slow);  // same timestamp: suffixed
  EXPECT_NE(p1, p2);
  const auto runs = load_history(dir.string());
  ASSERT_EQ(runs.size(), 2u);
  const auto trends = history_trends(runs);
  ASSERT_EQ(trends.size(), 2u);
  EXPECT_EQ(trends[1].test, "tg32/t1");
  EXPECT_EQ(trends[1].runs, 2);
  EXPECT_DOUBLE_EQ(trends[1].last_vs_median, 5.2 / 10.2);
  EXPECT_LT(trends[1].slope_percent_per_run, 0);

  const std::string svg = bench_svg(slow, runs, &base);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("pp128"), std::string::npos);
  EXPECT_NE(svg.find("tg32/t1"), std::string::npos);  // history legend
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  fs::remove_all(dir);
}

TEST(BenchRun, TinyModelEndToEnd) {
  const fs::path path =
      fs::temp_directory_path() / ("bitnet-bench-tiny-" + std::to_string(::getpid()) + ".gguf");
  write_dummy_model(find_dummy_preset("tiny-1m"), DummyOptions{}, path.string());
  LoadOptions lo;
  lo.cache = CacheMode::Off;
  const auto weights = ModelWeights::load(path.string(), lo);
  BenchParams p;
  p.n_prompt = {16, 40};
  p.n_gen = {8};
  p.threads = {1, 2};
  p.reps = 2;
  p.max_batch = 16;  // 40 prompt tokens in three chunks
  std::vector<std::string> seen;
  const BenchReport r =
      run_bench(*weights, path.string(), p, [&](const std::string& t) { seen.push_back(t); });
  fs::remove(path);
  const std::vector<std::string> names{"pp16/t1", "pp40/t1", "tg8/t1",
                                       "pp16/t2", "pp40/t2", "tg8/t2"};
  EXPECT_EQ(seen, names);
  ASSERT_EQ(r.results.size(), names.size());
  EXPECT_EQ(r.ternary_params, ternary_parameter_count(weights->config()));
  for (size_t i = 0; i < names.size(); ++i) {
    const BenchResult& b = r.results[i];
    SCOPED_TRACE(b.name());
    EXPECT_EQ(b.name(), names[i]);
    ASSERT_EQ(b.tokens_per_second.size(), 2u);
    ASSERT_EQ(b.ttft_ms.size(), 2u);
    for (double v : b.tokens_per_second) EXPECT_GT(v, 0);
    EXPECT_GT(b.median_ttft_ms(), 0);
    EXPECT_GT(b.peak_rss_bytes, 0u);
    EXPECT_GT(b.roofline_percent(), 0);
    if (b.kind == "tg") {
      ASSERT_EQ(b.step_ms.size(), 16u);  // 8 steps x 2 repetitions, warm-up excluded
      EXPECT_GT(b.latency_ms(0.5), 0);
      EXPECT_LE(b.latency_ms(0.5), b.latency_ms(0.95));
      EXPECT_LE(b.latency_ms(0.95), b.latency_ms(0.99));
      EXPECT_GT(b.read_bytes_per_second, 0);
      // At least the packed linears (1.6 bits per weight in T1) are read per token.
      EXPECT_GT(b.bytes_per_token, static_cast<double>(r.ternary_params) * 1.58 / 8);
      EXPECT_EQ(b.ops_per_token, 0);
    } else {
      EXPECT_TRUE(b.step_ms.empty());
      EXPECT_DOUBLE_EQ(b.ops_per_token, 2.0 * static_cast<double>(r.ternary_params));
      EXPECT_GT(b.int8_peak_ops, 0);
    }
  }
  // The context check names the model and the limit.
  BenchParams too_long = p;
  too_long.n_prompt = {weights->config().n_ctx_train + 1};
  EXPECT_THROW(run_bench(*weights, path.string(), too_long), std::invalid_argument);
  BenchParams no_reps = p;
  no_reps.reps = 0;
  EXPECT_THROW(run_bench(*weights, path.string(), no_reps), std::invalid_argument);
}

}  // namespace
}  // namespace bitnet::model
