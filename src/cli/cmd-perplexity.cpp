// bitnet perplexity: chunked perplexity of a text, computed as llama.cpp's perplexity tool does:
// the token stream is cut into chunks of n_ctx tokens, each chunk starts with BOS (replacing its
// first token), and the negative log-likelihood is averaged over the second half of every chunk.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "model/tokenizer.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "perplexity -m MODEL -f TEXT [-c CTX] [-t N] [--chunks N] [--kv f16|f32]";

int cmd_perplexity(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  std::string file;
  int64_t max_chunks = -1;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (a == "-f" || a == "--file") {
      file = args.value(a);
    } else if (a == "--chunks") {
      max_chunks = args.int_value(a, 1, int64_t{1} << 30);
    } else {
      args.unknown(a);
    }
  }
  if (mo.model.empty() || file.empty()) {
    throw std::invalid_argument("-m MODEL and -f TEXT are required (usage: bitnet " +
                                std::string(kUsage) + ")");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  const auto weights = load_model(mo);
  const auto tok = model::Tokenizer::from_gguf(weights->file());
  const std::vector<int32_t> ids = tok.encode(text, false, false);
  ThreadPool pool(mo.threads);
  model::SessionOptions so = mo.session_options();
  if (so.n_ctx == 0) so.n_ctx = std::min<int64_t>(512, weights->config().n_ctx_train);
  model::BitNetSession session(*weights, so, pool);
  const int64_t n_ctx = session.n_ctx(), V = session.n_vocab();
  int64_t chunks = static_cast<int64_t>(ids.size()) / n_ctx;
  if (max_chunks > 0) chunks = std::min(chunks, max_chunks);
  if (chunks < 1) {
    throw std::invalid_argument(file + ": " + std::to_string(ids.size()) +
                                " tokens is less than one chunk of " + std::to_string(n_ctx) +
                                " (use a smaller -c)");
  }
  std::vector<float> logits(static_cast<size_t>(n_ctx * V));
  double nll = 0;
  int64_t counted = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t> chunk(ids.begin() + c * n_ctx, ids.begin() + (c + 1) * n_ctx);
    if (tok.bos() >= 0) chunk[0] = tok.bos();
    session.reset();
    session.eval(chunk, logits.data(), true);
    for (int64_t i = n_ctx / 2; i + 1 < n_ctx; ++i) {
      const float* row = logits.data() + i * V;
      float mx = row[0];
      for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
      const int32_t target = ids[static_cast<size_t>(c * n_ctx + i + 1)];
      nll += -(static_cast<double>(row[target] - mx) - std::log(sum));
      ++counted;
    }
    std::fprintf(stderr, "[%lld/%lld] running perplexity %.4f\n", static_cast<long long>(c + 1),
                 static_cast<long long>(chunks), std::exp(nll / static_cast<double>(counted)));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("perplexity: %.4f over %lld tokens (%lld chunks of %lld; %.1f tokens/s)\n",
              std::exp(nll / static_cast<double>(counted)), static_cast<long long>(counted),
              static_cast<long long>(chunks), static_cast<long long>(n_ctx),
              static_cast<double>(chunks * n_ctx) / secs);
  return 0;
}

}  // namespace

BITNET_COMMAND("perplexity", kUsage,
               "chunked perplexity of a text file as llama.cpp computes it (chunks of -c tokens,\n"
               "default 512, each starting with BOS; the second half of each chunk is scored)",
               cmd_perplexity);

}  // namespace bitnet::cli
