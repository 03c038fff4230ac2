// bitnet perplexity: the perplexity of a text, computed as llama.cpp's llama-perplexity does:
//   tokens = the text tokenized with the model's BOS setting (special-token text not parsed);
//   at least 2 * n_ctx tokens are required; n_chunk = n_tokens / n_ctx (the tail is unused);
//   chunk c = tokens[c * n_ctx, (c + 1) * n_ctx), its first token replaced by BOS when the
//   vocabulary adds BOS, evaluated from an empty cache;
//   NLL = mean over chunks and j in [n_ctx / 2, n_ctx - 1) of -log softmax(logits[j])[token j+1];
//   PPL = exp(NLL), with llama.cpp's standard error.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli-common.h"
#include "cli/commands.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "perplexity -m MODEL -f TEXT [-c N] [-t N] [--chunks N] [--kv f16|f32]";

constexpr const char* kOptions =
    "  -f, --file FILE       the text (UTF-8)\n"
    "  -c, --ctx-size N      tokens per chunk (default 512, as llama-perplexity is usually run;\n"
    "                        at least 3 and at most the model's context); the text must have\n"
    "                        at least 2 x N tokens\n"
    "  --chunks N            score at most N chunks (default: all)\n" BITNET_MODEL_OPTIONS_HELP;

constexpr int64_t kDefaultChunk = 512;

int cmd_perplexity(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  std::string file;
  int64_t max_chunks = -1;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (a == "-f" || a == "--file") {
      file = args.path_value(a);
    } else if (a == "--chunks") {
      max_chunks = args.int_value(a, 1, int64_t{1} << 30);
    } else {
      args.unknown(a);
    }
  }
  if (mo.model.empty() || file.empty()) args.fail("-m MODEL and -f TEXT are required");
  // n_ctx / 2 .. n_ctx - 2 are scored: fewer than 3 positions score nothing.
  if (mo.n_ctx != 0 && mo.n_ctx < 3) {
    throw UsageError(
        "-c " + std::to_string(mo.n_ctx) +
        ": a chunk needs at least 3 tokens (its second half, but the last, is scored)");
  }
  const std::string text = read_input_file("-f", file);

  // The Engine with a context of one chunk; each chunk is one request scored in full from an
  // empty context (prompt_logits never takes positions from the prefix cache).
  const std::unique_ptr<Engine> engine = [&] {
    CommonModelOptions chunked = mo;
    chunked.n_ctx = mo.n_ctx > 0 ? mo.n_ctx : kDefaultChunk;
    EngineConfig config = chunked.engine_config();
    auto e = open_engine(chunked, config);
    check_trained_context(mo.n_ctx, e->info());
    return e;
  }();
  const EngineInfo& info = engine->info();
  const std::vector<int32_t> tokens = engine->tokenize(text, true, false);
  const std::vector<int32_t> bos = engine->tokenize("", true, false);  // [BOS] when it adds one
  const int64_t n_ctx = info.context_size;
  const auto V = static_cast<size_t>(info.n_vocab);
  const auto n_tokens = static_cast<int64_t>(tokens.size());
  if (n_tokens < 2 * n_ctx) {
    throw InputError("-f " + file + ": " + std::to_string(n_tokens) + " tokens; perplexity with " +
                     "chunks of " + std::to_string(n_ctx) + " needs at least 2 x " +
                     std::to_string(n_ctx) + " = " + std::to_string(2 * n_ctx) +
                     " (as llama-perplexity; use a smaller -c or a longer text)");
  }
  int64_t chunks = n_tokens / n_ctx;
  if (max_chunks > 0) chunks = std::min(chunks, max_chunks);
  const int64_t first = n_ctx / 2;
  std::fprintf(
      stderr, "%lld tokens (%s BOS), %lld chunk%s of %lld, scoring positions %lld..%lld of each\n",
      static_cast<long long>(n_tokens), bos.empty() ? "without" : "with",
      static_cast<long long>(chunks), chunks == 1 ? "" : "s", static_cast<long long>(n_ctx),
      static_cast<long long>(first), static_cast<long long>(n_ctx - 2));

  GenerateOptions score;
  score.max_tokens = 0;
  score.prompt_logits = true;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t c = 0; c < chunks; ++c) {
    const int32_t* src = tokens.data() + c * n_ctx;
    TokenPrompt chunk{std::vector<int32_t>(src, src + n_ctx)};
    if (!bos.empty()) chunk.tokens[0] = bos.front();
    const GenerateResult r = engine->generate(std::move(chunk), score);
    const std::vector<float>& logits = r.prompt_logits;
    for (size_t i = 0; i < logits.size(); ++i) {
      if (!std::isfinite(logits[i])) {
        throw std::runtime_error(
            "chunk " + std::to_string(c + 1) + ", position " + std::to_string(i / V) +
            ": the model produced a non-finite logit (token id " + std::to_string(i % V) + ")");
      }
    }
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + static_cast<size_t>(j) * V;
      double mx = -INFINITY;
      for (size_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      double sum = 0;
      for (size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      const int32_t target = src[j + 1];
      const double term = -(static_cast<double>(row[target]) - mx - std::log(sum));
      nll += term;
      nll2 += term * term;
      ++count;
    }
    std::fprintf(stderr, "[%lld/%lld] running perplexity %.4f\n", static_cast<long long>(c + 1),
                 static_cast<long long>(chunks), std::exp(nll / static_cast<double>(count)));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double mean = nll / static_cast<double>(count);
  const double ppl = std::exp(mean);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  const double err =
      var > 0 && count > 1 ? std::sqrt(var / static_cast<double>(count - 1)) * ppl : 0.0;
  // exp(mean NLL) overflows above ~709 nats (a model that gives the text probability 0 at float
  // precision): the mean NLL is printed with it, always.
  std::printf(
      "perplexity: %.4f +/- %.5f (mean NLL %.6g nats) over %lld token%s (%lld chunk%s of "
      "%lld; %.1f tokens/s)\n",
      ppl, err, mean, static_cast<long long>(count), count == 1 ? "" : "s",
      static_cast<long long>(chunks), chunks == 1 ? "" : "s", static_cast<long long>(n_ctx),
      static_cast<double>(chunks * n_ctx) / secs);
  return kExitOk;
}

}  // namespace

BITNET_COMMAND("perplexity", kUsage,
               "perplexity of a text file, computed as llama.cpp's llama-perplexity does: the\n"
               "text tokenized with the model's BOS setting, cut into chunks of -c tokens (each\n"
               "starting with BOS when the model adds one), the second half of each chunk scored",
               kOptions, cmd_perplexity);

}  // namespace bitnet::cli
