// Turns what a caller asks for (a text or token prompt, GenerateOptions, callbacks) into a
// validated, tokenized Request, or throws bitnet::Error naming the field at fault, before
// anything is queued: options out of range, tokens outside the vocabulary, a prompt the context
// cannot hold, a request the whole KV budget could never hold.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/engine.h"
#include "engine/engine-config.h"
#include "engine/generation.h"
#include "tokenizer/chat-template.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::engine {

class RequestBuilder {
 public:
  // on_tokenize receives the time-stamp-counter ticks of each tokenization (for the profile).
  RequestBuilder(const model::Tokenizer& tokenizer, model::ChatTemplate chat_template,
                 const ResolvedConfig& config, int64_t trained_context,
                 std::function<void(int64_t ticks)> on_tokenize);

  // A text prompt is tokenized with BOS per the vocabulary and special-token text parsed;
  // options.chat first wraps it in the chat template as one user turn.
  std::unique_ptr<Request> build(const std::string& prompt, const GenerateOptions& options,
                                 TokenCallback on_piece) const;
  std::unique_ptr<Request> build(TokenPrompt prompt, const GenerateOptions& options,
                                 TokenCallback on_piece) const;

  std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const;
  model::ChatTemplate chat_template() const { return chat_template_; }

 private:
  const model::Tokenizer& tok_;
  model::ChatTemplate chat_template_;
  const ResolvedConfig& config_;
  int64_t trained_context_;
  std::function<void(int64_t)> on_tokenize_;
};

}  // namespace bitnet::engine
