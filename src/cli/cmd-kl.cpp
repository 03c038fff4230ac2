// bitnet kl: how far a configuration (test: -m, --kv, --int8-head) moves the next-token
// distributions from a base configuration (--base, --base-kv) over the same tokens: KL(base ||
// test) per position and summarized (mean, median, P99, max), top-1 agreement, and both
// perplexities. The way llama.cpp's perplexity --kl-divergence judges a quantization, run here in
// one process.
//
// The token sequence is cut into windows of -c tokens; each window is evaluated from an empty
// cache in one eval with all logits (the session splits it into prefill batches), by both
// configurations. Position i of a window is scored when token i + 1 is in the same window.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "formats/gguf.h"
#include "tools/kl-divergence.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "kl -m MODEL [--base MODEL] [--kv f16|f32] [--base-kv f16|f32]\n"
    "      (-f TEXT_FILE | -p TEXT | --tokens 1,2,3 | --random-tokens N [--seed S])\n"
    "      [--no-act-quant] [-c CTX] [-t N] [--json] [--per-position]";

constexpr const char* kOptions =
    "  --base MODEL          the base configuration's model (default: -m)\n"
    "  --base-kv f16|f32     the base's KV cache type (default: --kv)\n"
    "  -f, --file FILE       the tokens of a text (BOS per the vocabulary, special-token text\n"
    "                        kept as text)\n"
    "  -p, --prompt TEXT     likewise for TEXT\n"
    "  --tokens 1,2,3        these token ids\n"
    "  --random-tokens N     N uniform random ids (--seed S, default 0)\n"
    "  --no-act-quant        both in the validation mode (no int8 activation quantization)\n"
    "  -c, --ctx-size N      window length (default: all tokens, up to the context length)\n"
    "  --json                one JSON object with every position\n"
    "  --per-position        a table of every position\n" BITNET_MODEL_OPTIONS_HELP
    "                        (--kv and --int8-head are the tested configuration's)\n";

constexpr const char* kSummary =
    "KL divergence of the next-token distributions of MODEL (with --kv) from a base\n"
    "configuration (--base, default MODEL; --base-kv, default --kv) over the same tokens:\n"
    "mean, median, P99 and max KL(base || test), top-1 agreement, both perplexities. The\n"
    "tokens are cut into windows of -c (default: all of them, up to the context length),\n"
    "each evaluated from an empty cache; --json adds every position. --no-act-quant runs\n"
    "both in the validation mode (BitLinear without int8 activation quantization)";

const char* kv_name(model::KvType kv) {
  return kv == model::KvType::F16 ? "f16" : "f32";
}

model::KvType parse_kv(const std::string& flag, const std::string& v) {
  if (v != "f16" && v != "f32") throw UsageError(flag + ": expected f16 or f32, found '" + v + "'");
  return v == "f16" ? model::KvType::F16 : model::KvType::F32;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  const bool eq = std::filesystem::equivalent(a, b, ec);
  return ec ? a == b : eq;
}

// Uniform ids in [0, n_vocab) from splitmix64 (rejection keeps them exactly uniform), so one seed
// gives the same sequence on every platform and standard library.
std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, uint64_t seed) {
  uint64_t state = seed;
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const uint64_t v = static_cast<uint64_t>(n_vocab);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % v;  // [0, limit) holds whole copies of [0, v)
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  while (static_cast<int64_t>(out.size()) < n) {
    const uint64_t x = next();
    if (x < limit) out.push_back(static_cast<int32_t>(x % v));
  }
  return out;
}

