#include "engine/request-builder.h"

#include <string>

#include "core/perf-monitor.h"
#include "model/kv-cache.h"

namespace bitnet::engine {

RequestBuilder::RequestBuilder(const model::Tokenizer& tokenizer, model::ChatTemplate chat_template,
                               const ResolvedConfig& config, int64_t trained_context,
                               std::function<void(int64_t ticks)> on_tokenize)
    : tok_(tokenizer),
      chat_template_(chat_template),
      config_(config),
      trained_context_(trained_context),
      on_tokenize_(std::move(on_tokenize)) {}

std::vector<int32_t> RequestBuilder::tokenize(std::string_view text, bool add_special,
                                              bool parse_special) const {
  const int64_t t0 = perf_ticks();
  std::vector<int32_t> ids = tok_.encode(text, add_special, parse_special);
  if (on_tokenize_) on_tokenize_(perf_ticks() - t0);
  return ids;
}

std::unique_ptr<Request> RequestBuilder::build(const std::string& prompt,
                                               const GenerateOptions& options,
                                               TokenCallback on_piece) const {
  const auto submitted = Clock::now();
  validate_options(options, tok_.n_vocab());
  TokenPrompt tokens;
  try {
    const std::string text =
        options.chat ? model::apply_chat_template(chat_template_, {{"user", prompt}}, true)
                     : prompt;
    tokens.tokens = tokenize(text, true, true);
  } catch (const std::exception& e) {
    throw Error(std::string("GenerateOptions: ") + e.what());
  }
  GenerateOptions o = options;
  o.chat = false;  // applied
  auto request = build(std::move(tokens), o, std::move(on_piece));
  request->submitted = submitted;
  return request;
}

std::unique_ptr<Request> RequestBuilder::build(TokenPrompt prompt, const GenerateOptions& options,
                                               TokenCallback on_piece) const {
  auto request = std::make_unique<Request>();
  request->submitted = Clock::now();
  validate_options(options, tok_.n_vocab());
  if (options.chat) {
    throw Error(
        "GenerateOptions: chat applies to text prompts, not to a TokenPrompt (render the "
        "conversation with Engine::apply_chat_template and tokenize it)");
  }
  for (size_t i = 0; i < prompt.tokens.size(); ++i) {
    const int32_t t = prompt.tokens[i];
    if (t < 0 || t >= tok_.n_vocab()) {
      throw Error("TokenPrompt: token " + std::to_string(i) + " is " + std::to_string(t) +
                  ", outside the vocabulary [0, " + std::to_string(tok_.n_vocab()) + ")");
    }
  }
  request->sampling = sampler_params(options);
  request->prompt = std::move(prompt.tokens);
  const auto n = static_cast<int64_t>(request->prompt.size());
  const model::SessionOptions& bo = config_.batch;
  if (n == 0) {
    throw Error(
        "the prompt has no tokens (an empty TokenPrompt, or empty text and a vocabulary "
        "that adds no BOS token)");
  }
  // A prompt that fills the context can still be scored (prompt_logits, max_tokens 0); one that
  // is to generate needs a position left.
  const bool generates = options.max_tokens > 0;
  if (n > bo.n_ctx || (generates && n == bo.n_ctx)) {
    throw Error("the prompt has " + std::to_string(n) + " tokens, which leaves no room " +
                (generates ? "to generate " : "") + "in a context of " + std::to_string(bo.n_ctx) +
                " positions (EngineConfig::context_size; the model's is " +
                std::to_string(trained_context_) + ")");
  }
  const int64_t worst = std::min(n + options.max_tokens, bo.n_ctx);
  const int64_t pages = model::KvPagePool::pages_for(worst, bo.kv_page_size);
  if (pages > bo.kv_pages) {
    throw Error("the request needs " + std::to_string(pages) + " KV pages (" +
                std::to_string(worst) + " positions: prompt + max_tokens) but the whole KV " +
                "budget holds " + std::to_string(bo.kv_pages) +
                " (EngineConfig::kv_cache_bytes = " + std::to_string(config_.kv_pool_bytes()) +
                " bytes); lower max_tokens or raise the budget");
  }
  request->options = options;
  request->on_piece = std::move(on_piece);
  return request;
}

}  // namespace bitnet::engine
