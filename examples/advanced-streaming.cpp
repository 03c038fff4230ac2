// An Engine configured by a preset, streaming the text as it is generated, then the timings and
// memory statistics.
//   example-advanced-streaming [MODEL] [PROMPT] [speed|memory|none]
#include <bitnet/engine.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  const std::string model = argc > 1 && *argv[1] ? argv[1] : BITNET_EXAMPLE_MODEL;
  const std::string prompt = argc > 2 ? argv[2] : "Once upon a time";
  const std::string preset = argc > 3 ? argv[3] : "speed";
  try {
    bitnet::EngineConfig config = preset == "memory" ? bitnet::EngineConfig::optimized_for_memory()
                                  : preset == "none"
                                      ? bitnet::EngineConfig(bitnet::OptimizationLevel::None)
                                      : bitnet::EngineConfig::optimized_for_speed();
    bitnet::Engine engine(model, config);
    const bitnet::EngineInfo& info = engine.info();
    std::fprintf(stderr, "%s: %s, layout %s, kernels %s, %d threads, context %lld, weights: %s\n",
                 info.model_path.c_str(), info.architecture.c_str(), info.layout.c_str(),
                 info.kernels.c_str(), info.threads, static_cast<long long>(info.context_size),
                 info.weights_source.c_str());

    bitnet::GenerateOptions options;
    options.max_tokens = 48;
    options.stop = {"\n\n"};
    std::fputs(prompt.c_str(), stdout);
    const bitnet::GenerateResult r = engine.generate(prompt, options, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;  // false would stop here
    });
    std::fputs("\n", stdout);

    const bitnet::EngineStats s = engine.stats();
    std::fprintf(stderr,
                 "%zu tokens, stopped: %s | prompt %.1f t/s, generation %.1f t/s, first token "
                 "%.2f ms | weights %.2f MiB, KV pages peak %.2f MiB, peak %.2f MiB\n",
                 r.tokens.size(), bitnet::to_string(r.stop_reason),
                 r.timings.prompt_tokens_per_second, r.timings.generation_tokens_per_second,
                 r.timings.time_to_first_token_ms, static_cast<double>(s.weights_bytes) / 1048576.0,
                 static_cast<double>(s.kv_peak_bytes) / 1048576.0,
                 static_cast<double>(s.peak_bytes) / 1048576.0);
  } catch (const bitnet::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
