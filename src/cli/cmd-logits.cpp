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
#include "model/bitnet-b158.h"
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

int64_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

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
  if (prefix.back() == '/' || std::filesystem::is_directory(prefix)) {
    throw UsageError("-o " + prefix + ": a prefix for PREFIX.json and PREFIX.f32, not a directory");
  }
  if (!file.empty()) text = read_input_file("-f", file);
  // The outputs are checked before the work whose result they receive.
  check_writable("-o", prefix + ".f32");
  check_writable("-o", prefix + ".json");
  const auto weights = load_model(mo);
  if (!have_tokens) tokens = load_tokenizer(*weights).encode(text, true, true);
  if (tokens.empty()) throw UsageError("the input has no tokens (and the vocabulary adds no BOS)");
  for (const int32_t t : tokens) {
    if (t >= weights->config().n_vocab) {
      throw UsageError("--tokens: id " + std::to_string(t) + " is outside the vocabulary [0, " +
                       std::to_string(weights->config().n_vocab) + ")");
    }
  }
  ThreadPool pool(mo.resolved_threads());
  model::SessionOptions so = mo.session_options(weights->config());
  so.quantize_activations = !no_act_quant;
  model::BitNetSession session(*weights, so, pool);
  const int64_t V = session.n_vocab();
  if (static_cast<int64_t>(tokens.size()) + std::max<int64_t>(greedy - 1, 0) > session.n_ctx()) {
    const std::string what = std::to_string(tokens.size()) + " tokens and " +
                             std::to_string(greedy) + " greedy steps do not fit the context of " +
                             std::to_string(session.n_ctx());
    if (mo.n_ctx > 0) {
      throw UsageError(what + " (-c; the model's is " +
                       std::to_string(weights->config().n_ctx_train) + ")");
    }
    throw InputError(what + " (the model's)");
  }

  std::vector<float> logits(tokens.size() * static_cast<size_t>(V));
  const auto t0 = std::chrono::steady_clock::now();
  session.eval(tokens, logits.data(), true);
  const double t_prompt =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<int32_t> generated;
  std::vector<float> row(static_cast<size_t>(V));
  std::copy(logits.end() - V, logits.end(), row.begin());
  const auto t1 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < greedy; ++i) {
    const int32_t next = static_cast<int32_t>(argmax(row.data(), V));
    generated.push_back(next);
    if (i + 1 == greedy) break;  // the last greedy token needs no further logits row
    session.eval(std::span<const int32_t>(&next, 1), row.data(), false);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  const double t_gen = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();

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
                   {"kv", so.kv == model::KvType::F16 ? "f16" : "f32"},
                   {"threads", pool.size()},
                   {"n_ctx", session.n_ctx()},
                   {"layout", kernels::layout_name(weights->layout())},
                   {"kernels", kernels::isa_name(kernels::active_kernels().isa)}};
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
  std::fprintf(stderr, "prompt: %zu tokens in %.3f s (%.1f t/s); greedy: %lld tokens (%.1f t/s)\n",
               tokens.size(), t_prompt, static_cast<double>(tokens.size()) / t_prompt,
               static_cast<long long>(greedy),
               greedy > 1 ? static_cast<double>(greedy - 1) / t_gen : 0.0);
  return kExitOk;
}

}  // namespace

BITNET_COMMAND("logits", kUsage,
               "logits for a token sequence (+ N greedy steps), written as PREFIX.json and\n"
               "PREFIX.f32 in the layout of the reference golden files; --no-act-quant runs the\n"
               "validation mode (BitLinear without int8 activation quantization)",
               kOptions, cmd_logits);

}  // namespace bitnet::cli
