// Benchmark matrix (issue 6 item 3): tokens/s of the batched session by batch x model x threads.
//
//   decode/<model>/batch:B/threads:T   one decode step of B sequences in one BatchedSession step:
//       one token each, all asking for logits (M = B rows through every linear and the LM head).
//       Prompts of 16 tokens; timed steps attend over 16..79 cached positions (BatchedDecode in
//       batched-decode.h). The greedy argmax that feeds each sequence's next token is not timed.
//   prefill/<model>/rows:B/threads:T   B prompt tokens of one sequence in one step from an empty
//       cache (M = B rows through the GEMM path; logits of the last row only).
//
// Iteration time is the BatchedSession::step call alone (manual time): the untimed work (prefill
// before decoding, rewinding every 64 steps) does not count. Counter tok_s = tokens per second of
// timed step time (B per step). Batches 1, 8, 16, 32, 64, 128; threads 1, 2.
//
// Models: dummy presets with random ternary weights (seed 0, I2_S, F16 embedding), generated at
// first use (bench-models.h: into $BITNET_BENCH_MODEL_DIR, kept for later runs, or a temporary
// directory):
//   small  = tiny-1m      (1.2 M ternary parameters, vocab 4112)
//   medium = medium-100m  (75.5 M ternary, 100 M in all, vocab 32000)
//   large  = 2b4t         (2.08 B ternary; 1.18 GB file): only with --large or
//   BITNET_BENCH_LARGE=1,
//                         because it takes minutes on 2 cores (set BITNET_BENCH_MODEL_DIR to keep
//                         the generated file)
//
// --svg FILE (ours, before the Google Benchmark flags): after the run, writes a chart of tokens/s
// against batch, one panel per model, one line per kind and thread count (the median aggregate
// when --benchmark_repetitions > 1, else each run's value).
//
//   build/bin/bench-matrix --svg docs/img/bench-matrix.svg --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "batched-decode.h"
#include "bench-models.h"
#include "kernels/ternary-matmul.h"
#include "svg-chart.h"

namespace bitnet::bench {
namespace {

const std::vector<int64_t> kBatches = {1, 8, 16, 32, 64, 128};
const std::vector<int64_t> kThreads = {1, 2};

BenchModels& models() {
  static BenchModels m;
  return m;
}

ThreadPool& pool_for(int64_t threads) {
  static std::map<int64_t, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(static_cast<int>(threads));
  return *p;
}

// Runs `Workload` (BatchedDecode or BatchedPrefill) one step per iteration.
template <class Workload>
void run_steps(benchmark::State& state, const std::string& preset) {
  const int64_t batch = state.range(0);
  Workload work(models().weights(preset), pool_for(state.range(1)), batch);
  double seconds = 0;
  int64_t steps = 0;
  for (auto _ : state) {
    const double s = work.step();
    state.SetIterationTime(s);
    seconds += s;
    ++steps;
  }
  state.counters["tok_s"] = static_cast<double>(batch * steps) / seconds;
}

void register_model(const std::string& preset) {
  benchmark::RegisterBenchmark(
      ("decode/" + preset).c_str(),
      [preset](benchmark::State& s) { run_steps<BatchedDecode>(s, preset); })
      ->ArgsProduct({kBatches, kThreads})
      ->ArgNames({"batch", "threads"})
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(
      ("prefill/" + preset).c_str(),
      [preset](benchmark::State& s) { run_steps<BatchedPrefill>(s, preset); })
      ->ArgsProduct({kBatches, kThreads})
      ->ArgNames({"rows", "threads"})
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

// ---- --svg --------------------------------------------------------------------------------------

struct Point {
  std::string kind, model;  // "decode", "tiny-1m"
  int64_t batch = 0, threads = 0;
  double tok_s = 0;
};

// "batch:8/threads:2" -> value of `key`, or -1.
int64_t arg_value(const std::string& args, const std::string& key) {
  const size_t at = args.find(key + ":");
  return at == std::string::npos ? -1 : std::atoll(args.c_str() + at + key.size() + 1);
}

// Passes every run on to the console and keeps the tok_s of the runs to plot: median aggregates
// when there are repetitions, else the single runs.
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  CollectingReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred || !r.counters.count("tok_s")) continue;
      const bool aggregate = r.run_type == Run::RT_Aggregate;
      if (aggregate && r.aggregate_name != "median") continue;
      if (!aggregate && r.repetitions > 1) continue;
      const std::string& fn = r.run_name.function_name;  // "decode/tiny-1m"
      const size_t slash = fn.find('/');
      Point p{fn.substr(0, slash), fn.substr(slash + 1), arg_value(r.run_name.args, "batch"),
              arg_value(r.run_name.args, "threads"), r.counters.at("tok_s").value};
      if (p.batch < 0) p.batch = arg_value(r.run_name.args, "rows");
      points.push_back(p);
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::vector<Point> points;
};

std::string matrix_svg(const std::vector<Point>& points) {
  std::vector<ChartPanel> panels;
  for (const Point& p : points) {
    auto panel = std::find_if(panels.begin(), panels.end(),
                              [&](const ChartPanel& c) { return c.title == p.model; });
    if (panel == panels.end()) panel = panels.insert(panels.end(), ChartPanel{p.model, {}});
    const std::string label =
        p.kind + ", " + std::to_string(p.threads) + " thread" + (p.threads == 1 ? "" : "s");
    auto series = std::find_if(panel->series.begin(), panel->series.end(),
                               [&](const ChartSeries& s) { return s.label == label; });
    if (series == panel->series.end()) {
      series = panel->series.insert(
          panel->series.end(),
          ChartSeries{label, {}, p.kind != "decode", static_cast<int>(p.threads - 1)});
    }
    series->points.emplace_back(static_cast<double>(p.batch), p.tok_s);
  }
  const std::string title =
      std::string("bench-matrix: tokens/s by batch, kernels ") +
      kernels::isa_name(kernels::active_kernels().isa) +
      "\ndecode: one BatchedSession step of B sequences, one token each (solid); prefill: B prompt"
      "\ntokens of one sequence in one step (dashed). Dummy models, random ternary weights.";
  return line_chart_svg(title, "batch (sequences per decode step, rows per prefill step)",
                        "tokens/s", panels);
}

}  // namespace
}  // namespace bitnet::bench

int main(int argc, char** argv) {
  using namespace bitnet::bench;
  std::string svg_path;
  bool large = false;
  if (const char* env = std::getenv("BITNET_BENCH_LARGE")) large = std::strcmp(env, "1") == 0;
  // Our flags are removed before Google Benchmark reads the rest.
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--svg") == 0 && i + 1 < argc) {
      svg_path = argv[++i];
    } else if (std::strcmp(argv[i], "--large") == 0) {
      large = true;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::AddCustomContext("kernels",
                              bitnet::kernels::isa_name(bitnet::kernels::active_kernels().isa));
  for (const char* preset : {"tiny-1m", "medium-100m"}) register_model(preset);
  if (large) register_model("2b4t");
  try {
    if (svg_path.empty()) {
      benchmark::RunSpecifiedBenchmarks();
    } else {
      CollectingReporter reporter;
      benchmark::RunSpecifiedBenchmarks(&reporter);
      std::ofstream f(svg_path);
      f << matrix_svg(reporter.points);
      if (!f) throw std::runtime_error(svg_path + ": cannot write the chart");
      std::fprintf(stderr, "bench-matrix: wrote %s\n", svg_path.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-matrix: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
