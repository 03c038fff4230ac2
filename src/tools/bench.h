// `bitnet bench`: llama-bench-like measurements of a model's prompt processing (pp) and token
// generation (tg) with the machine's own limits measured in the same run, a results type with
// target checks, and JSON (de)serialisation so results can serve as baselines (bench-stats.h
// decides regressions against them).
//
// A test is one (kind, size, threads): "pp512/t2" evaluates 512 random prompt tokens (seeded ids
// in the vocabulary) from an empty cache; "tg128/t2" evaluates a short random prompt
// (BenchParams::gen_prompt tokens) and then decodes 128 tokens one at a time, each a random id fed
// back without sampling (sampling is not what is measured). Each test runs one warm-up repetition,
// then `reps` timed ones. Right after a test's repetitions, on the same thread pool: tg is paired
// with a read-bandwidth probe (roofline of decode), pp with an int8 multiply-add peak probe
// (roofline of prefill), because this machine's bandwidth drifts within minutes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model-weights.h"
#include "model/session.h"

namespace bitnet::model {

struct BenchParams {
  std::vector<int64_t> n_prompt{128, 512};  // pp sizes (empty: no pp tests)
  std::vector<int64_t> n_gen{32, 128};      // tg sizes (empty: no tg tests)
  std::vector<int> threads{1, 2};
  int reps = 5;
  int64_t gen_prompt = 16;  // prompt tokens evaluated before a tg test's decode steps
  int64_t max_batch = 256;  // SessionOptions::max_batch: the prefill chunk size
  KvType kv = KvType::F16;
  uint64_t seed = 1234;
  bool measure_limits = true;  // the paired bandwidth / int8-peak probes
  // SessionOptions::fused_norm_quant and split_fused_linears: switch the execution plan's
  // fusions off to measure what they gain (bitnet bench --fusion-gains).
  bool fused_norm_quant = true;
  bool split_fused_linears = false;
  // TEST HOOK for the regression detector, not a feature: after every timed eval call the bench
  // sleeps inject_slowdown x that call's duration, so measured throughput drops by a factor
  // 1 / (1 + inject_slowdown). The CLI reads it from BITNET_BENCH_INJECT_SLOWDOWN.
  double inject_slowdown = 0;
};

struct BenchResult {
  std::string kind;  // "pp" or "tg"
  int64_t n_tokens = 0;
  int threads = 0;
  std::vector<double> tokens_per_second;  // one per repetition (pp: prompt; tg: decode steps)
  std::vector<double> ttft_ms;            // per repetition: prompt eval until first logits
  std::vector<double> step_ms;            // tg: every decode step of every repetition
  uint64_t peak_rss_bytes = 0;            // peak resident set during this test (see bench.cpp)
  // tg: bytes one decode step reads (packed weights, LM head, norms, and the KV cache at the
  // test's mean context length); read_bytes_per_second from the paired probe (0 when skipped).
  double bytes_per_token = 0;
  double read_bytes_per_second = 0;
  // pp: integer ops per prompt token (2 per ternary weight); ops/s of the paired int8 peak probe.
  double ops_per_token = 0;
  double int8_peak_ops = 0;

  std::string name() const;  // "tg128/t2"
  double mean_tps() const;
  double sd_tps() const;
  double median_tps() const;
  double median_ttft_ms() const;
  double latency_ms(double p) const;  // percentile p in [0, 1] of step_ms (tg only, else 0)
  double mean_latency_ms() const;
  // Percent of the roofline at the median throughput (0 when the probe was skipped):
  // tg: bytes_per_token x t/s / read bandwidth; pp: ops_per_token x t/s / int8 peak.
  double roofline_percent() const;
};

struct MachineInfo {
  std::string cpu;  // /proc/cpuinfo "model name" (empty where absent)
  int hardware_threads = 0;
  std::string isa;      // kernels chosen at run time
  std::string layout;   // packed weight layout (t1 / t2)
  std::string lm_head;  // model::lm_head_name: "F16", "int8 (from F16)" (empty in older reports)
};

struct BenchReport {
  std::string tool_version;  // the bitnet version (no git: results must be reproducible offline)
  std::string timestamp;     // UTC, ISO 8601
  MachineInfo machine;
  std::string model_path, model_name;
  int64_t ternary_params = 0;
  uint64_t model_bytes = 0;  // the model file's size (0: unknown, in older reports)
  BenchParams params;
  std::vector<BenchResult> results;

  const BenchResult* find(const std::string& name) const;
};

// Limits per test, all optional. Targets file (JSON): an object whose keys are a test name
// ("tg128/t2"), a test without its thread count ("tg128", any threads) or "*" (every test), each
// mapping to an object of min_prompt_tps, min_gen_tps, max_mean_latency_ms, max_p99_latency_ms,
// max_peak_rss_mb. Throughput limits apply to the median over repetitions; prompt limits only to
// pp tests, generation and latency limits only to tg tests.
struct Target {
  std::optional<double> min_prompt_tps, min_gen_tps, max_mean_latency_ms, max_p99_latency_ms,
      max_peak_rss_mb;
};
using Targets = std::map<std::string, Target>;

struct TargetMiss {
  std::string test, what;
  double limit = 0, measured = 0;
  std::string describe() const;  // "tg128/t2: min_gen_tps 50 not met (measured 41.2)"
};

// Every target the report misses (empty: all met). A key matching no test is a miss as well
// ("no such test"), so a typo in a targets file cannot pass silently.
std::vector<TargetMiss> meets_targets(const BenchReport& report, const Targets& targets);
// Throws std::invalid_argument naming the key on unknown fields or non-numbers.
Targets targets_from_json(const nlohmann::json& j);

nlohmann::ordered_json to_json(const BenchReport& report);
// Throws std::invalid_argument (naming the missing or mistyped field) on malformed input.
BenchReport report_from_json(const nlohmann::json& j);

// Progress callback: called with a line before each test ("tg128/t2 ...").
using BenchProgress = std::function<void(const std::string&)>;

// The report's header (machine, model, parameters; no results) for these params: what the run
// will be compared on. Throws like run_bench on bad params, before anything is measured.
BenchReport bench_header(const ModelWeights& weights, const std::string& model_path,
                         const BenchParams& params);

// Runs every test of params on the loaded model. Throws std::invalid_argument on bad params (no
// thread count, reps < 1, a size that does not fit the model's context...).
BenchReport run_bench(const ModelWeights& weights, const std::string& model_path,
                      const BenchParams& params, BenchProgress progress = {});

// Peak resident set of this process in bytes (VmHWM, else getrusage ru_maxrss), and a reset of
// the peak to the current resident set (Linux: /proc/self/clear_refs "5"); false where the reset
// is unavailable, so later peaks include earlier ones.
uint64_t peak_rss_bytes();
bool reset_peak_rss();

}  // namespace bitnet::model
