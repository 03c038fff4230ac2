// The engine targets of issue 5, measured on the tiny-1m dummy (`bitnet gen-dummy --preset
// tiny-1m`: seed 0, I2_S linears, F16 embedding, written to a temporary directory or
// $BITNET_BENCH_MODEL_DIR by bench-models.h):
//
//   latency     one decode step (Session::eval of one token with logits) on 1 thread:
//               P50 / P95 / P99 over every step of every repetition (16-token prompt, then 128
//               steps per repetition; the argmax feeding the next token is not timed).
//               Goal: P99 < 0.1 ms.
//   throughput  aggregate decode tokens/s of B sequences in one Session step on 2 threads
//               (bench/batched-decode.h: 16-token prompts, contexts 16..79), for each B of the
//               curve; B tokens / median step time, median over repetitions. Goal: the best B
//               >= 300K tokens/s.
//   memory      VmRSS and VmHWM (/proc/self/status) of a child process (this program with
//               --rss-child) that constructs a bitnet::Engine on the model (default EngineConfig)
//               and sits idle 0.2 s; also after one 16-token request, idle again (the Engine
//               allocates its batched session, KV pages and activations, on the first request).
//               Goal: < 20 MB loaded and idle (judged on the first figure).
//   overhead    the same prompt and greedy generation of N tokens (default 128) through
//               Engine::generate (tokenizing, handing over to the scheduler thread, sampling,
//               detokenizing, stop handling included) and through a loop of Session::eval
//               + argmax on pre-tokenized input, 1 compute thread each, alternating in rotating
//               order. Overhead = the median over repetitions of the paired ratio Engine / loop,
//               minus 1 (the ratio of medians is printed too). Two more loops split the
//               difference: Session::step (the Engine's forward pass) called directly,
//               without and with a PerfMonitor attached as the Engine attaches one. All loops
//               must produce the Engine's tokens, else the program fails. Goal: < 1%.
//
//   bench-engine-targets [--json] [--check] [--reps N] [--gen N] [--only PART] [--int8-head]
//
// --int8-head measures every part with the opt-in int8 LM head (EngineConfig::int8_lm_head).
// --check exits 3 when a goal is missed (1 on failure, 2 on bad usage). A benchmark, not a test:
// on a shared machine the latency tail and the small overhead are sensitive to other work.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "batched-decode.h"
#include "bench-models.h"
#include "bitnet/engine.h"
#include "core/perf-monitor.h"
#include "kernels/ternary-matmul.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"
#include "tools/bench-stats.h"

extern char** environ;

namespace bitnet::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kPreset = "tiny-1m";
constexpr const char* kPrompt = "The quick brown fox jumps over the lazy dog.";

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int32_t argmax(const float* v, int64_t n) {  // first maximum: the sampler's greedy rule
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

// ---- latency ------------------------------------------------------------------------------------

struct Latency {
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
  size_t samples = 0;
};

Latency decode_latency(const model::ModelWeights& w, int reps) {
  constexpr int64_t kPromptTokens = 16, kSteps = 128;
  ThreadPool pool(1);
  model::SessionOptions so;
  so.n_ctx = kPromptTokens + kSteps;
  model::Session s(w, so, pool);
  const int s_slot = s.add_sequence();
  std::vector<int32_t> prompt(kPromptTokens);
  for (int64_t i = 0; i < kPromptTokens; ++i)
    prompt[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37 + 11) % s.n_vocab());
  std::vector<float> logits(static_cast<size_t>(s.n_vocab()));
  std::vector<double> ms;
  for (int r = -1; r < reps; ++r) {  // r = -1: warm-up, not recorded
    s.reset_sequence(s_slot);
    s.eval(s_slot, prompt, logits.data(), false);
    for (int64_t i = 0; i < kSteps; ++i) {
      const int32_t tok = argmax(logits.data(), s.n_vocab());
      const Clock::time_point t0 = Clock::now();
      s.eval(s_slot, std::span<const int32_t>(&tok, 1), logits.data(), false);
      if (r >= 0) ms.push_back(seconds_since(t0) * 1e3);
    }
  }
  return {model::percentile(ms, 0.50), model::percentile(ms, 0.95), model::percentile(ms, 0.99),
          *std::max_element(ms.begin(), ms.end()), ms.size()};
}

