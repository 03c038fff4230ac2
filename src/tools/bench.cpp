#include "tools/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "kernels/machine-limits.h"
#include "tools/bench-stats.h"
#include "tools/dummy-model.h"

namespace bitnet::model {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The test hook of BenchParams::inject_slowdown: spins (a sleep would overshoot by tens of
// microseconds, more than a whole decode step of a tiny model) until `extra` seconds after now.
void spin_for(double extra) {
  if (extra <= 0) return;
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(extra));
  while (Clock::now() < until) {
  }
}

// One timed eval: its wall time, stretched by the injected slowdown when one is set.
double timed_eval(Session& s, int slot, std::span<const int32_t> tokens, float* logits,
                  double slowdown) {
  const auto t0 = Clock::now();
  s.eval(slot, tokens, logits, false);
  spin_for(seconds(t0, Clock::now()) * slowdown);
  return seconds(t0, Clock::now());
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        const size_t b = line.find_first_not_of(' ', colon + 1);
        return b == std::string::npos ? std::string() : line.substr(b);
      }
    }
  }
  return {};
}

// Bytes a decode step reads from the weights as the engine holds them: the packed linears (T1 or
// T2, with their row scales) instead of the file's ternary tensors, plus what bytes_per_token
// counts besides them (LM head, norms; the int8 head instead of the file's when it is used).
double decode_weight_bytes(const ModelWeights& w) {
  const ModelConfig& c = w.config();
  uint64_t file_ternary = 0;
  for (const TensorSpec& s : expected_tensors(c))
    if (s.ternary)
      if (const formats::GgufTensorInfo* t = w.file().find_tensor(s.name)) file_ternary += t->size;
  double packed = 0;
  for (const PackedLinear* p : w.linears()) {
    const auto& v = p->view;
    packed += static_cast<double>(v.groups()) *
              static_cast<double>(v.group_bytes + kernels::kGroupRows * sizeof(float));
  }
  // The int8 head replaces the file's output matrix in the step's reads.
  const double head = w.int8_head() ? static_cast<double>(w.int8_head_bytes()) -
                                          static_cast<double>(w.output().info->size)
                                    : 0.0;
  return static_cast<double>(bytes_per_token(c, w.file()) - file_ternary) + packed + head;
}

std::string rss_field(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return line.substr(std::string(key).size());
  return {};
}

template <class T>
T field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key))
    throw std::invalid_argument(where + ": missing field '" + key + "'");
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    throw std::invalid_argument(where + ": field '" + key + "' has the wrong type (" + e.what() +
                                ")");
  }
}

}  // namespace

// ---- results ----------------------------------------------------------------------------------

std::string BenchResult::name() const {
  return kind + std::to_string(n_tokens) + "/t" + std::to_string(threads);
}
double BenchResult::mean_tps() const {
  return mean(tokens_per_second);
}
double BenchResult::sd_tps() const {
  return stddev(tokens_per_second);
}
double BenchResult::median_tps() const {
  return median(tokens_per_second);
}
double BenchResult::median_ttft_ms() const {
  return median(ttft_ms);
}
double BenchResult::latency_ms(double p) const {
  return step_ms.empty() ? 0 : percentile(step_ms, p);
}
double BenchResult::mean_latency_ms() const {
  return mean(step_ms);
}

double BenchResult::roofline_percent() const {
  if (kind == "tg" && read_bytes_per_second > 0)
    return 100.0 * bytes_per_token * median_tps() / read_bytes_per_second;
  if (kind == "pp" && int8_peak_ops > 0)
    return 100.0 * ops_per_token * median_tps() / int8_peak_ops;
  return 0;
}

const BenchResult* BenchReport::find(const std::string& name) const {
  for (const BenchResult& r : results)
    if (r.name() == name) return &r;
  return nullptr;
}

// ---- peak memory ------------------------------------------------------------------------------

uint64_t peak_rss_bytes() {
  const std::string hwm = rss_field("VmHWM:");  // "   12345 kB"
  if (!hwm.empty()) return std::stoull(hwm) * 1024;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux: kilobytes
}

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// ---- targets ----------------------------------------------------------------------------------

