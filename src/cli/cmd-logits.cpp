// bitnet logits: logits for a token sequence (and optionally greedy continuation), written in the
// layout of ../shared/reference's golden files so anyone can compare implementations.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "logits -m MODEL (-p TEXT | -f FILE | --tokens 1,2,3) [--greedy N] [--kv f32|f16]\n"
    "      [--no-act-quant] [-t N] [-c N] -o PREFIX";

constexpr const char* kOptions =
    "  -p, --prompt TEXT     tokenized with BOS per the vocabulary, special-token text parsed\n"
    "  -f, --file FILE       the text of FILE, tokenized as -p\n"
    "  --tokens 1,2,3        token ids as they are (no BOS added)\n"
    "  --greedy N            then N greedy steps (argmax, ties to the lowest id), one token each\n"
    "  --no-act-quant        validation mode: BitLinear with exact float products instead of\n"
    "                        int8 activations\n"
    "  -o PREFIX             writes PREFIX.json (tokens, settings) and PREFIX.f32 (the logits,\n"
    "                        float32 [rows][n_vocab])\n" BITNET_MODEL_OPTIONS_HELP
    "  -c, --ctx-size N      context in tokens (default: the model's, at most that)\n";

int cmd_logits(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  std::string tokens_arg, prefix, text, file;
  bool have_text = false, have_tokens = false;
  int64_t greedy = 0;
  bool no_act_quant = false;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (a == "--tokens") {
      tokens_arg = args.value(a);
      have_tokens = true;
    } else if (a == "-p" || a == "--prompt") {
      text = args.value(a);
      have_text = true;
    } else if (a == "-f" || a == "--file") {
      file = args.path_value(a);
    } else if (a == "--greedy") {
      greedy = args.int_value(a, 0, 1 << 20);
    } else if (a == "--no-act-quant") {
      no_act_quant = true;
    } else if (a == "-o" || a == "--output") {
      prefix = args.path_value(a);
    } else {
      args.unknown(a);
    }
  }
  if (mo.model.empty()) args.fail("-m MODEL is required");
  if (prefix.empty()) args.fail("-o PREFIX is required");
  if (int(have_tokens) + int(have_text) + int(!file.empty()) != 1) {
    args.fail("give exactly one of -p TEXT, -f FILE and --tokens 1,2,3");
  }
  std::vector<int32_t> tokens;
  if (have_tokens) tokens = parse_token_list("--tokens", tokens_arg);
  if (no_act_quant && mo.int8_head) {
    args.fail("--int8-head multiplies int8 activations; --no-act-quant has none");
  }
  if (prefix.back() == '/' || std::filesystem::is_directory(prefix)) {
    throw UsageError("-o " + prefix + ": a prefix for PREFIX.json and PREFIX.f32, not a directory");
  }
  if (!file.empty()) text = read_input_file("-f", file);
  // The outputs are checked before the work whose result they receive.
  check_writable("-o", prefix + ".f32");
  check_writable("-o", prefix + ".json");
  EngineConfig config = mo.engine_config();
  config.quantize_activations = !no_act_quant;
  const std::unique_ptr<Engine> engine = open_engine(mo, config);
  const EngineInfo& info = engine->info();
  check_trained_context(mo.n_ctx, info);
  if (!have_tokens) tokens = engine->tokenize(text, true, true);
  if (tokens.empty()) throw UsageError("the input has no tokens (and the vocabulary adds no BOS)");
  for (const int32_t t : tokens) {
    if (t >= info.n_vocab) {
      throw UsageError("--tokens: id " + std::to_string(t) + " is outside the vocabulary [0, " +
                       std::to_string(info.n_vocab) + ")");
    }
  }
  const auto V = static_cast<size_t>(info.n_vocab);
  if (static_cast<int64_t>(tokens.size()) + std::max<int64_t>(greedy - 1, 0) > info.context_size) {
    const std::string what = std::to_string(tokens.size()) + " tokens and " +
                             std::to_string(greedy) + " greedy steps do not fit the context of " +
                             std::to_string(info.context_size);
    if (mo.n_ctx > 0) {
      throw UsageError(what + " (-c; the model's is " + std::to_string(info.trained_context) + ")");
    }
    throw InputError(what + " (the model's)");
  }

  // One request: every prompt row's logits, then greedy steps (argmax, ties to the lowest id,
  // never stopping at an end-of-generation token) with the row each token was chosen from.
  GenerateOptions go;
  go.max_tokens = greedy;
  go.temperature = 0;
  go.repeat_penalty = 1;
  go.ignore_eos = true;
  go.prompt_logits = true;
  go.token_logits = true;
  const auto t0 = std::chrono::steady_clock::now();
  GenerateResult r = engine->generate(TokenPrompt{tokens}, go);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::vector<int32_t>& generated = r.tokens;
  // Rows: the prompt's, then one per greedy step after the first (the first greedy token was
  // chosen from the last prompt row).
  std::vector<float> logits = std::move(r.prompt_logits);
  if (r.token_logits.size() > V) {
    logits.insert(logits.end(), r.token_logits.begin() + static_cast<ptrdiff_t>(V),
                  r.token_logits.end());
  }
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isfinite(logits[i])) {
      throw std::runtime_error("row " + std::to_string(i / static_cast<size_t>(V)) +
                               ": the model produced a non-finite logit (token id " +
                               std::to_string(i % static_cast<size_t>(V)) + ")");
    }
  }
  const std::string f32_path = prefix + ".f32";
  {
    std::ofstream out(f32_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(logits.data()),
              static_cast<std::streamsize>(logits.size() * 4));
    if (!out.flush()) {
      out.close();
      std::remove(f32_path.c_str());  // no partial file left behind
      throw std::runtime_error(f32_path + ": write failed");
    }
  }
  nlohmann::ordered_json j;
  j["model"] = mo.model;
  j["prompt_tokens"] = tokens;
  j["greedy_tokens"] = generated;
  j["n_vocab"] = V;
  j["logits_file"] = f32_path;
  j["logits_shape"] = {logits.size() / static_cast<size_t>(V), V};
  j["logits_dtype"] = "float32 little-endian, row-major";
  j["rows"] =
      "one row per prompt position, then one per greedy step after the first (the last prompt row "
      "is the logits of greedy token 0)";
  j["settings"] = {{"activation_quantization", !no_act_quant},
                   {"kv", info.kv_type == KvCacheType::F16 ? "f16" : "f32"},
                   {"threads", info.threads},
                   {"n_ctx", info.context_size},
                   {"layout", info.layout},
                   {"kernels", info.kernels}};
  const std::string json_path = prefix + ".json";
  {
    std::ofstream out(json_path);
    out << j.dump(2) << "\n";
    if (!out.flush()) {
      out.close();
      std::remove(json_path.c_str());
      throw std::runtime_error(json_path + ": write failed");
    }
  }
  std::fprintf(stderr, "wrote %s and %s (%zu rows)\n", json_path.c_str(), f32_path.c_str(),
               logits.size() / static_cast<size_t>(V));
  std::fprintf(stderr, "prompt: %zu tokens (%.1f t/s); greedy: %zu tokens (%.1f t/s); %.3f s\n",
               tokens.size(), r.timings.prompt_tokens_per_second, generated.size(),
               r.timings.generation_tokens_per_second, secs);
  return kExitOk;
}

}  // namespace

BITNET_COMMAND("logits", kUsage,
               "logits for a token sequence (+ N greedy steps), written as PREFIX.json and\n"
               "PREFIX.f32 in the layout of the reference golden files; --no-act-quant runs the\n"
               "validation mode (BitLinear without int8 activation quantization)",
               kOptions, cmd_logits);

}  // namespace bitnet::cli
