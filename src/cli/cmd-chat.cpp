// bitnet chat: interactive conversation. The whole conversation is rendered with the chat
// template each turn and only the tokens that differ from what the KV cache holds are evaluated,
// so earlier turns are not recomputed, and a reply cut off by -n or Ctrl-C still gets its
// end-of-turn marker before the next turn.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
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
    "chat [-m MODEL] [-n N] [-t N] [-c N] [sampling options] [--system TEXT]\n"
    "      [--chat-template bitnet-2b4t|llama3|plain]";

constexpr const char* kOptions =
    "  -n, --n-predict N     most tokens per reply (default 256; -1: until the end of the turn\n"
    "                        or the context is full)\n" BITNET_MODEL_OPTIONS_HELP
    "  -c, --ctx-size N      context in tokens for the whole conversation (default: the\n"
    "                        model's, at most that)\n"
    "  --system TEXT         system message opening the conversation\n"
    "  --chat-template NAME  bitnet-2b4t, llama3 or plain instead of the model's\n"
    "  --verbose             per turn on stderr: tokens reused from the cache, tokens evaluated\n"
    "sampling (as bitnet run): --temp T (0.8), --top-k K (40), --top-p P (0.95), --min-p P\n"
    "  (0.05), --repeat-penalty R (1.0), --repeat-last-n N (64), --presence-penalty P (0),\n"
    "  --frequency-penalty F (0), -s/--seed S\n"
    "keys: an empty line is ignored; Ctrl-C stops the reply being written (the conversation\n"
    "  goes on); Ctrl-C at the prompt twice in a row, Ctrl-D or /exit quits\n";

volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) {
  g_interrupted = 1;
}

// Installs on_sigint without SA_RESTART, so a read blocked at the prompt returns on Ctrl-C.
struct SigintHandler {
  struct sigaction old {};
  SigintHandler() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
  }
  ~SigintHandler() { sigaction(SIGINT, &old, nullptr); }
};

bool parse_sampling(Args& args, const std::string& a, GenerateOptions& sp) {
  if (a == "--temp") {
    sp.temperature = static_cast<float>(args.float_value(a, 0, 100));
  } else if (a == "--top-k") {
    sp.top_k = static_cast<int32_t>(args.int_value(a, 0, 1 << 30));
  } else if (a == "--top-p") {
    sp.top_p = static_cast<float>(args.float_value(a, 1e-6, 1));
  } else if (a == "--min-p") {
    sp.min_p = static_cast<float>(args.float_value(a, 0, 1));
  } else if (a == "--repeat-penalty") {
    sp.repeat_penalty = static_cast<float>(args.float_value(a, 1e-3, 100));
  } else if (a == "--repeat-last-n") {
    sp.repeat_last_n = static_cast<int32_t>(args.int_value(a, -1, 1 << 30));
  } else if (a == "--presence-penalty") {
    sp.presence_penalty = static_cast<float>(args.float_value(a, -100, 100));
  } else if (a == "--frequency-penalty") {
    sp.frequency_penalty = static_cast<float>(args.float_value(a, -100, 100));
  } else if (a == "-s" || a == "--seed") {
    sp.seed = args.u64_value(a);
  } else {
    return false;
  }
  return true;
}

