// bitnet run: generate text from a prompt through the Engine (the path the C++ API and the server
// run), streaming whole UTF-8 characters to stdout; timings on stderr.
#include <cstdio>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "cli/default-model.h"
#include "tokenizer/chat-template.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "run [-m MODEL] (-p PROMPT | -f FILE) [-n N] [-t N] [-c N] [sampling options]\n"
    "      [--stop TEXT]... [--ignore-eos] [--chat] [--system TEXT] [--chat-template NAME]\n"
    "      [--display-prompt] [-e] [--profile FILE.json [--profile-series]]";

constexpr const char* kOptions =
    "  -p, --prompt TEXT     the prompt (special-token text such as <|eot_id|> is parsed)\n"
    "  -f, --file FILE       read the prompt from FILE\n"
    "  -e, --escape          process escapes in the prompt (\\n \\t \\\\ \\xHH ...)\n"
    "  -n, --n-predict N     tokens to generate (default 64; -1: until end of generation or\n"
    "                        the context is full)\n" BITNET_MODEL_OPTIONS_HELP
    "  -c, --ctx-size N      context in tokens (default: the model's, at most that)\n"
    "sampling (llama.cpp's chain and defaults; --temp 0 is greedy):\n"
    "  --temp T              temperature (default 0.8)\n"
    "  --top-k K             keep the K most likely tokens (default 40; 0: off)\n"
    "  --top-p P             nucleus sampling (default 0.95; 1: off)\n"
    "  --min-p P             drop tokens below P x the top probability (default 0.05; 0: off)\n"
    "  --repeat-penalty R    penalty for repeated tokens (default 1.0: off)\n"
    "  --repeat-last-n N     tokens the penalties look back over (default 64; 0: off; -1: all)\n"
    "  --presence-penalty P  subtracted from each token seen in that window (default 0: off)\n"
    "  --frequency-penalty F subtracted once per time a token was seen there (default 0: off)\n"
    "  -s, --seed S          random seed (default: fixed, so runs repeat; llama.cpp's default\n"
    "                        is random)\n"
    "generation:\n"
    "  --stop TEXT           stop when TEXT is generated (not printed); repeatable\n"
    "  --ignore-eos          never stop at an end-of-generation token\n"
    "  --chat                wrap the prompt in the model's chat template as a user turn\n"
    "  --system TEXT         system message (implies --chat)\n"
    "  --chat-template NAME  bitnet-2b4t, llama3 or plain instead of the model's (implies --chat)\n"
    "output:\n"
    "  --display-prompt      echo the prompt before the generated text (default: only the\n"
    "                        generated text is printed; llama.cpp's llama-cli echoes it by\n"
    "                        default); --no-display-prompt is accepted and is the default\n"
    "  --profile FILE.json   time of every operation (matmul kinds, attention, norms, LM head,\n"
    "                        sampling, tokenization) with per-step P50/P95/P99\n"
    "  --profile-series      ... and every step's times\n";

