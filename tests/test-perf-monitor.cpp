// PerfMonitor (core/perf-monitor.h): totals, per-step rows, the ring of the last steps, a null
// monitor costs nothing and records nothing, and the JSON summary is well formed.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "core/perf-monitor.h"

namespace bitnet {
namespace {

TEST(PerfMonitor, TotalsCallsAndSteps) {
  PerfMonitor m(8);
  m.add(PerfOp::MatmulQkv, 100);
  m.add(PerfOp::MatmulQkv, 50);
  m.add(PerfOp::Attention, 7);
  m.end_step(3);
  m.add(PerfOp::MatmulQkv, 20);
  m.end_step(1);
  EXPECT_EQ(m.total_ns(PerfOp::MatmulQkv), 170);
  EXPECT_EQ(m.calls(PerfOp::MatmulQkv), 3);
  EXPECT_EQ(m.calls(PerfOp::LmHead), 0);
  EXPECT_EQ(m.steps(), 2);
  EXPECT_EQ(m.tokens(), 4);
  ASSERT_EQ(m.series_size(), 2u);
  EXPECT_EQ(m.series_ns(0, PerfOp::MatmulQkv), 150);
  EXPECT_EQ(m.series_ns(0, PerfOp::Attention), 7);
  EXPECT_EQ(m.series_ns(1, PerfOp::MatmulQkv), 20);
  EXPECT_EQ(m.series_ns(1, PerfOp::Attention), 0);
  EXPECT_THROW((void)m.series_ns(2, PerfOp::Norm), std::out_of_range);
}

TEST(PerfMonitor, RingKeepsTheLastStepsOldestFirst) {
  PerfMonitor m(3);
  for (int s = 1; s <= 5; ++s) {
    m.add(PerfOp::Norm, s);
    m.end_step(1);
  }
  ASSERT_EQ(m.series_size(), 3u);
  EXPECT_EQ(m.series_ns(0, PerfOp::Norm), 3);
  EXPECT_EQ(m.series_ns(2, PerfOp::Norm), 5);
  EXPECT_EQ(m.total_ns(PerfOp::Norm), 15);  // totals cover every step
  m.reset();
  EXPECT_EQ(m.steps(), 0);
  EXPECT_EQ(m.series_size(), 0u);
  EXPECT_EQ(m.total_ns(PerfOp::Norm), 0);
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
  EXPECT_GT(m.total_ns(PerfOp::Sampling), 0);
}

TEST(PerfMonitor, JsonNamesOnlyRecordedOperations) {
  PerfMonitor m(4);
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
