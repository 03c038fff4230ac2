// Aggregate decode throughput of Session (issue 5 item 2): S sequences prefilled with a
// short prompt, then decoded together, one token per sequence per step, greedy. Reports per S the
// median over runs of the decode step time and the aggregate tokens/s (S tokens per step), plus
// the batched prefill rate. A benchmark, not a test: numbers only.
//
//   bench-batched MODEL [--threads N] [--prompt N] [--decode N] [--runs N] [--kv f16|f32] S...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "model/session.h"

namespace {

using bitnet::ThreadPool;
using namespace bitnet::model;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int32_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

struct RunTimes {
  double prefill_s = 0;               // all S prompts
  std::vector<double> decode_step_s;  // one entry per decode step
};

RunTimes run_once(const ModelWeights& w, ThreadPool& pool, KvType kv, int64_t S, int64_t n_prompt,
                  int64_t n_decode) {
  SessionOptions bo;
  bo.max_sequences = S;
  bo.n_ctx = n_prompt + n_decode;
  bo.kv = kv;
  bo.max_batch_tokens = std::max<int64_t>(S, 64);
  Session b(w, bo, pool);
  const int64_t V = b.n_vocab();
  std::vector<int> slot(static_cast<size_t>(S));
  for (auto& s : slot) s = b.add_sequence();
  std::vector<float> logits(static_cast<size_t>(bo.max_batch_tokens * V));
  std::vector<BatchItem> items;
  std::vector<int32_t> next(static_cast<size_t>(S));
  RunTimes r;

  // Prefill: prompt tokens of all sequences packed into steps of max_batch_tokens items; the
  // last prompt token of each sequence asks for logits.
  std::vector<BatchItem> all;
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t i = 0; i < n_prompt; ++i) {
      const auto tok = static_cast<int32_t>((s * 7919 + i * 37 + 11) % V);
      all.push_back({slot[static_cast<size_t>(s)], tok, i == n_prompt - 1});
    }
  }
  const Clock::time_point t0 = Clock::now();
  int64_t row_of_seq = 0;
  for (size_t start = 0; start < all.size(); start += static_cast<size_t>(bo.max_batch_tokens)) {
    const size_t n = std::min(all.size() - start, static_cast<size_t>(bo.max_batch_tokens));
    b.step(std::span<const BatchItem>(all.data() + start, n), logits.data());
    int64_t r_out = 0;
    for (size_t i = start; i < start + n; ++i) {
      if (!all[i].wants_logits) continue;
      next[static_cast<size_t>(row_of_seq++)] = argmax(logits.data() + r_out++ * V, V);
    }
  }
  r.prefill_s = seconds_since(t0);

  for (int64_t step = 0; step < n_decode; ++step) {
    items.clear();
    for (int64_t s = 0; s < S; ++s) {
      items.push_back({slot[static_cast<size_t>(s)], next[static_cast<size_t>(s)], true});
    }
    const Clock::time_point t1 = Clock::now();
    b.step(items, logits.data());
    for (int64_t s = 0; s < S; ++s) next[static_cast<size_t>(s)] = argmax(logits.data() + s * V, V);
    r.decode_step_s.push_back(seconds_since(t1));
  }
  return r;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench-batched MODEL [--threads N] [--prompt N] [--decode N] [--runs N] "
               "[--kv f16|f32] [--layout t1|t2] S...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string model = argv[1];
  int threads = 2;
  int64_t n_prompt = 16, n_decode = 8, runs = 3;
  KvType kv = KvType::F16;
  LoadOptions lo;  // layout: the loader's choice unless --layout (t2 is packed in memory, no cache)
  std::vector<int64_t> sizes;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--threads" && (v = value())) {
      threads = std::atoi(v);
    } else if (a == "--prompt" && (v = value())) {
      n_prompt = std::atoll(v);
    } else if (a == "--decode" && (v = value())) {
      n_decode = std::atoll(v);
    } else if (a == "--runs" && (v = value())) {
      runs = std::atoll(v);
    } else if (a == "--kv" && (v = value())) {
      kv = std::strcmp(v, "f32") == 0 ? KvType::F32 : KvType::F16;
    } else if (a == "--layout" && (v = value())) {
      lo.layout = std::strcmp(v, "t2") == 0 ? bitnet::kernels::TernaryLayout::T2
                                            : bitnet::kernels::TernaryLayout::T1;
      if (*lo.layout == bitnet::kernels::TernaryLayout::T2) lo.cache = CacheMode::Off;
    } else if (!a.empty() && a[0] != '-') {
      sizes.push_back(std::atoll(a.c_str()));
    } else {
      return usage();
    }
  }
  if (sizes.empty() || threads < 1 || n_prompt < 1 || n_decode < 1 || runs < 1) return usage();
  try {
    const auto w = ModelWeights::load(model, lo);
    ThreadPool pool(threads);
    std::printf(
        "model %s, layout %s, %s, %d threads, prompt %lld, %lld decode steps, %lld runs "
        "(medians)\n",
        model.c_str(), bitnet::kernels::layout_name(w->layout()),
        bitnet::kernels::isa_name(bitnet::kernels::active_kernels().isa), threads,
        static_cast<long long>(n_prompt), static_cast<long long>(n_decode),
        static_cast<long long>(runs));
    std::printf("%6s %14s %14s %16s %16s\n", "seqs", "step ms", "decode t/s", "per-seq t/s",
                "prefill t/s");
    for (int64_t S : sizes) {
      std::vector<double> step_s, prefill_tps;
      for (int64_t r = 0; r < runs; ++r) {
        const RunTimes t = run_once(*w, pool, kv, S, n_prompt, n_decode);
        step_s.push_back(median(t.decode_step_s));
        prefill_tps.push_back(static_cast<double>(S * n_prompt) / t.prefill_s);
      }
      const double step = median(step_s);
      std::printf("%6lld %14.2f %14.2f %16.2f %16.2f\n", static_cast<long long>(S), step * 1e3,
                  static_cast<double>(S) / step, 1.0 / step, median(prefill_tps));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-batched: %s\n", e.what());
    return 1;
  }
  return 0;
}
