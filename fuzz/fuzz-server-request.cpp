// libFuzzer target for the HTTP API's request parser and validator (server/request-parser.h) and
// the response bodies built from what it accepts. The first input byte picks the endpoint, the
// rest is the request body. The parser must either accept or throw ApiException with a 400 and a
// message (anything else escapes and is reported); an accepted request must satisfy the ranges the
// parser promises; every body built from it (with the accepted strings, and with the raw input as
// generated text, which may be invalid UTF-8) must be valid JSON. Any violation traps.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "server/api-error.h"
#include "server/openai-json.h"
#include "server/request-parser.h"

namespace bs = bitnet::server;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_json(const std::string& body) {
  check(nlohmann::json::accept(body));
}

void check_request(const bs::GenerationRequest& r, std::string_view raw) {
  check(r.temperature >= 0 && r.temperature <= 2);
  check(r.top_p > 0 && r.top_p <= 1);
  check(r.min_p >= 0 && r.min_p <= 1);
  check(r.top_k >= 0);
  check(r.presence_penalty >= -2 && r.presence_penalty <= 2);
  check(r.frequency_penalty >= -2 && r.frequency_penalty <= 2);
  check(r.repeat_penalty > 0 && r.repeat_penalty <= 10);
  check(!r.max_tokens || *r.max_tokens >= 1);
  check(r.stop.size() <= 4);
  for (const auto& s : r.stop) check(!s.empty() && s.size() <= 256);
  check(r.top_logprobs >= 0 && r.top_logprobs <= 20);
  check(r.top_logprobs == 0 || r.logprobs);
  check(!r.include_usage || r.stream);
  if (r.kind == bs::ApiKind::Chat) {
    check(!r.messages.empty());
    for (const auto& m : r.messages)
      check(m.role == "system" || m.role == "user" || m.role == "assistant");
  } else {
    check(r.prompt.has_value() != r.prompt_ids.has_value());
    if (r.prompt_ids) {
      check(!r.prompt_ids->empty());
      for (const int32_t t : *r.prompt_ids) check(t >= 0);
    }
  }
  // Bodies built from the accepted request: its strings, and the raw input as generated text.
  const bs::ResponseHead head{r.kind, "id", 1, r.model};
  bitnet::GenerateResult result;
  result.text = r.prompt.value_or(r.messages.empty() ? std::string() : r.messages[0].content);
  result.text.append(raw.data(), raw.size());
  result.tokens = {1, 2};
  const bitnet::TokenLogprob lps[] = {{1, -0.5f}, {2, -1.0f}};
  const bs::LogprobSpan span{lps, lps, 1};
  auto piece = [&](int32_t t) { return std::string(raw.substr(0, static_cast<size_t>(t))); };
  check_json(bs::completion_body(head, result, span, piece));
  bs::Chunk c;
  c.text = raw;
  c.logprobs = span;
  check_json(bs::chunk_body(head, c, r.include_usage, piece));
  check_json(bs::error_body({400, std::string(raw), "invalid_request_error", "", ""}));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0:
        check_request(bs::parse_generation_request(body, bs::ApiKind::Chat), body);
        break;
      case 1:
        check_request(bs::parse_generation_request(body, bs::ApiKind::Completion), body);
        break;
      case 2: {
        const bs::TokenizeRequest r = bs::parse_tokenize_request(body);
        check_json(bs::detokenize_body(r.content));
        break;
      }
      default: {
        const bs::DetokenizeRequest r = bs::parse_detokenize_request(body);
        for (const int32_t t : r.tokens) check(t >= 0);
        check_json(bs::tokenize_body(r.tokens, true, [](int32_t) { return std::string("\xff"); }));
        break;
      }
    }
  } catch (const bs::ApiException& e) {
    check(e.error().status == 400 && !e.error().message.empty());
    check_json(bs::error_body(e.error()));
  }
  return 0;
}
