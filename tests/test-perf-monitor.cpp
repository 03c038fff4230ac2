// PerfMonitor (core/perf-monitor.h): totals, per-step rows, the ring of the last steps, a null
// monitor costs nothing and records nothing, and the JSON summary is well formed.
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>

#include "core/perf-monitor.h"

namespace bitnet {
namespace {

TEST(PerfMonitor, TotalsCallsAndSteps) {
  PerfMonitor m(8, 1.0);
  m.add(PerfOp::MatmulQkv, 100);
  m.add(PerfOp::MatmulQkv, 50);
  m.add(PerfOp::Attention, 7);
  m.end_step(3);
  m.add(PerfOp::MatmulQkv, 20);
  m.end_step(1);
  EXPECT_EQ(m.total_ticks(PerfOp::MatmulQkv), 170);
  EXPECT_EQ(m.calls(PerfOp::MatmulQkv), 3);
  EXPECT_EQ(m.calls(PerfOp::LmHead), 0);
  EXPECT_EQ(m.steps(), 2);
  EXPECT_EQ(m.tokens(), 4);
  ASSERT_EQ(m.series_size(), 2u);
  EXPECT_EQ(m.series_ticks(0, PerfOp::MatmulQkv), 150);
  EXPECT_EQ(m.series_ticks(0, PerfOp::Attention), 7);
  EXPECT_EQ(m.series_ticks(1, PerfOp::MatmulQkv), 20);
  EXPECT_EQ(m.series_ticks(1, PerfOp::Attention), 0);
  EXPECT_THROW((void)m.series_ticks(2, PerfOp::Norm), std::out_of_range);
}

TEST(PerfMonitor, RingKeepsTheLastStepsOldestFirst) {
  PerfMonitor m(3, 1.0);
  for (int s = 1; s <= 5; ++s) {
    m.add(PerfOp::Norm, s);
    m.end_step(1);
  }
  ASSERT_EQ(m.series_size(), 3u);
  EXPECT_EQ(m.series_ticks(0, PerfOp::Norm), 3);
  EXPECT_EQ(m.series_ticks(2, PerfOp::Norm), 5);
  EXPECT_EQ(m.total_ticks(PerfOp::Norm), 15);  // totals cover every step
  m.reset();
  EXPECT_EQ(m.steps(), 0);
  EXPECT_EQ(m.series_size(), 0u);
  EXPECT_EQ(m.total_ticks(PerfOp::Norm), 0);
}

TEST(PerfMonitor, ScopeTimesIntoItsOperationAndNullIsOff) {
  PerfMonitor m;
  {
    PerfScope s(&m, PerfOp::Sampling);
    volatile double x = 0;
    for (int i = 0; i < 10000; ++i) x = x + i;
  }
  { PerfScope s(nullptr, PerfOp::Sampling); }
  EXPECT_EQ(m.calls(PerfOp::Sampling), 1);
  EXPECT_GT(m.total_ticks(PerfOp::Sampling), 0);
  EXPECT_GT(m.total_ns(PerfOp::Sampling), 0.0);
}

// The tick rate agrees with the monotonic clock over a longer interval (a loose bound: this is a
// shared VM; the point is the unit, not the precision).
TEST(PerfMonitor, TicksConvertToNanoseconds) {
  const double rate = perf_ns_per_tick();
  ASSERT_GT(rate, 0.0);
  const auto c0 = std::chrono::steady_clock::now();
  const int64_t t0 = perf_ticks();
  while (std::chrono::steady_clock::now() - c0 < std::chrono::milliseconds(50)) {
  }
  const double ns = static_cast<double>(perf_ticks() - t0) * rate;
  const double want =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - c0).count();
  EXPECT_NEAR(ns / want, 1.0, 0.2);
}

TEST(PerfMonitor, JsonNamesOnlyRecordedOperations) {
  PerfMonitor m(4, 1.0);
  m.add(PerfOp::LmHead, 3000);
  m.add(PerfOp::Embed, 1000);
  m.end_step(1);
  std::ostringstream out;
  m.write_json(out, true);
  const std::string j = out.str();
  EXPECT_NE(j.find("\"lm_head\": {\"calls\": 1, \"total_ms\": 0.003, \"share\": 0.75"),
            std::string::npos)
      << j;
  EXPECT_NE(j.find("\"series\": {\"embed\": [1], \"lm_head\": [3]}"), std::string::npos) << j;
  EXPECT_EQ(j.find("attention"), std::string::npos) << j;
  for (size_t i = 0; i < PerfMonitor::kOps; ++i) {
    EXPECT_NE(perf_op_name(static_cast<PerfOp>(i)), "?");
  }
}

}  // namespace
}  // namespace bitnet