// Both models must score the same token ids: the same vocabulary size and, when both files are
// GGUF files carrying a tokenizer, the same token strings.
void check_same_vocabulary(const EngineInfo& base, const std::string& base_path,
                           const EngineInfo& test, const std::string& test_path) {
  if (base.n_vocab != test.n_vocab) {
    throw InputError("vocabularies differ: --base " + base_path + " has " +
                     std::to_string(base.n_vocab) + " tokens, -m " + test_path + " has " +
                     std::to_string(test.n_vocab));
  }
  if (std::filesystem::is_directory(base_path) || std::filesystem::is_directory(test_path)) return;
  const formats::GgufOpenOptions metadata_only{size_t{1} << 20};
  const auto fb = formats::GgufFile::open(base_path, metadata_only);
  const auto ft = formats::GgufFile::open(test_path, metadata_only);
  const auto* tb = fb.find("tokenizer.ggml.tokens");
  const auto* tt = ft.find("tokenizer.ggml.tokens");
  if (!tb || !tt || !tb->is_array_of<std::string>() || !tt->is_array_of<std::string>()) return;
  const auto& sb = tb->as_array<std::string>();
  const auto& st = tt->as_array<std::string>();
  for (size_t i = 0; i < std::min(sb.size(), st.size()); ++i) {
    if (sb[i] != st[i]) {
      throw InputError("vocabularies differ: token " + std::to_string(i) + " is '" + sb[i] +
                       "' in --base " + base_path + " but '" + st[i] + "' in -m " + test_path);
    }
  }
}

// open_engine, with the flag that named the file in front of any error about it.
std::unique_ptr<Engine> engine_for(const CommonModelOptions& o, EngineConfig config,
                                   const std::string& flag) {
  try {
    return open_engine(o, std::move(config));
  } catch (const InputError& e) {
    throw InputError(flag + ": " + e.what());
  }
}

struct Input {
  std::string kind;  // "file", "prompt", "tokens", "random"
  std::string file, text, tokens;
  int64_t random_n = 0;
  std::optional<uint64_t> seed;
};

std::vector<int32_t> input_tokens(const Input& in, const Engine& base) {
  if (in.kind == "random") return random_tokens(in.random_n, base.info().n_vocab, *in.seed);
  if (in.kind == "tokens") return parse_token_list("--tokens", in.tokens);
  // -f and -p: the base model's tokenizer (check_same_vocabulary has made sure the test model's
  // agrees), BOS added when the vocabulary asks for it, control-token text kept as text.
  return base.tokenize(in.text, true, false);
}

std::string input_description(const Input& in) {
  if (in.kind == "file") return "-f " + in.file;
  if (in.kind == "prompt") return "-p";
  if (in.kind == "tokens") return "--tokens";
  return "--random-tokens " + std::to_string(in.random_n) + " --seed " + std::to_string(*in.seed);
}

