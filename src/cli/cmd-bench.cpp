// bitnet bench: prompt and generation speed of a model with latency percentiles, peak memory and
// ratios to this machine's limits measured in the same run (model/bench.h); target checks,
// regression detection against a baseline, a history with its trend, and an SVG plot.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "tools/bench-compare.h"
#include "tools/bench-plot.h"
#include "tools/bench.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "bench -m MODEL [-p 128,512] [-n 32,128] [-t 1,2] [-r REPS] [-b BATCH] [--json|--md]\n"
    "      [--targets FILE] [--compare BASELINE.json] [--history DIR] [--plot OUT.svg]\n"
    "      [--gen-prompt N] [--seed S] [--no-limits] [--kv f16|f32] [--layout t1|t2] [--no-cache]\n"
    "      [--no-fuse] [--split-linears] [--fusion-gains]";

constexpr const char* kOptions =
    "  -m, --model FILE      the model (required)\n"
    "  -p, --n-prompt LIST   prompt-processing tests, tokens (default 128,512; 0: none)\n"
    "  -n, --n-gen LIST      generation tests, tokens (default 32,128; 0: none)\n"
    "  -t, --threads LIST    thread counts (default 1,2)\n"
    "  -r, --repetitions N   repetitions per test (default 5)\n"
    "  -b, --batch-size N    prefill chunk (default 256)\n"
    "  --gen-prompt N        prompt tokens before a tg test's decode steps (default 16)\n"
    "  --seed S              prompt token seed (default 1234)\n"
    "  --no-limits           skip the paired bandwidth / int8-peak probes\n"
    "  --json | --md         JSON (stdout) or a Markdown table instead of the text table\n"
    "  --targets FILE        check the results against targets (exit 4 when one is missed)\n"
    "  --compare BASE.json   compare with an earlier --json run (exit 5 on a regression);\n"
    "                        refused when the setups differ (model, KV type, kernels, layout,\n"
    "                        CPU, plan) unless --compare-anyway\n"
    "  --history DIR         append this run to DIR and print each test's trend\n"
    "  --plot OUT.svg        an SVG chart of the results (and history, baseline)\n"
    "  --no-fuse             norm+quantization fusions off\n"
    "  --split-linears       also q/k/v and gate/up as separate matmuls\n"
    "  --fusion-gains        each fusion's gain, plans interleaved\n"
    "  --kv f16|f32          KV cache element type (default f16)\n"
    "  --layout t1|t2        packed ternary layout\n"
    "  --no-cache            neither read nor write the prepared-weights cache\n"
    "  (-c is refused: the context is sized from -p, -n and --gen-prompt; -p 0 or -n 0 runs\n"
    "  no test of that kind)\n";

constexpr int kExitTargetMissed = 4;
constexpr int kExitRegression = 5;

std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& s, int64_t lo) {
  std::vector<int64_t> out;
  if (s.empty()) throw UsageError(flag + ": the list is empty (give 0 to run no such test)");
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    const std::string part = s.substr(start, comma == std::string::npos ? comma : comma - start);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || v < lo || v > (int64_t{1} << 24)) {
      throw UsageError(flag + ": '" + part + "' is not an integer >= " + std::to_string(lo) +
                       " (expected a list such as 1,2)");
    }
    out.push_back(v);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

nlohmann::json read_json_file(const std::string& path, const char* what) {
  const std::string text = read_input_file(what, path);
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw InputError(std::string(what) + " " + path + ": not JSON: " + e.what());
  }
}

