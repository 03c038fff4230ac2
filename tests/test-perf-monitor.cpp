// PerfMonitor (core/perf-monitor.h): totals, per-step rows, the ring of the last steps, a null
// monitor costs nothing and records nothing, and the JSON summary is well formed.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <sstream>
#include <string>

#include "core/perf-monitor.h"

namespace bitnet {
namespace {

// The monitor knows no operation of its own: a test enumeration and its names.
enum class Op : uint8_t { Embed, Norm, MatmulQkv, Attention, LmHead, Sampling };
constexpr std::array<std::string_view, 6> kNames = {"embed",     "norm",    "matmul_qkv",
                                                    "attention", "lm_head", "sampling"};

TEST(PerfMonitor, TotalsCallsAndSteps) {
  PerfMonitor m(kNames, 8, 1.0);
  m.add(Op::MatmulQkv, 100);
  m.add(Op::MatmulQkv, 50);
  m.add(Op::Attention, 7);
  m.end_step(3);
  m.add(Op::MatmulQkv, 20);
  m.end_step(1);
  EXPECT_EQ(m.total_ticks(Op::MatmulQkv), 170);
  EXPECT_EQ(m.calls(Op::MatmulQkv), 3);
  EXPECT_EQ(m.calls(Op::LmHead), 0);
  EXPECT_EQ(m.steps(), 2);
  EXPECT_EQ(m.tokens(), 4);
  ASSERT_EQ(m.series_size(), 2u);
  EXPECT_EQ(m.series_ticks(0, Op::MatmulQkv), 150);
  EXPECT_EQ(m.series_ticks(0, Op::Attention), 7);
  EXPECT_EQ(m.series_ticks(1, Op::MatmulQkv), 20);
  EXPECT_EQ(m.series_ticks(1, Op::Attention), 0);
  EXPECT_THROW((void)m.series_ticks(2, Op::Norm), std::out_of_range);
}

TEST(PerfMonitor, RingKeepsTheLastStepsOldestFirst) {
  PerfMonitor m(kNames, 3, 1.0);
  for (int s = 1; s <= 5; ++s) {
    m.add(Op::Norm, s);
    m.end_step(1);
  }
  ASSERT_EQ(m.series_size(), 3u);
  EXPECT_EQ(m.series_ticks(0, Op::Norm), 3);
  EXPECT_EQ(m.series_ticks(2, Op::Norm), 5);
  EXPECT_EQ(m.total_ticks(Op::Norm), 15);  // totals cover every step
  m.reset();
  EXPECT_EQ(m.steps(), 0);
  EXPECT_EQ(m.series_size(), 0u);
  EXPECT_EQ(m.total_ticks(Op::Norm), 0);
}

TEST(PerfMonitor, ScopeTimesIntoItsOperationAndNullIsOff) {
  PerfMonitor m(kNames);
  {
    PerfScope s(&m, Op::Sampling);
    volatile double x = 0;
    for (int i = 0; i < 10000; ++i) x = x + i;
  }
  { PerfScope s(nullptr, Op::Sampling); }
  EXPECT_EQ(m.calls(Op::Sampling), 1);
  EXPECT_GT(m.total_ticks(Op::Sampling), 0);
  EXPECT_GT(m.total_ns(Op::Sampling), 0.0);
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
  PerfMonitor m(kNames, 4, 1.0);
  m.add(Op::LmHead, 3000);
  m.add(Op::Embed, 1000);
  m.end_step(1);
  std::ostringstream out;
  m.write_json(out, true);
  const std::string j = out.str();
  EXPECT_NE(j.find("\"lm_head\": {\"calls\": 1, \"total_ms\": 0.003, \"share\": 0.75"),
            std::string::npos)
      << j;
  EXPECT_NE(j.find("\"series\": {\"embed\": [1], \"lm_head\": [3]}"), std::string::npos) << j;
  EXPECT_EQ(j.find("attention"), std::string::npos) << j;
  EXPECT_EQ(m.ops(), kNames.size());
  EXPECT_EQ(m.name(Op::Attention), "attention");
  EXPECT_EQ(m.name(size_t{40}), "?");
}

TEST(PerfMonitor, TooManyOperationsAreRefusedAndUnknownIdsReadZero) {
  std::array<std::string_view, PerfMonitor::kMaxOps + 1> many{};
  EXPECT_THROW(PerfMonitor{many}, std::invalid_argument);
  PerfMonitor m(kNames, 2, 1.0);
  m.end_step(1);
  EXPECT_EQ(m.calls(size_t{31}), 0);
  EXPECT_EQ(m.total_ticks(size_t{31}), 0);
  EXPECT_THROW((void)m.series_ticks(0, size_t{31}), std::out_of_range);
}

}  // namespace
}  // namespace bitnet
