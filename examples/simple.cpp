// The one-call API: load a model (through the process-wide model cache) and generate text.
//   example-simple [MODEL] [PROMPT]
#include <bitnet/engine.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  const std::string model = argc > 1 && *argv[1] ? argv[1] : BITNET_EXAMPLE_MODEL;
  const std::string prompt = argc > 2 ? argv[2] : "The quick brown fox jumps over the lazy dog.";
  bitnet::GenerateOptions options;
  options.temperature = 0;  // greedy: the same text every run
  options.max_tokens = 16;
  try {
    std::printf("%s%s\n", prompt.c_str(), bitnet::generate(model, prompt, options).c_str());
  } catch (const bitnet::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