int cmd_run(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  std::string prompt, prompt_file, profile_path, system, forced_template;
  bool have_prompt = false, chat = false, profile_series = false, display_prompt = false;
  bool escapes = false;
  GenerateOptions go;
  int64_t n_predict = 64;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (a == "-p" || a == "--prompt") {
      prompt = args.value(a);
      have_prompt = true;
    } else if (a == "-f" || a == "--file") {
      prompt_file = args.path_value(a);
    } else if (a == "-e" || a == "--escape") {
      escapes = true;
    } else if (a == "-n" || a == "--n-predict") {
      n_predict = args.int_value(a, -1, int64_t{1} << 24);
    } else if (a == "--temp") {
      go.temperature = static_cast<float>(args.float_value(a, 0, 100));
    } else if (a == "--top-k") {
      go.top_k = static_cast<int32_t>(args.int_value(a, 0, 1 << 30));
    } else if (a == "--top-p") {
      go.top_p = static_cast<float>(args.float_value(a, 1e-6, 1));
    } else if (a == "--min-p") {
      go.min_p = static_cast<float>(args.float_value(a, 0, 1));
    } else if (a == "--repeat-penalty") {
      go.repeat_penalty = static_cast<float>(args.float_value(a, 1e-3, 100));
    } else if (a == "--repeat-last-n") {
      go.repeat_last_n = static_cast<int32_t>(args.int_value(a, -1, 1 << 30));
    } else if (a == "--presence-penalty") {
      go.presence_penalty = static_cast<float>(args.float_value(a, -100, 100));
    } else if (a == "--frequency-penalty") {
      go.frequency_penalty = static_cast<float>(args.float_value(a, -100, 100));
    } else if (a == "-s" || a == "--seed") {
      go.seed = args.u64_value(a);
    } else if (a == "--stop") {
      go.stop.push_back(args.value(a));
      if (go.stop.back().empty()) throw UsageError("--stop: the stop string is empty");
    } else if (a == "--ignore-eos") {
      go.ignore_eos = true;
    } else if (a == "--chat") {
      chat = true;
    } else if (a == "--system") {
      system = args.value(a);
      chat = true;
    } else if (a == "--chat-template") {
      forced_template = args.value(a);
      if (forced_template.empty()) throw UsageError("--chat-template: the name is empty");
      chat = true;
    } else if (a == "--display-prompt") {
      display_prompt = true;
    } else if (a == "--no-display-prompt") {
      display_prompt = false;
    } else if (a == "--profile") {
      profile_path = args.path_value(a);
    } else if (a == "--profile-series") {
      profile_series = true;
    } else {
      args.unknown(a);
    }
  }
  if (have_prompt == !prompt_file.empty()) args.fail("give exactly one of -p PROMPT and -f FILE");
  if (profile_series && profile_path.empty()) args.fail("--profile-series needs --profile FILE");
  if (!prompt_file.empty()) prompt = read_input_file("-f", prompt_file);
  if (escapes) prompt = process_escapes(prompt);
  // Checked before the model loads: a bad path fails at once.
  if (!profile_path.empty()) check_writable("--profile", profile_path);
  check_chat_template_name(forced_template);
  if (mo.model.empty()) mo.model = default_model();

  EngineConfig config = mo.engine_config();
  config.chat_template = forced_template;
  const std::unique_ptr<Engine> engine = open_engine(mo, config);
  const EngineInfo& info = engine->info();
  check_trained_context(mo.n_ctx, info);
  if (!info.chat_template_note.empty() && chat) {
    std::fprintf(stderr, "warning: %s (choose one with --chat-template)\n",
                 info.chat_template_note.c_str());
  }
  std::string text = prompt;
  if (chat) {
    std::vector<ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    messages.push_back({"user", prompt});
    text = engine->apply_chat_template(messages, true);
  }
  TokenPrompt ids{engine->tokenize(text)};
  const auto n_prompt = static_cast<int64_t>(ids.tokens.size());
  if (n_prompt >= info.context_size) {
    const std::string what = "the prompt has " + std::to_string(n_prompt) + " tokens";
    if (mo.n_ctx > 0) {
      throw UsageError(what + ": -c " + std::to_string(mo.n_ctx) +
                       " leaves no room to generate (the model's context is " +
                       std::to_string(info.trained_context) + ")");
    }
    throw InputError(what + ", which leaves no room to generate in the model's context of " +
                     std::to_string(info.context_size) + " tokens");
  }
  go.max_tokens = n_predict >= 0 ? n_predict : info.context_size;

  if (display_prompt) {
    const std::string shown = sanitize_utf8(prompt);
    std::fwrite(shown.data(), 1, shown.size(), stdout);
  }
  std::fflush(stdout);
  const GenerateResult r = engine->generate(std::move(ids), go, [](std::string_view piece) {
    // Pieces are whole characters; bytes that form none become U+FFFD.
    const std::string valid = sanitize_utf8(piece);
    std::fwrite(valid.data(), 1, valid.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputs("\n", stdout);
  std::fflush(stdout);
  const GenerateTimings& t = r.timings;
  const auto n = static_cast<long long>(r.tokens.size());
  std::fprintf(stderr,
               "\nprompt: %lld token%s (%.1f t/s) | generation: %lld token%s (%.1f t/s) | time "
               "to first token: %.1f ms | stopped: %s | threads %d, kernels %s\n",
               static_cast<long long>(r.prompt_tokens), r.prompt_tokens == 1 ? "" : "s",
               t.prompt_tokens_per_second, n, n == 1 ? "" : "s", t.generation_tokens_per_second,
               t.time_to_first_token_ms, to_string(r.stop_reason), info.threads,
               info.kernels.c_str());
  if (!profile_path.empty()) {
    std::ofstream out(profile_path);
    out << engine->profile_json(profile_series) << "\n";
    if (!out.flush()) throw std::runtime_error("--profile: writing " + profile_path + " failed");
    std::fprintf(stderr, "profile: %s (%llu steps)\n", profile_path.c_str(),
                 static_cast<unsigned long long>(engine->stats().steps));
  }
  return kExitOk;
}

}  // namespace

BITNET_COMMAND("run", kUsage,
               "generate text, streamed to stdout (only the generated text unless\n"
               "--display-prompt); prompt t/s, generation t/s and time to first token on stderr.\n"
               "Without -m: the built-in default model",
               kOptions, cmd_run);

}  // namespace bitnet::cli