int cmd_chat(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  GenerateOptions go;
  int64_t n_predict = 256;
  std::string system, forced_template;
  bool verbose = false;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (parse_sampling(args, a, go)) continue;
    if (a == "-n" || a == "--n-predict") {
      n_predict = args.int_value(a, -1, int64_t{1} << 24);
    } else if (a == "--system") {
      system = args.value(a);
    } else if (a == "--chat-template") {
      forced_template = args.value(a);
    } else if (a == "--verbose") {
      verbose = true;
    } else {
      args.unknown(a);
    }
  }
  check_chat_template_name(forced_template);
  if (mo.model.empty()) mo.model = default_model();
  // Through the Engine with its prefix cache: each turn sends the whole conversation, and only
  // the tokens its cached slot does not hold are evaluated.
  EngineConfig config = mo.engine_config();
  config.chat_template = forced_template;
  const std::unique_ptr<Engine> engine = open_engine(mo, config);
  const EngineInfo& info = engine->info();
  check_trained_context(mo.n_ctx, info);
  if (!info.chat_template_note.empty()) {
    std::fprintf(stderr, "warning: %s (choose one with --chat-template)\n",
                 info.chat_template_note.c_str());
  }
  const int64_t n_ctx = info.context_size;
  std::vector<ChatMessage> conversation;
  if (!system.empty()) {
    conversation.push_back({"system", system});
    const auto ids = engine->tokenize(engine->apply_chat_template(conversation, false));
    if (static_cast<int64_t>(ids.size()) + 32 > n_ctx) {
      throw UsageError("--system: the system message takes " + std::to_string(ids.size()) +
                       " tokens, leaving no room for a conversation in the context of " +
                       std::to_string(n_ctx));
    }
  }
  std::fprintf(stderr,
               "chat template %s, context %lld tokens. Type a message; Ctrl-C stops a reply, "
               "Ctrl-D or /exit quits.\n",
               info.chat_template.c_str(), static_cast<long long>(n_ctx));
  const SigintHandler sigint;
  bool interrupted_at_prompt = false;
  std::string line;
  while (true) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    g_interrupted = 0;
    if (!std::getline(std::cin, line)) {
      // Ctrl-C interrupts the read; the stream then reports end of input as well, so the flag,
      // not the stream's state, tells the two apart.
      if (g_interrupted) {
        std::cin.clear();
        clearerr(stdin);
        if (interrupted_at_prompt) break;
        interrupted_at_prompt = true;
        std::fputs("\n(Ctrl-C again, Ctrl-D or /exit to quit)\n", stdout);
        continue;
      }
      break;  // end of input
    }
    interrupted_at_prompt = false;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (line == "/exit" || line == "/quit") break;

    conversation.push_back({"user", line});
    // The conversation must leave room for a reply of at least a few tokens: the oldest turns
    // (after the system message) are dropped until it does, as llama.cpp shifts its context.
    const int64_t room = std::min<int64_t>(n_predict < 0 ? 16 : n_predict, 16);
    auto render = [&] { return engine->tokenize(engine->apply_chat_template(conversation, true)); };
    std::vector<int32_t> ids = render();
    int dropped = 0;
    const size_t first_turn = system.empty() ? 0 : 1;
    while (static_cast<int64_t>(ids.size()) + room > n_ctx &&
           conversation.size() > first_turn + 1) {
      conversation.erase(conversation.begin() + static_cast<ptrdiff_t>(first_turn));
      ++dropped;
      ids = render();
    }
    if (static_cast<int64_t>(ids.size()) + room > n_ctx) {
      conversation.pop_back();
      const bool can_raise = n_ctx < info.trained_context;
      std::fprintf(stderr,
                   "[this message needs %zu tokens with the chat template and the system "
                   "message, more than the context of %lld leaves for a reply%s; it was not "
                   "sent]\n",
                   ids.size(), static_cast<long long>(n_ctx),
                   can_raise ? " (raise -c, up to the model's context)" : "");
      continue;
    }
    if (dropped > 0) {
      std::fprintf(stderr, "[context full: the %d oldest message%s left the conversation]\n",
                   dropped, dropped == 1 ? "" : "s");
    }
    go.max_tokens = n_predict < 0 ? n_ctx : n_predict;
    const std::vector<int32_t> sent = ids;
    const GenerateResult r =
        engine->generate(TokenPrompt{std::move(ids)}, go, [](std::string_view p) {
          const std::string shown = sanitize_utf8(p);
          std::fwrite(shown.data(), 1, shown.size(), stdout);
          std::fflush(stdout);
          return g_interrupted == 0;  // Ctrl-C stops the reply, not the chat
        });
    std::fputs(r.stop_reason == StopReason::Callback ? " [stopped]\n" : "\n", stdout);
    if (verbose) {
      const auto common = static_cast<size_t>(r.cached_prompt_tokens);
      std::string head;
      for (size_t i = common; i < sent.size() && i < common + 8; ++i) {
        if (!head.empty()) head += ',';
        head += std::to_string(sent[i]);
      }
      std::fprintf(stderr, "[turn: %zu tokens reused from the cache, %zu evaluated: %s%s]\n",
                   common, sent.size() - common, head.c_str(),
                   sent.size() - common > 8 ? ",..." : "");
    }
    conversation.push_back({"assistant", r.text});
  }
  std::fputs("\n", stdout);
  return kExitOk;
}

}  // namespace

BITNET_COMMAND("chat", kUsage,
               "interactive chat on stdin/stdout with the model's chat template; earlier turns\n"
               "stay in the KV cache, so each turn evaluates only its new tokens",
               kOptions, cmd_chat);

}  // namespace bitnet::cli
