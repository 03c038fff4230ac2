// Response bodies of the HTTP API, in OpenAI's shapes (chat.completion, text_completion, their
// stream chunks, model lists, errors) and llama.cpp's for /tokenize and /detokenize. Text that is
// not valid UTF-8 (a byte token of a random model, a character cut by max_tokens) is written with
// U+FFFD in its place, so every body is valid JSON.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "bitnet/engine.h"
#include "server/request-parser.h"

namespace bitnet::server {

// What every response of one request repeats.
struct ResponseHead {
  ApiKind kind = ApiKind::Chat;
  std::string id;       // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// The text of one token, as the tokenizer's piece (bytes, possibly part of a character).
using PieceFn = std::function<std::string(int32_t token)>;

// "stop" for an end-of-generation token or a stop string, "length" for max_tokens or a full
// context (the other reasons never reach a response).
const char* finish_reason(StopReason reason);

// Per-token log-probabilities of a span of generated tokens: top has top_n entries per token.
struct LogprobSpan {
  std::span<const TokenLogprob> tokens;
  std::span<const TokenLogprob> top;
  int32_t top_n = 0;
};

// The whole (non-streamed) response.
std::string completion_body(const ResponseHead& head, const GenerateResult& result,
                            std::optional<LogprobSpan> logprobs, const PieceFn& piece);

// One stream chunk (without the SSE framing). Chat: the delta carries role (first chunk) and
// content; finish_reason is null until the last chunk. include_usage: "usage": null is written
// (OpenAI's shape when stream_options.include_usage is set).
struct Chunk {
  bool role = false;  // chat: delta.role = "assistant"
  std::string_view text;
  std::optional<LogprobSpan> logprobs;
  const char* finish_reason = nullptr;
};
std::string chunk_body(const ResponseHead& head, const Chunk& chunk, bool include_usage,
                       const PieceFn& piece);
// The usage chunk after the last one: "choices": [] and the counts.
std::string usage_chunk_body(const ResponseHead& head, int64_t prompt_tokens,
                             int64_t completion_tokens);

std::string models_body(const std::string& model_id, int64_t created);
// llama.cpp: {"tokens": [ids]}, or with pieces {"tokens": [{"id", "piece"}]} where a piece that is
// not valid UTF-8 is given as its list of bytes.
std::string tokenize_body(std::span<const int32_t> tokens, bool with_pieces, const PieceFn& piece);
std::string detokenize_body(std::string_view content);

// s as a JSON string literal (quotes included), invalid UTF-8 replaced: how every body writes text.
std::string json_string(std::string_view s);

// Whether s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace bitnet::server