std::string TargetMiss::describe() const {
  char buf[256];
  if (what == "no such test") {
    std::snprintf(buf, sizeof buf, "%s: no test of this run matches the target key", test.c_str());
  } else {
    std::snprintf(buf, sizeof buf, "%s: %s %g not met (measured %.4g)", test.c_str(), what.c_str(),
                  limit, measured);
  }
  return buf;
}

std::vector<TargetMiss> meets_targets(const BenchReport& report, const Targets& targets) {
  std::vector<TargetMiss> miss;
  for (const auto& [key, t] : targets) {
    bool matched = false;
    for (const BenchResult& r : report.results) {
      const std::string name = r.name();
      const bool match = key == "*" || key == name || key == name.substr(0, name.find('/'));
      if (!match) continue;
      matched = true;
      auto below = [&](const std::optional<double>& lim, const char* what, double v) {
        if (lim && v < *lim) miss.push_back({name, what, *lim, v});
      };
      auto above = [&](const std::optional<double>& lim, const char* what, double v) {
        if (lim && v > *lim) miss.push_back({name, what, *lim, v});
      };
      if (r.kind == "pp") below(t.min_prompt_tps, "min_prompt_tps", r.median_tps());
      if (r.kind == "tg") {
        below(t.min_gen_tps, "min_gen_tps", r.median_tps());
        above(t.max_mean_latency_ms, "max_mean_latency_ms", r.mean_latency_ms());
        above(t.max_p99_latency_ms, "max_p99_latency_ms", r.latency_ms(0.99));
      }
      above(t.max_peak_rss_mb, "max_peak_rss_mb", static_cast<double>(r.peak_rss_bytes) / 1e6);
    }
    if (!matched) miss.push_back({key, "no such test", 0, 0});
  }
  return miss;
}

Targets targets_from_json(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("targets: expected an object of test names");
  Targets out;
  for (const auto& [key, v] : j.items()) {
    if (!v.is_object())
      throw std::invalid_argument("targets: '" + key + "' must map to an object of limits");
    Target t;
    for (const auto& [f, x] : v.items()) {
      if (!x.is_number())
        throw std::invalid_argument("targets: '" + key + "." + f + "' must be a number");
      const double d = x.get<double>();
      if (f == "min_prompt_tps")
        t.min_prompt_tps = d;
      else if (f == "min_gen_tps")
        t.min_gen_tps = d;
      else if (f == "max_mean_latency_ms")
        t.max_mean_latency_ms = d;
      else if (f == "max_p99_latency_ms")
        t.max_p99_latency_ms = d;
      else if (f == "max_peak_rss_mb")
        t.max_peak_rss_mb = d;
      else
        throw std::invalid_argument("targets: unknown limit '" + key + "." + f +
                                    "' (known: min_prompt_tps, min_gen_tps, max_mean_latency_ms, "
                                    "max_p99_latency_ms, max_peak_rss_mb)");
    }
    out[key] = t;
  }
  return out;
}

// ---- JSON -------------------------------------------------------------------------------------

