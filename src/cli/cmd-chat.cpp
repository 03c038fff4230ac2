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
#include "engine/sampler.h"
#include "tokenizer/chat-template.h"
#include "tokenizer/tokenizer.h"

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

bool parse_sampling(Args& args, const std::string& a, engine::SamplerParams& sp) {
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
  engine::SamplerParams sp;
  int64_t n_predict = 256;
  std::string system, forced_template;
  bool verbose = false;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (parse_sampling(args, a, sp)) continue;
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
  model::ChatTemplateChoice tmpl;
  if (!forced_template.empty()) {  // checked before the model loads
    try {
      tmpl = model::choose_chat_template(forced_template, std::nullopt, false, false);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--chat-template: ") + e.what());
    }
  }
  if (mo.model.empty()) mo.model = default_model();
  const auto weights = load_model(mo);
  const model::Tokenizer tok = load_tokenizer(*weights);
  if (forced_template.empty()) {
    tmpl = model::choose_chat_template("", weights->file().find_string("tokenizer.chat_template"),
                                       tok.find_token("<|eot_id|>").has_value(),
                                       tok.find_token("<|start_header_id|>").has_value());
    if (!tmpl.note.empty()) std::fprintf(stderr, "warning: %s\n", tmpl.note.c_str());
  }
  ThreadPool pool(mo.resolved_threads());
  model::BitNetSession session(*weights, mo.session_options(weights->config()), pool);
  engine::Sampler sampler(sp, static_cast<int32_t>(session.n_vocab()));
  std::vector<float> logits(static_cast<size_t>(session.n_vocab()));
  std::vector<model::ChatMessage> conversation;
  if (!system.empty()) conversation.push_back({"system", system});
  if (!system.empty()) {
    const auto ids = tok.encode(model::apply_chat_template(tmpl.tmpl, conversation, false),
                                model::chat_template_adds_bos(tmpl.tmpl), true);
    if (static_cast<int64_t>(ids.size()) + 32 > session.n_ctx()) {
      throw UsageError("--system: the system message takes " + std::to_string(ids.size()) +
                       " tokens, leaving no room for a conversation in the context of " +
                       std::to_string(session.n_ctx()));
    }
  }
  std::vector<int32_t> cached;  // the tokens in the KV cache, in order
  std::fprintf(stderr,
               "chat template %s, context %lld tokens. Type a message; Ctrl-C stops a reply, "
               "Ctrl-D or /exit quits.\n",
               model::chat_template_name(tmpl.tmpl), static_cast<long long>(session.n_ctx()));
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
    auto render = [&] {
      return tok.encode(model::apply_chat_template(tmpl.tmpl, conversation, true),
                        model::chat_template_adds_bos(tmpl.tmpl), true);
    };
    std::vector<int32_t> ids = render();
    int dropped = 0;
    const size_t first_turn = system.empty() ? 0 : 1;
    while (static_cast<int64_t>(ids.size()) + room > session.n_ctx() &&
           conversation.size() > first_turn + 1) {
      conversation.erase(conversation.begin() + static_cast<ptrdiff_t>(first_turn));
      ++dropped;
      ids = render();
    }
    if (static_cast<int64_t>(ids.size()) + room > session.n_ctx()) {
      conversation.pop_back();
      const bool can_raise = session.n_ctx() < weights->config().n_ctx_train;
      std::fprintf(stderr,
                   "[this message needs %zu tokens with the chat template and the system "
                   "message, more than the context of %lld leaves for a reply%s; it was not "
                   "sent]\n",
                   ids.size(), static_cast<long long>(session.n_ctx()),
                   can_raise ? " (raise -c, up to the model's context)" : "");
      continue;
    }
    if (dropped > 0) {
      std::fprintf(stderr, "[context full: the %d oldest message%s left the conversation]\n",
                   dropped, dropped == 1 ? "" : "s");
    }
    // Evaluate only what the cache does not hold yet.
    size_t common = 0;
    while (common < cached.size() && common < ids.size() && cached[common] == ids[common]) ++common;
    if (common == ids.size()) --common;  // the last token is evaluated again for its logits
    if (verbose) {
      std::string head;
      for (size_t i = common; i < ids.size() && i < common + 8; ++i) {
        if (!head.empty()) head += ',';
        head += std::to_string(ids[i]);
      }
      std::fprintf(stderr, "[turn: %zu tokens reused from the cache, %zu evaluated: %s%s]\n",
                   common, ids.size() - common, head.c_str(),
                   ids.size() - common > 8 ? ",..." : "");
    }
    session.truncate(static_cast<int64_t>(common));
    cached.resize(common);
    session.eval(std::span<const int32_t>(ids).subspan(common), logits.data(), false);
    cached.insert(cached.end(), ids.begin() + static_cast<ptrdiff_t>(common), ids.end());

    model::StreamingDetokenizer detok(tok, false, false);
    std::string reply;
    for (int64_t i = 0; (n_predict < 0 || i < n_predict) && !g_interrupted; ++i) {
      const int32_t next = sampler.sample(logits.data(), cached);
      if (tok.is_eog(next)) break;
      const std::string piece = detok.push(next);
      reply += piece;
      const std::string shown = sanitize_utf8(piece);
      std::fwrite(shown.data(), 1, shown.size(), stdout);
      std::fflush(stdout);
      if (session.n_past() + 2 >= session.n_ctx()) break;  // room for the end of the turn
      session.eval(std::span<const int32_t>(&next, 1), logits.data(), false);
      cached.push_back(next);
    }
    const std::string rest = detok.flush();
    reply += rest;
    const std::string shown = sanitize_utf8(rest);
    std::fwrite(shown.data(), 1, shown.size(), stdout);
    std::fputs(g_interrupted ? " [stopped]\n" : "\n", stdout);
    conversation.push_back({"assistant", reply});
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
