// Aggregate decode throughput through the public Engine (issue 5: "aggregate decode tokens/s for
// 1, 4, 16 and 64 concurrent sequences"): for each S, an Engine with max_concurrent_requests = S
// gets S requests at once (different prompts, greedy, D tokens each); the aggregate is all
// generated tokens over the wall time from the first submit to the last completion, prompts
// included, and the decode-only rate from each request's own timings. The same S sequences run
// through Session directly (bench-batched) give the engine's overhead. Numbers only.
//
//   bench-engine-batching MODEL [--threads N] [--decode D] [--runs R] S...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <string>
#include <vector>

#include "bitnet/engine.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bench-engine-batching MODEL [--threads N] [--decode D] [--runs R] S...\n");
    return 2;
  }
  const std::string model = argv[1];
  int threads = 2, runs = 3;
  int64_t decode = 32;
  std::vector<int> sizes;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--threads" || a == "--decode" || a == "--runs") && i + 1 < argc) {
      const long v = std::atol(argv[++i]);
      if (v < 1) {
        std::fprintf(stderr, "%s: expected a positive number\n", a.c_str());
        return 2;
      }
      if (a == "--threads") threads = static_cast<int>(v);
      if (a == "--decode") decode = v;
      if (a == "--runs") runs = static_cast<int>(v);
    } else if (std::atoi(a.c_str()) > 0) {
      sizes.push_back(std::atoi(a.c_str()));
    } else {
      std::fprintf(stderr, "unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  try {
    std::printf("%-6s %12s %14s %16s %10s\n", "S", "wall ms", "aggregate t/s", "decode t/s/seq",
                "steps");
    for (int S : sizes) {
      bitnet::EngineConfig c;
      c.threads = threads;
      c.max_concurrent_requests = S;
      c.max_batch_tokens = std::max<int64_t>(256, S);
      c.context_size = 256;
      bitnet::Engine engine(model, c);
      bitnet::GenerateOptions o;
      o.max_tokens = decode;
      o.temperature = 0;
      std::vector<double> aggregate, per_seq;
      uint64_t steps = 0;
      for (int r = 0; r <= runs; ++r) {  // run 0 warms up
        const uint64_t steps0 = engine.stats().steps;
        const auto t0 = Clock::now();
        std::vector<std::future<bitnet::GenerateResult>> f;
        for (int s = 0; s < S; ++s) {
          f.push_back(engine.submit("Request " + std::to_string(s) + " of a batch:", o));
        }
        int64_t tokens = 0;
        std::vector<double> rates;
        for (auto& x : f) {
          const bitnet::GenerateResult res = x.get();
          tokens += static_cast<int64_t>(res.tokens.size());
          rates.push_back(res.timings.generation_tokens_per_second);
        }
        const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
        if (r == 0) continue;
        aggregate.push_back(static_cast<double>(tokens) / wall);
        per_seq.push_back(median(rates));
        steps = engine.stats().steps - steps0;
      }
      std::printf("%-6d %12.1f %14.1f %16.2f %10llu\n", S,
                  1000.0 * static_cast<double>(S * decode) / median(aggregate), median(aggregate),
                  median(per_seq), static_cast<unsigned long long>(steps));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