ojson to_json(const BenchReport& r) {
  ojson j;
  j["tool"] = "bitnet bench";
  j["version"] = r.tool_version;
  j["timestamp"] = r.timestamp;
  j["machine"] = {{"cpu", r.machine.cpu},
                  {"hardware_threads", r.machine.hardware_threads},
                  {"isa", r.machine.isa},
                  {"layout", r.machine.layout},
                  {"lm_head", r.machine.lm_head}};
  j["model"] = {{"path", r.model_path},
                {"name", r.model_name},
                {"ternary_params", r.ternary_params},
                {"bytes", r.model_bytes}};
  const BenchParams& p = r.params;
  j["params"] = {{"n_prompt", p.n_prompt},
                 {"n_gen", p.n_gen},
                 {"threads", p.threads},
                 {"reps", p.reps},
                 {"gen_prompt", p.gen_prompt},
                 {"max_batch", p.max_batch},
                 {"kv", p.kv == KvType::F16 ? "f16" : "f32"},
                 {"seed", p.seed},
                 {"measure_limits", p.measure_limits},
                 {"inject_slowdown", p.inject_slowdown},
                 {"fused_norm_quant", p.fused_norm_quant},
                 {"split_fused_linears", p.split_fused_linears}};
  ojson results = ojson::array();
  for (const BenchResult& b : r.results) {
    ojson o;
    o["name"] = b.name();
    o["kind"] = b.kind;
    o["n_tokens"] = b.n_tokens;
    o["threads"] = b.threads;
    o["tokens_per_second"] = b.tokens_per_second;
    o["ttft_ms"] = b.ttft_ms;
    o["step_ms"] = b.step_ms;
    o["peak_rss_bytes"] = b.peak_rss_bytes;
    o["bytes_per_token"] = b.bytes_per_token;
    o["read_bytes_per_second"] = b.read_bytes_per_second;
    o["ops_per_token"] = b.ops_per_token;
    o["int8_peak_ops"] = b.int8_peak_ops;
    // Derived, for readers of the file; report_from_json recomputes them from the samples.
    o["summary"] = {{"mean_tps", b.mean_tps()},
                    {"sd_tps", b.sd_tps()},
                    {"median_tps", b.median_tps()},
                    {"median_ttft_ms", b.median_ttft_ms()},
                    {"latency_ms_mean", b.mean_latency_ms()},
                    {"latency_ms_p50", b.latency_ms(0.50)},
                    {"latency_ms_p95", b.latency_ms(0.95)},
                    {"latency_ms_p99", b.latency_ms(0.99)},
                    {"roofline_percent", b.roofline_percent()}};
    results.push_back(std::move(o));
  }
  j["results"] = std::move(results);
  return j;
}

BenchReport report_from_json(const json& j) {
  BenchReport r;
  const std::string top = "bench results";
  r.tool_version = field<std::string>(j, "version", top);
  r.timestamp = field<std::string>(j, "timestamp", top);
  const json m = field<json>(j, "machine", top);
  r.machine.cpu = field<std::string>(m, "cpu", "machine");
  r.machine.hardware_threads = field<int>(m, "hardware_threads", "machine");
  r.machine.isa = field<std::string>(m, "isa", "machine");
  r.machine.layout = field<std::string>(m, "layout", "machine");
  r.machine.lm_head = m.value("lm_head", std::string());
  const json mo = field<json>(j, "model", top);
  r.model_path = field<std::string>(mo, "path", "model");
  r.model_name = field<std::string>(mo, "name", "model");
  r.ternary_params = field<int64_t>(mo, "ternary_params", "model");
  // Absent in reports written before it was recorded: 0, not compared.
  r.model_bytes = mo.contains("bytes") ? field<uint64_t>(mo, "bytes", "model") : 0;
  const json p = field<json>(j, "params", top);
  r.params.n_prompt = field<std::vector<int64_t>>(p, "n_prompt", "params");
  r.params.n_gen = field<std::vector<int64_t>>(p, "n_gen", "params");
  r.params.threads = field<std::vector<int>>(p, "threads", "params");
  r.params.reps = field<int>(p, "reps", "params");
  r.params.gen_prompt = field<int64_t>(p, "gen_prompt", "params");
  r.params.max_batch = field<int64_t>(p, "max_batch", "params");
  r.params.kv = field<std::string>(p, "kv", "params") == "f32" ? KvType::F32 : KvType::F16;
  r.params.seed = field<uint64_t>(p, "seed", "params");
  r.params.measure_limits = field<bool>(p, "measure_limits", "params");
  r.params.inject_slowdown = field<double>(p, "inject_slowdown", "params");
  // Absent in reports written before the fusion switches existed: those ran with every fusion.
  r.params.fused_norm_quant = p.value("fused_norm_quant", true);
  r.params.split_fused_linears = p.value("split_fused_linears", false);
  const json results = field<json>(j, "results", top);
  if (!results.is_array()) throw std::invalid_argument(top + ": 'results' must be an array");
  for (size_t i = 0; i < results.size(); ++i) {
    const json& o = results[i];
    const std::string where = "results[" + std::to_string(i) + "]";
    BenchResult b;
    b.kind = field<std::string>(o, "kind", where);
    if (b.kind != "pp" && b.kind != "tg")
      throw std::invalid_argument(where + ": kind must be pp or tg, found '" + b.kind + "'");
    b.n_tokens = field<int64_t>(o, "n_tokens", where);
    b.threads = field<int>(o, "threads", where);
    b.tokens_per_second = field<std::vector<double>>(o, "tokens_per_second", where);
    b.ttft_ms = field<std::vector<double>>(o, "ttft_ms", where);
    b.step_ms = field<std::vector<double>>(o, "step_ms", where);
    b.peak_rss_bytes = field<uint64_t>(o, "peak_rss_bytes", where);
    b.bytes_per_token = field<double>(o, "bytes_per_token", where);
    b.read_bytes_per_second = field<double>(o, "read_bytes_per_second", where);
    b.ops_per_token = field<double>(o, "ops_per_token", where);
    b.int8_peak_ops = field<double>(o, "int8_peak_ops", where);
    r.results.push_back(std::move(b));
  }
  return r;
}

