// A fixed decode workload for the instruction-count gate (scripts/perf-gate.sh): one thread, F32
// KV cache, no prepared cache, greedy decoding. Only the function bitnet_callgrind_region is
// measured (callgrind --toggle-collect), so model loading, whose packer runs on several threads,
// does not add noise. Instruction counts are repeatable for the same binary and input.
//
//   decode-workload MODEL N_PROMPT N_DECODE [monitor]
//
// With "monitor" the session times every operation into a PerfMonitor (core/perf-monitor.h): the
// instruction counts with and without it give the monitor's overhead (docs/PERFORMANCE.md).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "core/perf-monitor.h"
#include "model/session.h"

namespace {

int64_t argmax(const std::vector<float>& v) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[static_cast<size_t>(best)]) best = static_cast<int64_t>(i);
  }
  return best;
}

}  // namespace

// Prefill of n_prompt tokens, then n_decode greedy steps. Not inlined: it is the measured region.
extern "C" __attribute__((noinline)) int32_t bitnet_callgrind_region(bitnet::model::Session& s,
                                                                     int s_slot, int64_t n_prompt,
                                                                     int64_t n_decode) {
  std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
  for (int64_t i = 0; i < n_prompt; ++i)
    prompt[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37 + 11) % s.n_vocab());
  std::vector<float> logits(static_cast<size_t>(s.n_vocab()));
  s.eval(s_slot, prompt, logits.data(), false);
  int32_t tok = 0;
  for (int64_t i = 0; i < n_decode; ++i) {
    tok = static_cast<int32_t>(argmax(logits));
    s.eval(s_slot, std::span<const int32_t>(&tok, 1), logits.data(), false);
  }
  return tok;
}

int main(int argc, char** argv) {
  const bool monitor = argc == 5 && std::string(argv[4]) == "monitor";
  if (argc != 4 && !monitor) {
    std::fprintf(stderr, "usage: decode-workload MODEL N_PROMPT N_DECODE [monitor]\n");
    return 2;
  }
  try {
    bitnet::model::LoadOptions lo;
    lo.cache = bitnet::model::CacheMode::Off;
    lo.layout = bitnet::kernels::TernaryLayout::T2;
    const auto w = bitnet::model::ModelWeights::load(argv[1], lo);
    bitnet::ThreadPool pool(1);
    bitnet::model::SessionOptions so;
    so.kv = bitnet::model::KvType::F32;
    so.n_ctx = 256;
    bitnet::model::Session s(*w, so, pool);
    const int s_slot = s.add_sequence();
    bitnet::PerfMonitor perf(bitnet::model::perf_op_names());
    if (monitor) s.set_monitor(&perf);
    const int32_t last =
        bitnet_callgrind_region(s, s_slot, std::atoll(argv[2]), std::atoll(argv[3]));
    std::printf("last token %d, kernels %s\n", last,
                bitnet::kernels::isa_name(bitnet::kernels::active_kernels().isa));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decode-workload: %s\n", e.what());
    return 1;
  }
}
