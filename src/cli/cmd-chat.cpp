// bitnet chat: interactive conversation; earlier turns stay in the KV cache, so each turn only
// evaluates its new tokens.
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "model/chat-template.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "chat -m MODEL [-n N] [-t THREADS] [-c CTX] [--temp T] [--seed S] [--system TEXT]\n"
    "      [--chat-template bitnet-2b4t|llama3|plain]";

int cmd_chat(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  model::SamplerParams sp;
  int64_t n_predict = 256;
  std::string system, forced_template;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (a == "-n" || a == "--n-predict") {
      n_predict = args.int_value(a, 1, int64_t{1} << 24);
    } else if (a == "--temp") {
      sp.temperature = static_cast<float>(args.float_value(a, 0, 100));
    } else if (a == "--seed") {
      sp.seed = static_cast<uint64_t>(args.int_value(a, 0, INT64_MAX));
    } else if (a == "--system") {
      system = args.value(a);
    } else if (a == "--chat-template") {
      forced_template = args.value(a);
    } else {
      args.unknown(a);
    }
  }
  if (mo.model.empty())
    throw std::invalid_argument("-m MODEL is required (usage: bitnet " + std::string(kUsage) + ")");
  const auto weights = load_model(mo);
  const auto tok = model::Tokenizer::from_gguf(weights->file());
  model::ChatTemplate tmpl;
  if (!forced_template.empty()) {
    const auto t = model::chat_template_from_name(forced_template);
    if (!t) {
      throw std::invalid_argument("--chat-template: unknown '" + forced_template +
                                  "' (known: " + model::kChatTemplateNames + ")");
    }
    tmpl = *t;
  } else {
    tmpl = model::detect_chat_template(weights->file().find_string("tokenizer.chat_template"),
                                       tok.find_token("<|eot_id|>").has_value(),
                                       tok.find_token("<|start_header_id|>").has_value());
  }
  ThreadPool pool(mo.threads);
  model::BitNetSession session(*weights, mo.session_options(), pool);
  model::Sampler sampler(sp, static_cast<int32_t>(session.n_vocab()));
  std::vector<float> logits(static_cast<size_t>(session.n_vocab()));
  std::vector<int32_t> history;
  std::fprintf(stderr, "chat template %s; type a message, an empty line or end of input quits\n",
               model::chat_template_name(tmpl));
  bool first = true;
  std::string line;
  while (true) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line) || line.empty()) break;
    std::vector<model::ChatMessage> turn;
    if (first && !system.empty()) turn.push_back({"system", system});
    turn.push_back({"user", line});
    const std::string text = model::apply_chat_template(tmpl, turn, true);
    std::vector<int32_t> ids = tok.encode(text, first && model::chat_template_adds_bos(tmpl), true);
    first = false;
    if (session.n_past() + static_cast<int64_t>(ids.size()) + 1 >= session.n_ctx()) {
      std::fprintf(stderr,
                   "\n[the conversation fills the context of %lld tokens; start a new chat]\n",
                   static_cast<long long>(session.n_ctx()));
      break;
    }
    session.eval(ids, logits.data(), false);
    history.insert(history.end(), ids.begin(), ids.end());
    model::StreamingDetokenizer detok(tok, false, false);
    for (int64_t i = 0; i < n_predict; ++i) {
      const int32_t next = sampler.sample(logits.data(), history);
      history.push_back(next);
      // The end-of-turn token goes into the cache too, so the next turn follows it.
      const bool end = tok.is_eog(next) || session.n_past() + 1 >= session.n_ctx();
      session.eval(std::span<const int32_t>(&next, 1), logits.data(), false);
      if (end) break;
      const std::string piece = detok.push(next);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    const std::string rest = detok.flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputs("\n", stdout);
  }
  return 0;
}

}  // namespace

BITNET_COMMAND("chat", kUsage,
               "interactive chat on stdin/stdout with the model's chat template; the conversation\n"
               "stays in the KV cache, so each turn evaluates only its new tokens",
               cmd_chat);

}  // namespace bitnet::cli
