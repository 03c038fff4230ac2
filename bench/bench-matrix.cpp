// Benchmark matrix (issue 6 item 3): tokens/s of the batched session by batch x model x threads.
//
//   decode/<model>/batch:B/threads:T   one decode step of B sequences in one Session step:
//       one token each, all asking for logits (M = B rows through every linear and the LM head).
//       Prompts of 16 tokens; timed steps attend over 16..79 cached positions (BatchedDecode in
//       batched-decode.h). The greedy argmax that feeds each sequence's next token is not timed.
//   prefill/<model>/rows:B/threads:T   B prompt tokens of one sequence in one step from an empty
//       cache (M = B rows through the GEMM path; logits of the last row only).
//
// Iteration time is the Session::step call alone (manual time): the untimed work (prefill
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
// --svg OUT --svg-from RESULTS.json... : the same chart from saved results of this program
// (--benchmark_out=RESULTS.json --benchmark_out_format=json), merged (a point in a later file
// replaces the same point of an earlier one), without running anything: e.g. parts run
// separately with --benchmark_filter when the machine was quiet.
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

#include <nlohmann/json.hpp>

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

Point make_point(const std::string& function_name, const std::string& args, double tok_s) {
  const size_t slash = function_name.find('/');  // "decode/tiny-1m"
  Point p{function_name.substr(0, slash), function_name.substr(slash + 1), arg_value(args, "batch"),
          arg_value(args, "threads"), tok_s};
  if (p.batch < 0) p.batch = arg_value(args, "rows");
  return p;
}

// The points of a Google Benchmark JSON output of this program (--benchmark_out=FILE
// --benchmark_out_format=json): median aggregates, or single runs without repetitions.
std::vector<Point> points_from_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot be opened");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not JSON: " + e.what());
  }
  std::vector<Point> out;
  for (const auto& b : j.value("benchmarks", nlohmann::json::array())) {
    if (!b.contains("tok_s") || !b.contains("run_name") || b.value("error_occurred", false))
      continue;
    const bool aggregate = b.value("run_type", "") == "aggregate";
    if (aggregate && b.value("aggregate_name", "") != "median") continue;
    if (!aggregate && b.value("repetitions", 1) > 1) continue;
    // run_name: "decode/tiny-1m/batch:8/threads:2/manual_time"
    const std::string rn = b["run_name"].get<std::string>();
    const size_t args_at = rn.find('/', rn.find('/') + 1);
    if (args_at == std::string::npos) continue;
    out.push_back(
        make_point(rn.substr(0, args_at), rn.substr(args_at + 1), b["tok_s"].get<double>()));
  }
  if (out.empty()) throw std::runtime_error(path + ": no bench-matrix results with tok_s");
  return out;
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
      const Point p =
          make_point(r.run_name.function_name, r.run_name.args, r.counters.at("tok_s").value);
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
    // A later result for the same point (a rerun in a later file) replaces the earlier one.
    const double x = static_cast<double>(p.batch);
    auto same = std::find_if(series->points.begin(), series->points.end(),
                             [&](const auto& q) { return q.first == x; });
    if (same != series->points.end())
      same->second = p.tok_s;
    else
      series->points.emplace_back(x, p.tok_s);
  }
  const std::string title =
      std::string("bench-matrix: tokens/s by batch, kernels ") +
      kernels::isa_name(kernels::active_kernels().isa) +
      "\ndecode: one Session step of B sequences, one token each (solid); prefill: B prompt"
      "\ntokens of one sequence in one step (dashed). Dummy models, random ternary weights.";
  return line_chart_svg(title, "batch (sequences per decode step, rows per prefill step)",
                        "tokens/s", panels);
}

void write_svg(const std::string& path, const std::vector<Point>& points) {
  std::ofstream f(path);
  f << matrix_svg(points);
  if (!f) throw std::runtime_error(path + ": cannot write the chart");
  std::fprintf(stderr, "bench-matrix: wrote %s\n", path.c_str());
}

}  // namespace
}  // namespace bitnet::bench

int main(int argc, char** argv) {
  using namespace bitnet::bench;
  std::string svg_path;
  std::vector<std::string> svg_from;
  bool large = false;
  if (const char* env = std::getenv("BITNET_BENCH_LARGE")) large = std::strcmp(env, "1") == 0;
  // Our flags are removed before Google Benchmark reads the rest.
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--svg") == 0 && i + 1 < argc) {
      svg_path = argv[++i];
    } else if (std::strcmp(argv[i], "--svg-from") == 0 && i + 1 < argc) {
      svg_from.push_back(argv[++i]);
    } else if (std::strcmp(argv[i], "--large") == 0) {
      large = true;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  if (!svg_from.empty()) {  // chart from saved results, nothing is run
    if (svg_path.empty() || argc > 1) {
      std::fprintf(stderr, "usage: bench-matrix --svg OUT.svg --svg-from RESULTS.json...\n");
      return 2;
    }
    try {
      std::vector<Point> points;
      for (const std::string& f : svg_from) {
        const auto p = points_from_json(f);
        points.insert(points.end(), p.begin(), p.end());
      }
      write_svg(svg_path, points);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench-matrix: %s\n", e.what());
      return 1;
    }
    return 0;
  }
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
      write_svg(svg_path, reporter.points);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-matrix: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