// ---- throughput ---------------------------------------------------------------------------------

struct ThroughputPoint {
  int64_t batch = 0;
  double step_ms = 0, tokens_per_s = 0;
};

// Per batch and repetition: the median of at least 32 steps and 0.2 s of steps.
std::vector<ThroughputPoint> batched_throughput(const model::ModelWeights& w, int threads,
                                                const std::vector<int64_t>& batches, int reps) {
  ThreadPool pool(threads);
  std::vector<ThroughputPoint> out;
  for (int64_t b : batches) {
    BatchedDecode d(w, pool, b);
    for (int i = 0; i < 8; ++i) d.step();  // warm-up
    std::vector<double> rep_medians;
    for (int r = 0; r < reps; ++r) {
      std::vector<double> steps;
      double total = 0;
      while (steps.size() < 32 || total < 0.2) {
        steps.push_back(d.step());
        total += steps.back();
      }
      rep_medians.push_back(model::median(steps));
    }
    const double step = model::median(rep_medians);
    out.push_back({b, step * 1e3, static_cast<double>(b) / step});
  }
  return out;
}

// ---- memory -------------------------------------------------------------------------------------

struct Rss {
  double rss_mb = 0, hwm_mb = 0;
};

Rss read_rss() {
  std::ifstream f("/proc/self/status");
  std::string line;
  Rss r;
  while (std::getline(f, line)) {
    long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kb) == 1)
      r.rss_mb = static_cast<double>(kb) / 1e3;
    if (std::sscanf(line.c_str(), "VmHWM: %lld kB", &kb) == 1)
      r.hwm_mb = static_cast<double>(kb) / 1e3;
  }
  return r;
}

// The child: prints "before", "loaded" and "after_request" lines of "name rss_mb hwm_mb".
int rss_child(const std::string& model_path, bool int8_head) {
  const Rss before = read_rss();
  EngineConfig cfg;
  cfg.int8_lm_head = int8_head;
  Engine engine(model_path, cfg);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const Rss loaded = read_rss();
  GenerateOptions go;
  go.max_tokens = 16;
  go.temperature = 0;
  engine.generate(kPrompt, go);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const Rss after = read_rss();
  std::printf("before %.3f %.3f\nloaded %.3f %.3f\nafter_request %.3f %.3f\n", before.rss_mb,
              before.hwm_mb, loaded.rss_mb, loaded.hwm_mb, after.rss_mb, after.hwm_mb);
  return 0;
}

struct Memory {
  Rss before, loaded, after_request;
};

Memory measure_memory(const std::string& model_path, bool int8_head) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::string self = "/proc/self/exe", flag = "--rss-child", path = model_path,
              head = int8_head ? "int8" : "file";
  char* argv[] = {self.data(), flag.data(), path.data(), head.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    throw std::runtime_error(std::string("cannot start the memory child: ") + std::strerror(rc));
  }
  std::string text;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("the memory child failed (" + text + ")");
  Memory m;
  std::istringstream in(text);
  std::string name;
  Rss r;
  int found = 0;
  while (in >> name >> r.rss_mb >> r.hwm_mb) {
    if (name == "before") m.before = r, ++found;
    if (name == "loaded") m.loaded = r, ++found;
    if (name == "after_request") m.after_request = r, ++found;
  }
  if (found != 3) throw std::runtime_error("unexpected output of the memory child: " + text);
  return m;
}

// ---- API overhead -------------------------------------------------------------------------------

