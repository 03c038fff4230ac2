// `bitnet bench --plot`: a dependency-free SVG of a bench run. One panel per test kind (pp, tg):
// median tokens/s per size, one bar per thread count, whiskers at +- one standard deviation. With a
// history, a further panel: each test's median per run relative to the baseline (or, without one,
// to the test's first run), with the 5% regression tolerance drawn.
#pragma once

#include <string>
#include <vector>

#include "tools/bench.h"

namespace bitnet::model {

// baseline may be null; history is oldest first and may be empty (no history panel then).
std::string bench_svg(const BenchReport& report, const std::vector<BenchReport>& history,
                      const BenchReport* baseline);

}  // namespace bitnet::model