// ---- running ----------------------------------------------------------------------------------

BenchReport bench_header(const ModelWeights& weights, const std::string& model_path,
                         const BenchParams& params) {
  const ModelConfig& cfg = weights.config();
  if (params.threads.empty()) throw std::invalid_argument("bench: no thread count given");
  if (params.reps < 1) throw std::invalid_argument("bench: repetitions must be at least 1");
  if (params.n_prompt.empty() && params.n_gen.empty())
    throw std::invalid_argument("bench: no test (both the prompt and generation sizes are empty)");
  if (params.inject_slowdown < 0 || !std::isfinite(params.inject_slowdown))
    throw std::invalid_argument("bench: the injected slowdown must be a non-negative number");
  int64_t n_ctx = 1;
  for (int64_t n : params.n_prompt) {
    if (n < 1) throw std::invalid_argument("bench: prompt sizes must be positive");
    n_ctx = std::max(n_ctx, n);
  }
  for (int64_t n : params.n_gen) {
    if (n < 1) throw std::invalid_argument("bench: generation sizes must be positive");
    n_ctx = std::max(n_ctx, params.gen_prompt + n);
  }
  if (n_ctx > cfg.n_ctx_train) {
    throw std::invalid_argument(model_path + ": the tests need a context of " +
                                std::to_string(n_ctx) + " tokens but the model was trained for " +
                                std::to_string(cfg.n_ctx_train) + " (lower -p or -n)");
  }

  BenchReport rep;
  rep.timestamp = utc_now();
  rep.machine.cpu = cpu_model_name();
  rep.machine.hardware_threads = hardware_threads();
  const kernels::KernelTable& kt = kernels::active_kernels();
  rep.machine.isa = kernels::isa_name(kt.isa);
  rep.machine.layout = kernels::layout_name(weights.layout());
  rep.machine.lm_head = lm_head_name(weights);
  rep.model_path = model_path;
  rep.model_name = weights.file().find_string("general.name").value_or("");
  rep.ternary_params = ternary_parameter_count(cfg);
  rep.model_bytes = weights.file().file_size();
  rep.params = params;
  return rep;
}

