// Request bodies of the HTTP API parsed and validated field by field (OpenAI's API reference for
// /v1/chat/completions and /v1/completions, llama.cpp's for /tokenize and /detokenize). Nothing
// here needs a model: what depends on it (token ids in the vocabulary, the context length, the
// chat template) is checked when the request is prepared for the Engine (server.cpp).
//
// Every violation throws ApiException with status 400, the field as `param` and a message saying
// what was expected and what was found. Fields this server does not implement (tools, logit_bias,
// n > 1, echo, ...) are refused the same way, never silently ignored; fields it does not know are
// ignored, as llama.cpp's server does, so that clients sending newer fields keep working.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::server {

enum class ApiKind { Chat, Completion };

struct RequestLimits {
  size_t max_messages = 1024;
  size_t max_stop = 4;          // OpenAI's limit
  size_t max_stop_bytes = 256;  // per stop string
  size_t max_prompt_ids = 1 << 20;
  int max_depth = 16;  // JSON nesting (the deepest valid body nests 4 levels)
};

struct Message {
  std::string role;  // "system" ("developer" is read as system), "user" or "assistant"
  std::string content;
};

// Defaults are OpenAI's: temperature 1 and top_p 1 (plain sampling from the model's
// distribution); the llama.cpp extensions top_k, min_p and repeat_penalty are off unless given.
struct GenerationRequest {
  ApiKind kind = ApiKind::Chat;
  std::string model;                               // "" when absent
  std::vector<Message> messages;                   // Chat
  std::optional<std::string> prompt;               // Completion: text ...
  std::optional<std::vector<int32_t>> prompt_ids;  // ... or token ids
  std::optional<int64_t> max_tokens;               // max_completion_tokens, else max_tokens; >= 1
  double temperature = 1.0;                        // [0, 2]
  double top_p = 1.0;                              // (0, 1]
  int32_t top_k = 0;                               // >= 0, 0: off
  double min_p = 0.0;                              // [0, 1]
  double presence_penalty = 0.0;                   // [-2, 2]
  double frequency_penalty = 0.0;                  // [-2, 2]
  double repeat_penalty = 1.0;                     // (0, 10]
  std::optional<uint64_t> seed;                    // absent: a fresh seed per request
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // Chat: logprobs; Completion: logprobs is a number (> 0 or 0)
  int32_t top_logprobs = 0;    // Chat: top_logprobs [0, 20]; Completion: logprobs [0, 5]
};

struct TokenizeRequest {
  std::string content;
  bool add_special = false;
  bool parse_special = true;
  bool with_pieces = false;
};

struct DetokenizeRequest {
  std::vector<int32_t> tokens;
};

GenerationRequest parse_generation_request(std::string_view body, ApiKind kind,
                                           const RequestLimits& limits = {});
TokenizeRequest parse_tokenize_request(std::string_view body, const RequestLimits& limits = {});
DetokenizeRequest parse_detokenize_request(std::string_view body, const RequestLimits& limits = {});

}  // namespace bitnet::server