std::string cell(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Table rows as cells; --md joins them with pipes, the default pads columns.
void print_table(const model::BenchReport& r, bool markdown) {
  const std::vector<std::string> head = {
      "test",        "t/s (mean +- sd)", "t/s median", "TTFT ms", "step ms P50/P95/P99",
      "peak RSS MB", "MB/token",         "roofline"};
  std::vector<std::vector<std::string>> rows;
  for (const model::BenchResult& b : r.results) {
    const bool tg = b.kind == "tg";
    const double roof = b.roofline_percent();
    rows.push_back({b.name(), cell("%.2f", b.mean_tps()) + " +- " + cell("%.2f", b.sd_tps()),
                    cell("%.2f", b.median_tps()), cell("%.2f", b.median_ttft_ms()),
                    tg ? cell("%.3f", b.latency_ms(0.5)) + " / " +
                             cell("%.3f", b.latency_ms(0.95)) + " / " +
                             cell("%.3f", b.latency_ms(0.99))
                       : "-",
                    cell("%.1f", static_cast<double>(b.peak_rss_bytes) / 1e6),
                    tg ? cell("%.2f", b.bytes_per_token / 1e6) : "-",
                    roof > 0 ? cell("%.0f%%", roof) + (tg ? " of read bw" : " of int8 peak") +
                                   (roof > 100 ? " (!)" : "")
                             : "-"});
  }
  std::printf(
      "bitnet bench %s | %s | %s (%d hw threads), kernels %s, layout %s, lm head %s | %d reps\n",
      r.tool_version.c_str(), r.model_name.empty() ? r.model_path.c_str() : r.model_name.c_str(),
      r.machine.cpu.c_str(), r.machine.hardware_threads, r.machine.isa.c_str(),
      r.machine.layout.c_str(), r.machine.lm_head.c_str(), r.params.reps);
  bool above = false;
  for (const model::BenchResult& b : r.results) above = above || b.roofline_percent() > 100;
  if (above) {
    std::printf(
        "(!) above 100%%: this test ran faster than the measured read bandwidth allows, so its\n"
        "    weights were served from cache rather than memory (a model this small fits);\n"
        "    the roofline does not bound it\n");
  }
  if (markdown) {
    std::string line = "|", sep = "|";
    for (const auto& h : head) {
      line += " " + h + " |";
      sep += "---|";
    }
    std::printf("\n%s\n%s\n", line.c_str(), sep.c_str());
    for (const auto& row : rows) {
      line = "|";
      for (const auto& c : row) line += " " + c + " |";
      std::printf("%s\n", line.c_str());
    }
    return;
  }
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], row[i].size());
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string pad(w[i] - row[i].size(), ' ');
      line += (i == 0 ? row[i] + pad : pad + row[i]) + (i + 1 < row.size() ? "  " : "");
    }
    std::printf("%s\n", line.c_str());
  };
  print_row(head);
  for (const auto& row : rows) print_row(row);
}

// --fusion-gains: every test under three execution plans, one repetition of each in turn for
// `reps` rounds (so drift in the machine's speed hits all three alike), then the median t/s per
// plan and its ratio to the fully fused plan.
int run_fusion_gains(const model::ModelWeights& weights, const std::string& path,
                     model::BenchParams p) {
  struct Plan {
    const char* name;
    bool fused_norm_quant, split;
  };
  const Plan plans[] = {{"all fusions", true, false},
                        {"norm_quant, act_norm_quant off", false, false},
                        {"all off (q/k/v, gate/up split too)", false, true}};
  const int rounds = p.reps;
  p.reps = 1;
  p.measure_limits = false;
  std::map<std::string, std::vector<std::vector<double>>> tps;  // test -> plan -> t/s
  std::vector<std::string> order;
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < std::size(plans); ++i) {
      p.fused_norm_quant = plans[i].fused_norm_quant;
      p.split_fused_linears = plans[i].split;
      std::fprintf(stderr, "bench: round %d/%d, %s\n", round + 1, rounds, plans[i].name);
      const model::BenchReport r = model::run_bench(weights, path, p);
      for (const model::BenchResult& b : r.results) {
        auto& v = tps[b.name()];
        if (v.empty()) {
          v.resize(std::size(plans));
          order.push_back(b.name());
        }
        v[i].insert(v[i].end(), b.tokens_per_second.begin(), b.tokens_per_second.end());
      }
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  std::printf("fusion gains, %s: median t/s over %d interleaved rounds (one repetition each)\n",
              path.c_str(), rounds);
  std::printf("%-12s %-36s %10s %14s\n", "test", "plan", "t/s", "fused / this");
  for (const std::string& test : order) {
    const auto& v = tps[test];
    const double base = median(v[0]);
    for (size_t i = 0; i < std::size(plans); ++i) {
      const double m = median(v[i]);
      std::printf("%-12s %-36s %10.2f %14.3f\n", test.c_str(), plans[i].name, m,
                  m > 0 ? base / m : 0.0);
    }
  }
  return 0;
}