// The loops timed against each other, alternating (the order rotates every repetition).
enum Variant { kEngine, kSessionEval, kBatched, kBatchedMonitor, kVariants };
constexpr const char* kVariantNames[kVariants] = {"Engine::generate", "Session::eval loop",
                                                  "Session::step loop",
                                                  "Session::step loop + PerfMonitor"};

struct Overhead {
  int64_t prompt_tokens = 0, generated = 0;
  int reps = 0;
  double median_ms[kVariants] = {};
  double paired_ratio[kVariants] = {};  // median over repetitions of engine / variant
  double ratio_of_medians = 0;          // engine / Session::eval loop
  // Engine::generate's wall time split by its GenerateTimings (medians): submit until the
  // scheduler thread took the request, then until the first token, the tokens after the first,
  // and from the last token until generate() returned to the caller.
  double queue_ms = 0, first_token_ms = 0, later_tokens_ms = 0, return_ms = 0;
};

Overhead api_overhead(const std::string& model_path, const model::ModelWeights& w, int64_t n_gen,
                      int reps) {
  EngineConfig cfg;
  cfg.threads = 1;
  cfg.int8_lm_head = w.int8_head() != nullptr;
  cfg.prepared_cache = PreparedCache::Off;
  Engine engine(model_path, cfg);
  GenerateOptions go;
  go.max_tokens = n_gen;
  go.temperature = 0;  // greedy; repetition penalty off by default
  GenerateResult res;

  // The direct loops: the same layout, KV type, context and batch sizes as the Engine's session,
  // the prompt tokenized as the Engine does it (outside the timed region), greedy argmax.
  ThreadPool pool(1);
  model::SessionOptions so;
  so.n_ctx = engine.info().context_size;
  model::Session s(w, so, pool);
  const int s_slot = s.add_sequence();
  // The Engine's own forward pass (since 20cb46e a Session stepped by a scheduler thread),
  // called directly with one sequence: separates the session's cost from the API's. The Engine
  // attaches a PerfMonitor (per-operation clock reads) to its session; the fourth loop does too.
  model::SessionOptions bo;
  bo.max_sequences = 1;
  bo.n_ctx = engine.info().context_size;
  bo.max_batch_tokens = engine.info().max_batch_tokens;
  model::Session bs(w, bo, pool);
  const int slot = bs.add_sequence();
  PerfMonitor monitor(model::perf_op_names());

  const auto tok = model::Tokenizer::from_gguf(w.file());
  const std::vector<int32_t> prompt = tok.encode(kPrompt, true, true);
  const int64_t V = s.n_vocab();
  std::vector<float> logits(static_cast<size_t>(V));
  std::vector<model::BatchItem> items;
  std::vector<int32_t> out[kVariants];
  for (auto& o : out) o.reserve(static_cast<size_t>(n_gen));

  auto bitnet_session = [&](std::vector<int32_t>& toks) {
    s.reset_sequence(s_slot);
    s.eval(s_slot, prompt, logits.data(), false);
    for (int64_t i = 0; i < n_gen; ++i) {
      toks.push_back(argmax(logits.data(), V));
      if (i + 1 < n_gen)
        s.eval(s_slot, std::span<const int32_t>(&toks.back(), 1), logits.data(), false);
    }
  };
  auto batched = [&](std::vector<int32_t>& toks, PerfMonitor* mon) {
    bs.set_monitor(mon);
    bs.reset_sequence(slot);
    const auto chunk = static_cast<size_t>(bo.max_batch_tokens);
    for (size_t i0 = 0; i0 < prompt.size(); i0 += chunk) {
      items.clear();
      for (size_t i = i0; i < std::min(prompt.size(), i0 + chunk); ++i)
        items.push_back({slot, prompt[i], i + 1 == prompt.size()});
      bs.step(items, logits.data());
    }
    for (int64_t i = 0; i < n_gen; ++i) {
      toks.push_back(argmax(logits.data(), V));
      if (i + 1 < n_gen) {
        const model::BatchItem item{slot, toks.back(), true};
        bs.step(std::span<const model::BatchItem>(&item, 1), logits.data());
      }
    }
  };
  auto run = [&](int v) {
    out[v].clear();
    switch (v) {
      case kEngine:
        res = engine.generate(kPrompt, go);
        out[v] = res.tokens;
        break;
      case kSessionEval:
        bitnet_session(out[v]);
        break;
      case kBatched:
        batched(out[v], nullptr);
        break;
      case kBatchedMonitor:
        batched(out[v], &monitor);
        break;
    }
  };

  std::vector<double> ms[kVariants], ratio[kVariants], queue, first, later, back;
  for (int r = -2; r < reps; ++r) {  // two warm-up rounds
    double t[kVariants] = {};
    for (int k = 0; k < kVariants; ++k) {
      const int v = (k + r + 2) % kVariants;
      const Clock::time_point t0 = Clock::now();
      run(v);
      t[v] = seconds_since(t0);
    }
    for (int v = 1; v < kVariants; ++v) {
      if (out[v] != out[kEngine]) {
        throw std::runtime_error(std::string(kVariantNames[v]) + " produced other tokens than " +
                                 "Engine::generate (" + std::to_string(out[kEngine].size()) +
                                 " tokens, stop reason: " + to_string(res.stop_reason) + ")");
      }
    }
    if (r < 0) continue;
    for (int v = 0; v < kVariants; ++v) {
      ms[v].push_back(t[v] * 1e3);
      ratio[v].push_back(t[kEngine] / t[v]);
    }
    const GenerateTimings& gt = res.timings;
    const double later_ms =
        gt.generation_tokens_per_second > 0
            ? 1e3 * static_cast<double>(res.tokens.size() - 1) / gt.generation_tokens_per_second
            : 0;
    queue.push_back(gt.queue_ms);
    first.push_back(gt.time_to_first_token_ms - gt.queue_ms);
    later.push_back(later_ms);
    back.push_back(t[kEngine] * 1e3 - gt.time_to_first_token_ms - later_ms);
  }
  Overhead o;
  o.prompt_tokens = static_cast<int64_t>(prompt.size());
  o.generated = static_cast<int64_t>(out[kEngine].size());
  o.reps = reps;
  for (int v = 0; v < kVariants; ++v) {
    o.median_ms[v] = model::median(ms[v]);
    o.paired_ratio[v] = model::median(ratio[v]);
  }
  o.ratio_of_medians = o.median_ms[kEngine] / o.median_ms[kSessionEval];
  o.queue_ms = model::median(queue);
  o.first_token_ms = model::median(first);
  o.later_tokens_ms = model::median(later);
  o.return_ms = model::median(back);
  return o;
}