int cmd_kl(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  std::string base_path;
  std::optional<model::KvType> base_kv;
  Input in;
  int n_inputs = 0;
  bool json_out = false, per_position = false, no_act_quant = false;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (a == "--base") {
      base_path = args.path_value(a);
    } else if (a == "--base-kv") {
      base_kv = parse_kv(a, args.value(a));
    } else if (a == "-f" || a == "--file") {
      in.kind = "file";
      in.file = args.path_value(a);
      ++n_inputs;
    } else if (a == "-p" || a == "--prompt") {
      in.kind = "prompt";
      in.text = args.value(a);
      ++n_inputs;
    } else if (a == "--tokens") {
      in.kind = "tokens";
      in.tokens = args.value(a);
      ++n_inputs;
    } else if (a == "--random-tokens") {
      in.kind = "random";
      in.random_n = args.int_value(a, 2, int64_t{1} << 24);
      ++n_inputs;
    } else if (a == "--seed") {
      in.seed = args.u64_value(a);
    } else if (a == "--no-act-quant") {
      no_act_quant = true;
    } else if (a == "--json") {
      json_out = true;
    } else if (a == "--per-position") {
      per_position = true;
    } else {
      args.unknown(a);
    }
  }
  if (mo.model.empty()) args.fail("-m MODEL is required");
  if (n_inputs != 1) {
    args.fail("give exactly one of -f TEXT_FILE, -p TEXT, --tokens 1,2,3 and --random-tokens N");
  }
  if (in.seed && in.kind != "random") args.fail("--seed applies only to --random-tokens");
  if (no_act_quant && mo.int8_head) {
    args.fail("--int8-head multiplies int8 activations; --no-act-quant has none");
  }
  if (in.kind == "random" && !in.seed) in.seed = 0;  // as gen-dummy's default seed
  if (mo.n_ctx == 1) throw UsageError("-c: a window needs at least 2 tokens");
  // Read before the (slow) model loads, so a bad path fails at once.
  if (in.kind == "file") in.text = read_input_file("-f", in.file);
  if (base_path.empty()) base_path = mo.model;
  const model::KvType test_kv = mo.kv;
  if (!base_kv) base_kv = test_kv;

  // Two Engines, one per configuration (they share the weights when the model is the same file):
  // each window is one request scored from an empty context.
  EngineConfig base_config = mo.engine_config(), test_config = mo.engine_config();
  base_config.kv_type = *base_kv == model::KvType::F32 ? KvCacheType::F32 : KvCacheType::F16;
  test_config.kv_type = test_kv == model::KvType::F32 ? KvCacheType::F32 : KvCacheType::F16;
  base_config.quantize_activations = test_config.quantize_activations = !no_act_quant;
  CommonModelOptions bo = mo;
  bo.model = base_path;
  bo.int8_head = base_config.int8_lm_head = false;  // the tested configuration's option
  const std::unique_ptr<Engine> base =
      engine_for(bo, base_config, base_path == mo.model ? "-m" : "--base");
  const std::unique_ptr<Engine> test = engine_for(mo, test_config, "-m");
  if (!same_file(base_path, mo.model)) {
    check_same_vocabulary(base->info(), base_path, test->info(), mo.model);
  }

  const std::vector<int32_t> tokens = input_tokens(in, *base);
  const int64_t V = base->info().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= V) {
      throw UsageError(input_description(in) + ": token " + std::to_string(tokens[i]) + " at " +
                       std::to_string(i) + " is outside the vocabulary of " + std::to_string(V));
    }
  }
  const int64_t n_tokens = static_cast<int64_t>(tokens.size());
  if (n_tokens < 2) {
    const std::string what = input_description(in) + ": " + std::to_string(n_tokens) +
                             " token(s); at least 2 are needed to score one position";
    if (in.kind == "file" || in.kind == "prompt") throw InputError(what);
    throw UsageError(what);
  }
  const int64_t n_ctx_train = std::min(base->info().trained_context, test->info().trained_context);
  if (mo.n_ctx > n_ctx_train) {
    throw UsageError("-c " + std::to_string(mo.n_ctx) + " is above the trained context of " +
                     std::to_string(n_ctx_train) + " tokens");
  }
  const int64_t window = mo.n_ctx > 0 ? mo.n_ctx : std::min(n_tokens, n_ctx_train);

  std::vector<model::PositionComparison> cmp;
  std::vector<int64_t> cmp_pos;  // token index of each scored position
  double sec_base = 0, sec_test = 0;
  const int64_t n_windows = (n_tokens + window - 1) / window;
  GenerateOptions score;
  score.max_tokens = 0;
  score.prompt_logits = true;
  auto timed_eval = [&](Engine& e, std::span<const int32_t> t, std::vector<float>& out) {
    const auto t0 = std::chrono::steady_clock::now();
    out = e.generate(TokenPrompt{std::vector<int32_t>(t.begin(), t.end())}, score).prompt_logits;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<float> l_base, l_test;
  for (int64_t w = 0; w < n_windows; ++w) {
    const int64_t start = w * window, n = std::min(window, n_tokens - start);
    if (n < 2) break;  // a last window of one token has no next token to score
    const std::span<const int32_t> t(tokens.data() + start, static_cast<size_t>(n));
    sec_base += timed_eval(*base, t, l_base);
    sec_test += timed_eval(*test, t, l_test);
    for (int64_t i = 0; i + 1 < n; ++i) {
      const model::PositionComparison c =
          model::compare_position(l_base.data() + i * V, l_test.data() + i * V, V,
                                  tokens[static_cast<size_t>(start + i + 1)]);
      if (std::isnan(c.kl) || !std::isfinite(c.nll_base) || !std::isfinite(c.nll_test)) {
        throw std::runtime_error(
            "position " + std::to_string(start + i) + ": non-finite logits from " +
            (!std::isfinite(c.nll_base) ? "--base " + base_path : "-m " + mo.model));
      }
      cmp.push_back(c);
      cmp_pos.push_back(start + i);
    }
    if (n_windows > 1) {
      std::fprintf(stderr, "[%lld/%lld] %zu positions\n", static_cast<long long>(w + 1),
                   static_cast<long long>(n_windows), cmp.size());
    }
  }
  const model::KlSummary s = model::summarize(cmp);
  const double ppl_diff = s.ppl_test - s.ppl_base;

  if (json_out) {
    nlohmann::ordered_json j;
    j["base"] = {{"model", base_path},
                 {"kv", kv_name(*base_kv)},
                 {"lm_head", base->info().lm_head},
                 {"eval_seconds", sec_base}};
    j["test"] = {{"model", mo.model},
                 {"kv", kv_name(test_kv)},
                 {"lm_head", test->info().lm_head},
                 {"eval_seconds", sec_test}};
    j["input"] = input_description(in);
    j["tokens"] = n_tokens;
    j["window"] = window;
    j["positions"] = s.positions;
    j["kl"] = {{"mean", s.kl_mean},
               {"median", s.kl_median},
               {"p99", s.kl_p99},
               {"max", s.kl_max},
               {"max_position", cmp_pos[static_cast<size_t>(s.kl_max_index)]}};
    j["top1_agreement"] = s.top1_agreement;
    j["top1_same"] = s.top1_same;
    j["perplexity"] = {{"base", s.ppl_base}, {"test", s.ppl_test}, {"diff", ppl_diff}};
    j["settings"] = {{"threads", base->info().threads},
                     {"layout", base->info().layout},
                     {"kernels", base->info().kernels},
                     {"activation_quantization", !no_act_quant},
                     {"units", "nats"}};
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (size_t i = 0; i < cmp.size(); ++i) {
      const model::PositionComparison& c = cmp[i];
      rows.push_back({{"pos", cmp_pos[i]},
                      {"next", tokens[static_cast<size_t>(cmp_pos[i] + 1)]},
                      {"kl", c.kl},
                      {"top1_base", c.top1_base},
                      {"top1_test", c.top1_test},
                      {"nll_base", c.nll_base},
                      {"nll_test", c.nll_test}});
    }
    j["per_position"] = std::move(rows);
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  if (per_position) {
    std::printf("%6s %7s %12s %9s %9s %10s %10s\n", "pos", "next", "kl", "top1_base", "top1_test",
                "nll_base", "nll_test");
    for (size_t i = 0; i < cmp.size(); ++i) {
      const model::PositionComparison& c = cmp[i];
      std::printf("%6lld %7d %12.4e %9d %9d %10.4f %10.4f\n", static_cast<long long>(cmp_pos[i]),
                  tokens[static_cast<size_t>(cmp_pos[i] + 1)], c.kl, c.top1_base, c.top1_test,
                  c.nll_base, c.nll_test);
    }
  }
  std::printf("base: %s (kv %s, lm head %s), %.2f s\n", base_path.c_str(), kv_name(*base_kv),
              base->info().lm_head.c_str(), sec_base);
  std::printf("test: %s (kv %s, lm head %s), %.2f s\n", mo.model.c_str(), kv_name(test_kv),
              test->info().lm_head.c_str(), sec_test);
  if (no_act_quant) std::printf("both without activation quantization (--no-act-quant)\n");
  std::printf("input: %s, %lld tokens, windows of %lld, %lld positions scored\n",
              input_description(in).c_str(), static_cast<long long>(n_tokens),
              static_cast<long long>(window), static_cast<long long>(s.positions));
  std::printf(
      "KL(base || test), nats: mean %.6e  median %.6e  P99 %.6e  max %.6e (position %lld)\n",
      s.kl_mean, s.kl_median, s.kl_p99, s.kl_max,
      static_cast<long long>(cmp_pos[static_cast<size_t>(s.kl_max_index)]));
  std::printf("top-1 agreement: %.4f%% (%lld of %lld)\n", 100.0 * s.top1_agreement,
              static_cast<long long>(s.top1_same), static_cast<long long>(s.positions));
  std::printf("perplexity: base %.6f  test %.6f  diff %+.6f (%+.4f%%)\n", s.ppl_base, s.ppl_test,
              ppl_diff, 100.0 * ppl_diff / s.ppl_base);
  if (!std::isfinite(s.ppl_base) || !std::isfinite(s.ppl_test)) {
    std::printf(
        "(a perplexity of inf: its mean NLL is above 709 nats per token, the model gives\n"
        " the text probability 0 at float precision; KL above is finite and exact)\n");
  }
  return 0;
}

}  // namespace

BITNET_COMMAND("kl", kUsage, kSummary, kOptions, cmd_kl);

}  // namespace bitnet::cli