int cmd_bench(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  model::BenchParams p;
  bool json_out = false, md_out = false, fusion_gains = false, compare_anyway = false;
  std::string targets_path, compare_path, history_dir, plot_path;
  while (args.more()) {
    const std::string a = args.peek();
    if (a == "-t" || a == "--threads") {
      args.next();
      p.threads.clear();
      for (int64_t t : parse_int_list(a, args.value(a), 1))
        p.threads.push_back(static_cast<int>(t));
      continue;
    }
    if (a == "-c" || a == "--ctx-size") {
      throw UsageError("-c: bench sizes the context from -p, -n and --gen-prompt");
    }
    if (mo.parse(args)) continue;
    args.next();
    if (a == "-p" || a == "--n-prompt") {
      p.n_prompt = parse_int_list(a, args.value(a), 0);
      std::erase(p.n_prompt, 0);  // 0: no prompt test (llama-bench's -p 0)
    } else if (a == "-n" || a == "--n-gen") {
      p.n_gen = parse_int_list(a, args.value(a), 0);
      std::erase(p.n_gen, 0);
    } else if (a == "-r" || a == "--repetitions") {
      p.reps = static_cast<int>(args.int_value(a, 1, 10000));
    } else if (a == "-b" || a == "--batch-size") {
      p.max_batch = args.int_value(a, 1, int64_t{1} << 20);
    } else if (a == "--gen-prompt") {
      p.gen_prompt = args.int_value(a, 0, int64_t{1} << 24);
    } else if (a == "--seed") {
      p.seed = args.u64_value(a);
    } else if (a == "--no-limits") {
      p.measure_limits = false;
    } else if (a == "--json") {
      json_out = true;
    } else if (a == "--md") {
      md_out = true;
    } else if (a == "--targets") {
      targets_path = args.path_value(a);
    } else if (a == "--compare") {
      compare_path = args.path_value(a);
    } else if (a == "--compare-anyway") {
      compare_anyway = true;
    } else if (a == "--history") {
      history_dir = args.path_value(a);
    } else if (a == "--plot") {
      plot_path = args.path_value(a);
    } else if (a == "--no-fuse") {
      p.fused_norm_quant = false;
    } else if (a == "--split-linears") {
      p.fused_norm_quant = false;
      p.split_fused_linears = true;
    } else if (a == "--fusion-gains") {
      fusion_gains = true;
    } else {
      args.unknown(a);
    }
  }
  if (mo.model.empty()) args.fail("-m MODEL is required");
  if (json_out && md_out) args.fail("--json and --md exclude each other");
  if (compare_anyway && compare_path.empty()) args.fail("--compare-anyway needs --compare");
  p.kv = mo.kv;
  if (const char* inj = std::getenv("BITNET_BENCH_INJECT_SLOWDOWN"); inj && *inj) {
    char* end = nullptr;
    p.inject_slowdown = std::strtod(inj, &end);
    if (*end != '\0' || !(p.inject_slowdown >= 0 && p.inject_slowdown <= 100)) {
      throw UsageError(
          "BITNET_BENCH_INJECT_SLOWDOWN: expected a number in [0, 100], "
          "found '" +
          std::string(inj) + "'");
    }
    std::fprintf(stderr,
                 "WARNING: BITNET_BENCH_INJECT_SLOWDOWN=%g: test hook, every timed step is "
                 "stretched by this fraction; these numbers are not the engine's speed\n",
                 p.inject_slowdown);
  }
  // Read the inputs that can be wrong before the minutes of measuring.
  model::Targets targets;
  if (!targets_path.empty()) {
    try {
      targets = model::targets_from_json(read_json_file(targets_path, "--targets"));
    } catch (const std::invalid_argument& e) {
      throw InputError("--targets " + targets_path + ": " + e.what());
    }
  }
  std::optional<model::BenchReport> baseline;
  if (!compare_path.empty()) {
    try {
      baseline = model::report_from_json(read_json_file(compare_path, "--compare"));
    } catch (const std::invalid_argument& e) {
      throw InputError("--compare " + compare_path + ": " + e.what());
    }
  }
  if (!plot_path.empty()) check_writable("--plot", plot_path);

  if (!history_dir.empty()) {  // checked (and read) before the measurements, not after them
    std::error_code ec;
    if (std::filesystem::exists(history_dir, ec) && !std::filesystem::is_directory(history_dir)) {
      throw InputError("--history " + history_dir + ": exists and is not a directory");
    }
    const auto parent = std::filesystem::path(history_dir).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
      throw InputError("--history " + history_dir + ": the directory " + parent.string() +
                       " does not exist");
    }
    if (std::filesystem::is_directory(history_dir, ec)) {
      try {
        (void)model::load_history(history_dir);
      } catch (const std::exception& e) {
        throw InputError("--history " + history_dir + ": " + e.what());
      }
    }
  }

  const auto weights = load_model(mo);
  model::BenchReport header;
  try {
    header = model::bench_header(*weights, mo.model, p);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  // A baseline of another setup is refused before the run, not after it.
  if (baseline) {
    const auto differences = model::setup_differences(header, *baseline);
    if (!differences.empty()) {
      std::string what;
      for (const auto& d : differences) {
        if (!what.empty()) what += "; ";
        what += d;
      }
      if (!compare_anyway) {
        throw UsageError("--compare " + compare_path + ": the runs do not measure the same " +
                         "setup (" + what + "); --compare-anyway compares them regardless");
      }
      std::fprintf(json_out ? stderr : stdout,
                   "WARNING: --compare-anyway: the setups differ (%s)\n", what.c_str());
    }
  }
  if (fusion_gains) return run_fusion_gains(*weights, mo.model, p);
  model::BenchReport report = model::run_bench(*weights, mo.model, p, [](const std::string& t) {
    std::fprintf(stderr, "bench: %s\n", t.c_str());
  });
  report.tool_version = BITNET_VERSION;

  if (json_out) {
    std::printf("%s\n", model::to_json(report).dump(1).c_str());
  } else {
    print_table(report, md_out);
  }
  std::FILE* notes = json_out ? stderr : stdout;  // keep stdout pure JSON under --json

  int rc = 0;
  if (!targets_path.empty()) {
    const auto misses = model::meets_targets(report, targets);
    std::fprintf(notes, "\ntargets (%s): %s\n", targets_path.c_str(),
                 misses.empty() ? "all met" : "MISSED");
    for (const auto& m : misses) std::fprintf(notes, "  %s\n", m.describe().c_str());
    if (!misses.empty()) rc = kExitTargetMissed;
  }
  if (baseline) {
    const auto cmp = model::compare_reports(report, *baseline);
    std::fprintf(notes,
                 "\ncompare with %s (%s): regression = slower than 95%% of the baseline with "
                 "one-sided Mann-Whitney p < 0.05\n",
                 compare_path.c_str(), baseline->timestamp.c_str());
    std::fprintf(notes, "  %-12s %12s %12s %8s %8s %9s  %s\n", "test", "base t/s", "now t/s",
                 "ratio", "HL ratio", "p", "verdict");
    for (const auto& c : cmp) {
      if (!c.in_baseline) {
        std::fprintf(notes, "  %-12s %12s %12.2f  (not in the baseline)\n", c.test.c_str(), "-",
                     c.current_median_tps);
        continue;
      }
      std::fprintf(notes, "  %-12s %12.2f %12.2f %8.3f %8.3f %9.2g%s %s\n", c.test.c_str(),
                   c.baseline_median_tps, c.current_median_tps, c.check.ratio_median,
                   c.check.ratio_hl, c.check.p_value, c.check.exact ? " " : "~",
                   model::verdict_name(c.check.verdict));
    }
    std::fprintf(notes, "  (p: exact; ~: normal approximation)\n");
    if (model::any_regression(cmp)) rc = kExitRegression;
  }
  std::vector<model::BenchReport> history;
  if (!history_dir.empty()) {
    const std::string path = model::append_history(history_dir, report);
    history = model::load_history(history_dir);
    std::fprintf(notes, "\nhistory: %s written; %zu runs in %s\n", path.c_str(), history.size(),
                 history_dir.c_str());
    std::fprintf(notes, "  %-12s %5s %14s %16s  medians t/s (oldest first)\n", "test", "runs",
                 "slope %/run", "last / median");
    for (const auto& t : model::history_trends(history)) {
      std::string series;
      for (double m : t.medians) series += cell(" %.4g", m);
      std::fprintf(notes, "  %-12s %5d %+14.2f %16.3f %s\n", t.test.c_str(), t.runs,
                   t.slope_percent_per_run, t.last_vs_median, series.c_str());
    }
    std::fprintf(notes, "  (slope: Theil-Sen over run index, in %% of the series' median)\n");
  }
  if (!plot_path.empty()) {
    std::ofstream out(plot_path);
    out << model::bench_svg(report, history, baseline ? &*baseline : nullptr);
    if (!out) throw std::runtime_error(plot_path + ": cannot write the plot");
    std::fprintf(notes, "plot: %s\n", plot_path.c_str());
  }
  return rc;
}

}  // namespace

BITNET_COMMAND("bench", kUsage,
               "prompt (pp) and generation (tg) tokens/s over repetitions, time to first token,\n"
               "decode-step latency P50/P95/P99, peak RSS, bytes per token and % of this\n"
               "machine's read bandwidth (tg) or int8 peak (pp) measured in the same run.\n"
               "--targets: exit 4 when a target is missed; --compare: exit 5 on a confirmed\n"
               "regression (> 5% slower, Mann-Whitney p < 0.05). --no-fuse / --split-linears\n"
               "switch the execution plan's fusions off (bitnet inspect --plan lists them);\n"
               "--fusion-gains measures each one's gain, interleaved; see docs/PERFORMANCE.md",
               kOptions, cmd_bench);

}  // namespace bitnet::cli