// ---- report ------------------------------------------------------------------------------------

int usage() {
  std::fprintf(stderr,
               "usage: bench-engine-targets [--json] [--check] [--reps N] [--gen N] "
               "[--only latency|throughput|memory|overhead] [--int8-head]\n");
  return 2;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

struct Goal {
  std::string name, measured, goal;
  bool met = false;
};

}  // namespace
}  // namespace bitnet::bench

int main(int argc, char** argv) {
  using namespace bitnet::bench;
  using bitnet::model::ModelWeights;
  using Json = nlohmann::ordered_json;
  if (argc == 4 && std::strcmp(argv[1], "--rss-child") == 0) {
    try {
      return rss_child(argv[2], std::strcmp(argv[3], "int8") == 0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rss child: %s\n", e.what());
      return 1;
    }
  }
  bool json = false, check = false, int8_head = false;
  int reps = 15;
  int64_t n_gen = 128;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--int8-head") {
      int8_head = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (a == "--gen" && i + 1 < argc) {
      n_gen = std::atoll(argv[++i]);
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
      if (only != "latency" && only != "throughput" && only != "memory" && only != "overhead")
        return usage();
    } else {
      return usage();
    }
  }
  if (reps < 3 || n_gen < 2) return usage();
  auto wanted = [&](const char* part) { return only.empty() || only == part; };
  try {
    BenchModels models;
    const std::string path = models.path(kPreset);
    const ModelWeights& w = models.weights(kPreset, int8_head);
    const char* isa = bitnet::kernels::isa_name(bitnet::kernels::active_kernels().isa);
    const char* layout = bitnet::kernels::layout_name(w.layout());
    const std::string lm_head = bitnet::model::lm_head_name(w);
    Json j = {{"model", kPreset}, {"kernels", isa}, {"layout", layout}, {"lm_head", lm_head}};
    std::vector<Goal> goals;
    std::string text = std::string("engine targets on ") + kPreset + " (kernels " + isa +
                       ", layout " + layout + ", lm head " + lm_head + ")\n";

    if (wanted("latency")) {
      std::fprintf(stderr, "bench-engine-targets: latency...\n");
      const Latency lat = decode_latency(w, reps);
      j["latency"] = {{"threads", 1},         {"samples", lat.samples}, {"p50_ms", lat.p50_ms},
                      {"p95_ms", lat.p95_ms}, {"p99_ms", lat.p99_ms},   {"max_ms", lat.max_ms}};
      text += "\ndecode step, 1 thread, " + std::to_string(lat.samples) + " steps: P50 " +
              fmt("%.4f", lat.p50_ms) + " ms  P95 " + fmt("%.4f", lat.p95_ms) + " ms  P99 " +
              fmt("%.4f", lat.p99_ms) + " ms  max " + fmt("%.3f", lat.max_ms) + " ms\n";
      goals.push_back(
          {"decode step P99, 1 thread", fmt("%.4f ms", lat.p99_ms), "< 0.1 ms", lat.p99_ms < 0.1});
    }
    if (wanted("throughput")) {
      std::fprintf(stderr, "bench-engine-targets: batched throughput...\n");
      const std::vector<int64_t> batches = {1, 4, 8, 16, 32, 64, 128, 256};
      const auto curve = batched_throughput(w, 2, batches, std::max(3, reps / 3));
      const ThroughputPoint best = *std::max_element(
          curve.begin(), curve.end(),
          [](const auto& a, const auto& b) { return a.tokens_per_s < b.tokens_per_s; });
      Json c = Json::array();
      text += "\nbatched decode, 2 threads:\n" + std::string("   batch    step ms        tok/s\n");
      for (const auto& p : curve) {
        c.push_back({{"batch", p.batch}, {"step_ms", p.step_ms}, {"tokens_per_s", p.tokens_per_s}});
        text += fmt("  %6.0f", static_cast<double>(p.batch)) + fmt(" %10.4f", p.step_ms) +
                fmt(" %12.0f\n", p.tokens_per_s);
      }
      j["throughput"] = {{"threads", 2},
                         {"curve", c},
                         {"best_batch", best.batch},
                         {"best_tokens_per_s", best.tokens_per_s}};
      goals.push_back(
          {"batched decode, 2 threads",
           fmt("%.0f tok/s", best.tokens_per_s) + fmt(" (B=%.0f)", static_cast<double>(best.batch)),
           ">= 300000 tok/s", best.tokens_per_s >= 300000});
    }
    if (wanted("memory")) {
      std::fprintf(stderr, "bench-engine-targets: memory...\n");
      const Memory mem = measure_memory(path, int8_head);
      auto rss = [](const Rss& r) { return Json{{"rss", r.rss_mb}, {"hwm", r.hwm_mb}}; };
      j["memory_mb"] = {{"before_load", rss(mem.before)},
                        {"loaded_idle", rss(mem.loaded)},
                        {"after_request_idle", rss(mem.after_request)}};
      text += "\nmemory (child process, default EngineConfig): before load RSS " +
              fmt("%.1f", mem.before.rss_mb) + " MB; loaded, idle RSS " +
              fmt("%.1f", mem.loaded.rss_mb) + " MB (HWM " + fmt("%.1f", mem.loaded.hwm_mb) +
              "); after one request, idle RSS " + fmt("%.1f", mem.after_request.rss_mb) +
              " MB (HWM " + fmt("%.1f", mem.after_request.hwm_mb) + ")\n";
      goals.push_back({"RSS loaded and idle", fmt("%.1f MB", mem.loaded.rss_mb), "< 20 MB",
                       mem.loaded.rss_mb < 20});
    }
    if (wanted("overhead")) {
      std::fprintf(stderr, "bench-engine-targets: API overhead...\n");
      const Overhead o = api_overhead(path, w, n_gen, reps);
      Json loops = Json::array();
      text += "\nAPI overhead, 1 thread, " + std::to_string(o.prompt_tokens) + " prompt tokens + " +
              std::to_string(o.generated) + " generated, " + std::to_string(o.reps) +
              " repetitions:\n" + "  loop                                      median ms  " +
              "Engine / loop (median of paired ratios)\n";
      for (int v = 0; v < kVariants; ++v) {
        loops.push_back({{"loop", kVariantNames[v]},
                         {"median_ms", o.median_ms[v]},
                         {"engine_over_loop", o.paired_ratio[v]}});
        char line[160];
        std::snprintf(line, sizeof line, "  %-40s %10.3f  %.4f\n", kVariantNames[v], o.median_ms[v],
                      o.paired_ratio[v]);
        text += line;
      }
      j["api_overhead"] = {{"threads", 1},
                           {"prompt_tokens", o.prompt_tokens},
                           {"generated", o.generated},
                           {"reps", o.reps},
                           {"loops", loops},
                           {"ratio_of_medians_vs_bitnet_session", o.ratio_of_medians},
                           {"engine_timings_ms",
                            {{"queue", o.queue_ms},
                             {"first_token_after_queue", o.first_token_ms},
                             {"later_tokens", o.later_tokens_ms},
                             {"return_to_caller", o.return_ms}}}};
      text +=
          "  (ratio of medians, Engine / Session::eval loop: " + fmt("%.4f", o.ratio_of_medians) +
          ")\n  Engine::generate by its timings: " + "queue " + fmt("%.3f", o.queue_ms) +
          " ms, then first token " + fmt("%.3f", o.first_token_ms) + " ms, " +
          std::to_string(o.generated - 1) + " more tokens " + fmt("%.3f", o.later_tokens_ms) +
          " ms, return to the caller " + fmt("%.3f", o.return_ms) + " ms\n";
      const double pct = (o.paired_ratio[kSessionEval] - 1) * 100;
      goals.push_back({"Engine API overhead", fmt("%+.2f%%", pct), "< 1%", pct < 1.0});
    }

    bool all_met = true;
    Json g = Json::array();
    char head[160];
    std::snprintf(head, sizeof head, "\n%-28s %-24s %-16s %s\n", "target", "measured", "goal",
                  "verdict");
    text += head;
    for (const Goal& x : goals) {
      all_met = all_met && x.met;
      g.push_back({{"name", x.name}, {"measured", x.measured}, {"goal", x.goal}, {"met", x.met}});
      char line[160];
      std::snprintf(line, sizeof line, "%-28s %-24s %-16s %s\n", x.name.c_str(), x.measured.c_str(),
                    x.goal.c_str(), x.met ? "met" : "MISSED");
      text += line;
    }
    j["goals"] = g;
    if (json) {
      std::printf("%s\n", j.dump(1).c_str());
    } else {
      std::printf("%s", text.c_str());
    }
    if (check && !all_met) return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-engine-targets: %s\n", e.what());
    return 1;
  }
  return 0;
}
