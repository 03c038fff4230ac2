#include "server/openai-json.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "server/api-error.h"

namespace bitnet::server {
namespace {

using json = nlohmann::ordered_json;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json nullable(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

// JSON has no -inf: a token of probability 0 gets OpenAI's floor, -9999.
double finite_logprob(float lp) {
  return std::isfinite(lp) ? static_cast<double>(lp) : -9999.0;
}

json bytes_of(std::string_view s) {
  json b = json::array();
  for (const char c : s) b.push_back(static_cast<unsigned char>(c));
  return b;
}

json usage(int64_t prompt, int64_t completion) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null}.
json chat_logprobs(const LogprobSpan& lp, const PieceFn& piece) {
  json content = json::array();
  for (size_t i = 0; i < lp.tokens.size(); ++i) {
    const std::string text = piece(lp.tokens[i].token);
    json top = json::array();
    for (int32_t j = 0; j < lp.top_n; ++j) {
      const TokenLogprob& t = lp.top[i * static_cast<size_t>(lp.top_n) + static_cast<size_t>(j)];
      const std::string alt = piece(t.token);
      top.push_back(
          {{"token", alt}, {"logprob", finite_logprob(t.logprob)}, {"bytes", bytes_of(alt)}});
    }
    content.push_back({{"token", text},
                       {"logprob", finite_logprob(lp.tokens[i].logprob)},
                       {"bytes", bytes_of(text)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}, {"refusal", nullptr}};
}

// Completions (legacy): parallel arrays; text_offset in bytes from the start of the text of this
// response (or chunk).
json completion_logprobs(const LogprobSpan& lp, const PieceFn& piece) {
  json tokens = json::array(), token_logprobs = json::array(), offsets = json::array();
  json top = lp.top_n > 0 ? json::array() : json(nullptr);
  size_t offset = 0;
  for (size_t i = 0; i < lp.tokens.size(); ++i) {
    const std::string text = piece(lp.tokens[i].token);
    tokens.push_back(text);
    token_logprobs.push_back(finite_logprob(lp.tokens[i].logprob));
    offsets.push_back(offset);
    offset += text.size();
    if (lp.top_n == 0) continue;
    json alts = json::object();
    for (int32_t j = 0; j < lp.top_n; ++j) {
      const TokenLogprob& t = lp.top[i * static_cast<size_t>(lp.top_n) + static_cast<size_t>(j)];
      alts[piece(t.token)] = finite_logprob(t.logprob);
    }
    top.push_back(std::move(alts));
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top)},
          {"text_offset", std::move(offsets)}};
}

json logprobs_json(ApiKind kind, const std::optional<LogprobSpan>& lp, const PieceFn& piece) {
  if (!lp) return nullptr;
  return kind == ApiKind::Chat ? chat_logprobs(*lp, piece) : completion_logprobs(*lp, piece);
}

json head_json(const ResponseHead& h, const char* object) {
  return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}

}  // namespace

std::string error_body(const ApiError& e) {
  return dump({{"error",
                {{"message", e.message},
                 {"type", e.type},
                 {"param", nullable(e.param)},
                 {"code", nullable(e.code)}}}});
}

const char* finish_reason(StopReason reason) {
  switch (reason) {
    case StopReason::MaxTokens:
    case StopReason::ContextFull:
      return "length";
    case StopReason::EndOfGeneration:
    case StopReason::StopString:
    case StopReason::Callback:
    case StopReason::Cancelled:
      return "stop";
  }
  return "stop";
}

std::string completion_body(const ResponseHead& head, const GenerateResult& result,
                            std::optional<LogprobSpan> logprobs, const PieceFn& piece) {
  const bool chat = head.kind == ApiKind::Chat;
  json j = head_json(head, chat ? "chat.completion" : "text_completion");
  json choice;
  choice["index"] = 0;
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", result.text}, {"refusal", nullptr}};
  } else {
    choice["text"] = result.text;
  }
  choice["logprobs"] = logprobs_json(head.kind, logprobs, piece);
  choice["finish_reason"] = finish_reason(result.stop_reason);
  j["choices"] = json::array({std::move(choice)});
  j["usage"] = usage(result.prompt_tokens, static_cast<int64_t>(result.tokens.size()));
  return dump(j);
}

std::string chunk_body(const ResponseHead& head, const Chunk& chunk, bool include_usage,
                       const PieceFn& piece) {
  const bool chat = head.kind == ApiKind::Chat;
  json j = head_json(head, chat ? "chat.completion.chunk" : "text_completion");
  json choice;
  choice["index"] = 0;
  if (chat) {
    json delta = json::object();
    if (chunk.role) delta["role"] = "assistant";
    if (chunk.role || !chunk.text.empty()) delta["content"] = chunk.text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = chunk.text;
  }
  choice["logprobs"] = logprobs_json(head.kind, chunk.logprobs, piece);
  choice["finish_reason"] = chunk.finish_reason ? json(chunk.finish_reason) : json(nullptr);
  j["choices"] = json::array({std::move(choice)});
  if (include_usage) j["usage"] = nullptr;
  return dump(j);
}

std::string usage_chunk_body(const ResponseHead& head, int64_t prompt_tokens,
                             int64_t completion_tokens) {
  json j =
      head_json(head, head.kind == ApiKind::Chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = json::array();
  j["usage"] = usage(prompt_tokens, completion_tokens);
  return dump(j);
}

std::string models_body(const std::string& model_id, int64_t created) {
  return dump({{"object", "list"},
               {"data", json::array({{{"id", model_id},
                                      {"object", "model"},
                                      {"created", created},
                                      {"owned_by", "bitnet-cxx"}}})}});
}

std::string tokenize_body(std::span<const int32_t> tokens, bool with_pieces, const PieceFn& piece) {
  json list = json::array();
  for (const int32_t t : tokens) {
    if (!with_pieces) {
      list.push_back(t);
      continue;
    }
    const std::string p = piece(t);
    list.push_back({{"id", t}, {"piece", valid_utf8(p) ? json(p) : bytes_of(p)}});
  }
  return dump({{"tokens", std::move(list)}});
}

std::string json_string(std::string_view s) {
  return dump(json(s));
}

std::string detokenize_body(std::string_view content) {
  return dump({{"content", content}});
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace bitnet::server