BenchReport run_bench(const ModelWeights& weights, const std::string& model_path,
                      const BenchParams& params, BenchProgress progress) {
  const ModelConfig& cfg = weights.config();
  BenchReport rep = bench_header(weights, model_path, params);
  const kernels::KernelTable& kt = kernels::active_kernels();
  int64_t n_ctx = 1;  // the longest test's context (bench_header checked it fits)
  for (int64_t n : params.n_prompt) n_ctx = std::max(n_ctx, n);
  for (int64_t n : params.n_gen) n_ctx = std::max(n_ctx, params.gen_prompt + n);

  const double weight_bytes = decode_weight_bytes(weights);
  const double kv_elem = params.kv == KvType::F16 ? 2.0 : 4.0;
  // K and V rows of every layer for each cached position a decode step attends to.
  const double kv_bytes_per_position =
      2.0 * static_cast<double>(cfg.n_layer * cfg.n_embd_kv()) * kv_elem;

  std::mt19937_64 rng(params.seed);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(cfg.n_vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n_ctx));
  for (int32_t& t : ids) t = tok(rng);
  std::vector<float> logits(static_cast<size_t>(cfg.n_vocab));
  const bool can_reset_rss = reset_peak_rss();

  for (int threads : params.threads) {
    if (threads < 1) throw std::invalid_argument("bench: thread counts must be positive");
    ThreadPool pool(threads);
    SessionOptions so;
    so.n_ctx = n_ctx;
    so.kv = params.kv;
    so.max_batch_tokens = params.max_batch;
    so.fused_norm_quant = params.fused_norm_quant;
    so.split_linears = params.split_fused_linears;
    Session session(weights, so, pool);  // one sequence: one slot
    const int slot = session.add_sequence();

    for (int64_t n : params.n_prompt) {
      BenchResult b;
      b.kind = "pp";
      b.n_tokens = n;
      b.threads = threads;
      if (progress) progress(b.name());
      if (can_reset_rss) reset_peak_rss();
      const std::span<const int32_t> prompt(ids.data(), static_cast<size_t>(n));
      for (int rep_i = 0; rep_i <= params.reps; ++rep_i) {
        session.reset_sequence(slot);
        const double dt = timed_eval(session, slot, prompt, logits.data(), params.inject_slowdown);
        if (rep_i == 0) continue;  // warm-up
        b.tokens_per_second.push_back(static_cast<double>(n) / dt);
        b.ttft_ms.push_back(1e3 * dt);
      }
      b.peak_rss_bytes = peak_rss_bytes();
      b.ops_per_token = 2.0 * static_cast<double>(rep.ternary_params);
      if (params.measure_limits) b.int8_peak_ops = kernels::measure_int8_peak(pool, kt);
      rep.results.push_back(std::move(b));
    }

    for (int64_t n : params.n_gen) {
      BenchResult b;
      b.kind = "tg";
      b.n_tokens = n;
      b.threads = threads;
      if (progress) progress(b.name());
      if (can_reset_rss) reset_peak_rss();
      const std::span<const int32_t> prompt(ids.data(), static_cast<size_t>(params.gen_prompt));
      b.step_ms.reserve(static_cast<size_t>(n * params.reps));
      for (int rep_i = 0; rep_i <= params.reps; ++rep_i) {
        session.reset_sequence(slot);
        const double ttft = params.gen_prompt > 0 ? timed_eval(session, slot, prompt, logits.data(),
                                                               params.inject_slowdown)
                                                  : 0.0;
        double total = 0;
        for (int64_t i = 0; i < n; ++i) {
          const int32_t next = ids[static_cast<size_t>((params.gen_prompt + i) % n_ctx)];
          const double dt = timed_eval(session, slot, std::span<const int32_t>(&next, 1),
                                       logits.data(), params.inject_slowdown);
          total += dt;
          if (rep_i > 0) b.step_ms.push_back(1e3 * dt);
        }
        if (rep_i == 0) continue;  // warm-up
        b.tokens_per_second.push_back(static_cast<double>(n) / total);
        b.ttft_ms.push_back(1e3 * ttft);
      }
      b.peak_rss_bytes = peak_rss_bytes();
      // Step i attends to gen_prompt + i + 1 positions; the mean over the test's steps:
      const double mean_ctx =
          static_cast<double>(params.gen_prompt) + (static_cast<double>(n) + 1.0) / 2.0;
      b.bytes_per_token = weight_bytes + kv_bytes_per_position * mean_ctx;
      if (params.measure_limits) {
        // Allocated only now and freed before the next test, so its 256 MiB stay out of the
        // peak resident set of the model's tests.
        kernels::BandwidthProbe probe;
        b.read_bytes_per_second = probe.measure(pool, kt).bytes_per_second;
      }
      rep.results.push_back(std::move(b));
    }
  }
  return rep;
}

}  // namespace bitnet::model
