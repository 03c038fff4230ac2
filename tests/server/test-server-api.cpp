// The API's request parsing and validation (every field, every refusal naming its field) and the
// response bodies (OpenAI's shapes, checked by parsing them back; invalid UTF-8 replaced). No
// model, no HTTP.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/api-error.h"
#include "server/openai-json.h"
#include "server/request-parser.h"

namespace bitnet::server {
namespace {

using json = nlohmann::json;

GenerationRequest chat(const std::string& body) {
  return parse_generation_request(body, ApiKind::Chat);
}
GenerationRequest completion(const std::string& body) {
  return parse_generation_request(body, ApiKind::Completion);
}

// The ApiError a parse throws ("no error" as message when it does not).
template <class F>
ApiError error_of(F&& f) {
  try {
    f();
  } catch (const ApiException& e) {
    return e.error();
  }
  return {0, "no error", "", "", ""};
}

const std::string kMsg = R"("messages": [{"role": "user", "content": "Hi"}])";

TEST(RequestParser, ChatDefaultsAreOpenAIs) {
  const GenerationRequest r = chat("{" + kMsg + R"(, "model": "m"})");
  EXPECT_EQ(r.kind, ApiKind::Chat);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "Hi");
  EXPECT_FALSE(r.max_tokens.has_value());  // the rest of the context
  EXPECT_EQ(r.temperature, 1.0);
  EXPECT_EQ(r.top_p, 1.0);
  EXPECT_EQ(r.top_k, 0);
  EXPECT_EQ(r.min_p, 0.0);
  EXPECT_EQ(r.presence_penalty, 0.0);
  EXPECT_EQ(r.frequency_penalty, 0.0);
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.logprobs);
  // Completions: OpenAI's legacy default of 16 tokens.
  EXPECT_EQ(completion(R"({"prompt": "x"})").max_tokens, 16);
}

TEST(RequestParser, EveryFieldIsRead) {
  const GenerationRequest r = chat("{" + kMsg + R"(,
      "max_tokens": 10, "max_completion_tokens": 12, "temperature": 0, "top_p": 0.5, "top_k": 7,
      "min_p": 0.1, "presence_penalty": -1.5, "frequency_penalty": 2, "repeat_penalty": 1.1,
      "seed": -3, "stop": ["a", "", "bc"], "stream": true, "stream_options": {"include_usage": true},
      "logprobs": true, "top_logprobs": 3, "n": 1, "user": "u", "unknown_field": [1, 2]})");
  EXPECT_EQ(r.max_tokens, 12);  // max_completion_tokens wins
  EXPECT_EQ(r.temperature, 0.0);
  EXPECT_EQ(r.top_p, 0.5);
  EXPECT_EQ(r.top_k, 7);
  EXPECT_DOUBLE_EQ(r.min_p, 0.1);
  EXPECT_EQ(r.presence_penalty, -1.5);
  EXPECT_EQ(r.frequency_penalty, 2.0);
  EXPECT_DOUBLE_EQ(r.repeat_penalty, 1.1);
  EXPECT_EQ(r.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));  // empty stop strings dropped
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(chat("{" + kMsg + R"(, "stop": "END", "seed": 18446744073709551615})").stop,
            std::vector<std::string>{"END"});
  // null means not given.
  const GenerationRequest n = chat("{" + kMsg + R"(, "temperature": null, "stop": null})");
  EXPECT_EQ(n.temperature, 1.0);
  EXPECT_TRUE(n.stop.empty());
}

TEST(RequestParser, MessagesRolesAndContentParts) {
  const GenerationRequest r = chat(R"({"messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
      {"role": "assistant", "content": null},
      {"role": "user", "content": "", "name": "bob"}]})");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");  // developer is read as system
  EXPECT_EQ(r.messages[1].content, "AB");
  EXPECT_EQ(r.messages[2].role, "assistant");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.messages[3].content, "");
}

TEST(RequestParser, PromptForms) {
  EXPECT_EQ(completion(R"({"prompt": "text"})").prompt, "text");
  EXPECT_EQ(completion(R"({"prompt": ["one"]})").prompt, "one");
  EXPECT_EQ(completion(R"({"prompt": [1, 2, 3]})").prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(completion(R"({"prompt": [[4, 5]]})").prompt_ids, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(completion(R"({"prompt": ""})").prompt, "");
  const GenerationRequest lp = completion(R"({"prompt": "x", "logprobs": 2})");
  EXPECT_TRUE(lp.logprobs);
  EXPECT_EQ(lp.top_logprobs, 2);
  const GenerationRequest lp0 = completion(R"({"prompt": "x", "logprobs": 0})");
  EXPECT_TRUE(lp0.logprobs);
  EXPECT_EQ(lp0.top_logprobs, 0);
}

struct BadCase {
  ApiKind kind;
  std::string body;
  std::string param;    // the field named
  std::string message;  // a substring of the message
};

TEST(RequestParser, EveryViolationIsA400NamingTheField) {
  const ApiKind C = ApiKind::Chat, P = ApiKind::Completion;
  const std::string m = kMsg + ", ";
  const std::vector<BadCase> cases = {
      {C, "", "", "empty"},
      {C, "{", "", "not valid JSON"},
      {C, R"({"messages": [}])", "", "not valid JSON"},
      {C, "[1, 2]", "", "must be a JSON object, found array"},
      {C, "\"text\"", "", "found string"},
      {C, "{}", "messages", "required"},
      {C, R"({"messages": []})", "messages", "empty"},
      {C, R"({"messages": "hi"})", "messages", "must be an array"},
      {C, R"({"messages": [1]})", "messages[0]", "message object"},
      {C, R"({"messages": [{"content": "x"}]})", "messages[0].role", "required"},
      {C, R"({"messages": [{"role": "robot", "content": "x"}]})", "messages[0].role", "'robot'"},
      {C, R"({"messages": [{"role": "tool", "content": "x"}]})", "messages[0].role", "'tool'"},
      {C, R"({"messages": [{"role": 5, "content": "x"}]})", "messages[0].role", "string"},
      {C, R"({"messages": [{"role": "user"}]})", "messages[0].content", "required"},
      {C, R"({"messages": [{"role": "user", "content": 3}]})", "messages[0].content", "string"},
      {C, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content[0].type", "not supported"},
      {C, R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})",
       "messages[0].content[0].text", "string"},
      {C, R"({"messages": [{"role": "assistant", "content": "", "tool_calls": []}]})",
       "messages[0].tool_calls", "not supported"},
      {C, "{" + m + R"("max_tokens": 0})", "max_tokens", "[1, "},
      {C, "{" + m + R"("max_tokens": "8"})", "max_tokens", "integer, found string"},
      {C, "{" + m + R"("max_tokens": 8.5})", "max_tokens", "integer"},
      {C, "{" + m + R"("max_completion_tokens": -1})", "max_completion_tokens", "[1, "},
      {C, "{" + m + R"("temperature": 2.5})", "temperature", "[0, 2]"},
      {C, "{" + m + R"("temperature": "hot"})", "temperature", "number"},
      {C, "{" + m + R"("top_p": 0})", "top_p", "(0, 1]"},
      {C, "{" + m + R"("top_p": 1.5})", "top_p", "(0, 1]"},
      {C, "{" + m + R"("top_k": -1})", "top_k", "[0, "},
      {C, "{" + m + R"("min_p": 2})", "min_p", "[0, 1]"},
      {C, "{" + m + R"("presence_penalty": 3})", "presence_penalty", "[-2, 2]"},
      {C, "{" + m + R"("frequency_penalty": -2.5})", "frequency_penalty", "[-2, 2]"},
      {C, "{" + m + R"("repeat_penalty": 0})", "repeat_penalty", "(0, 10]"},
      {C, "{" + m + R"("seed": 1.5})", "seed", "integer"},
      {C, "{" + m + R"("stop": 5})", "stop", "string or an array"},
      {C, "{" + m + R"("stop": ["a", 1]})", "stop[1]", "string"},
      {C, "{" + m + R"("stop": ["a", "b", "c", "d", "e"]})", "stop", "more than 4"},
      {C, "{" + m + R"("stop": ")" + std::string(300, 'x') + "\"}", "stop", "more than 256"},
      {C, "{" + m + R"("stream": "yes"})", "stream", "boolean"},
      {C, "{" + m + R"("stream_options": {"include_usage": true}})", "stream_options",
       "stream\": true"},
      {C, "{" + m + R"("stream": true, "stream_options": 1})", "stream_options", "object"},
      {C, "{" + m + R"("logprobs": 1})", "logprobs", "boolean"},
      {C, "{" + m + R"("top_logprobs": 2})", "top_logprobs", "needs"},
      {C, "{" + m + R"("logprobs": true, "top_logprobs": 21})", "top_logprobs", "[0, 20]"},
      {C, "{" + m + R"("n": 2})", "n", "must be 1"},
      {C, "{" + m + R"("n": 0})", "n", "[1, 128]"},
      {C, "{" + m + R"("logit_bias": {"1": 5}})", "logit_bias", "not supported"},
      {C, "{" + m + R"("tools": [{"type": "function"}]})", "tools", "not supported"},
      {C, "{" + m + R"("functions": []})", "functions", "not supported"},
      {C, "{" + m + R"("tool_choice": "required"})", "tool_choice", "not supported"},
      {C, "{" + m + R"("response_format": {"type": "json_object"}})", "response_format",
       "not supported"},
      {C, "{" + m + R"("model": 7})", "model", "string"},
      {C, std::string(100, '[') + std::string(100, ']'), "", "nests deeper"},
      {P, "{}", "prompt", "required"},
      {P, R"({"prompt": 5})", "prompt", "string, or an array"},
      {P, R"({"prompt": ["a", "b"]})", "prompt", "list of 2 prompts"},
      {P, R"({"prompt": [[1], [2]]})", "prompt", "list of 2 prompts"},
      {P, R"({"prompt": []})", "prompt", "list of 0 prompts"},
      {P, R"({"prompt": [[]]})", "prompt[0]", "empty list"},
      {P, R"({"prompt": [1, "a"]})", "prompt[1]", "token id"},
      {P, R"({"prompt": [1, -2]})", "prompt[1]", "not a token id"},
      {P, R"({"prompt": [1, 3000000000]})", "prompt[1]", "not a token id"},
      {P, R"({"prompt": [1.5]})", "prompt[0]", "token id"},
      {P, R"({"prompt": [{}]})", "prompt[0]", "string or an array"},
      {P, R"({"prompt": "x", "logprobs": 6})", "logprobs", "[0, 5]"},
      {P, R"({"prompt": "x", "logprobs": true})", "logprobs", "integer"},
      {P, R"({"prompt": "x", "echo": true})", "echo", "not supported"},
      {P, R"({"prompt": "x", "suffix": "y"})", "suffix", "not supported"},
      {P, R"({"prompt": "x", "best_of": 3})", "best_of", "must be 1"},
  };
  for (const BadCase& c : cases) {
    const ApiError e = error_of([&] { parse_generation_request(c.body, c.kind); });
    EXPECT_EQ(e.status, 400) << c.body << ": " << e.message;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
    EXPECT_NE(e.message.find(c.message), std::string::npos)
        << c.body << ": '" << e.message << "' lacks '" << c.message << "'";
  }
}

TEST(RequestParser, TokenizeAndDetokenize) {
  const TokenizeRequest t = parse_tokenize_request(R"({"content": "Hi"})");
  EXPECT_EQ(t.content, "Hi");
  EXPECT_FALSE(t.add_special);  // llama.cpp's defaults
  EXPECT_TRUE(t.parse_special);
  EXPECT_FALSE(t.with_pieces);
  const TokenizeRequest t2 = parse_tokenize_request(
      R"({"content": "", "add_special": true, "parse_special": false, "with_pieces": true})");
  EXPECT_TRUE(t2.add_special);
  EXPECT_FALSE(t2.parse_special);
  EXPECT_TRUE(t2.with_pieces);
  EXPECT_EQ(parse_detokenize_request(R"({"tokens": [1, 2]})").tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_TRUE(parse_detokenize_request(R"({"tokens": []})").tokens.empty());

  EXPECT_EQ(error_of([] { parse_tokenize_request("{}"); }).param, "content");
  EXPECT_EQ(error_of([] { parse_tokenize_request(R"({"content": 1})"); }).param, "content");
  EXPECT_EQ(error_of([] { parse_tokenize_request(R"({"content": "", "with_pieces": 1})"); }).param,
            "with_pieces");
  EXPECT_EQ(error_of([] { parse_detokenize_request("{}"); }).param, "tokens");
  EXPECT_EQ(error_of([] { parse_detokenize_request(R"({"tokens": [-1]})"); }).param, "tokens[0]");
  EXPECT_EQ(error_of([] { parse_detokenize_request(R"({"tokens": "1"})"); }).param, "tokens");
}

// ---- response bodies ----

std::string piece(int32_t t) {
  if (t == 99) return std::string("\xE2\x82", 2);  // a cut character
  std::string s = "t";
  s += std::to_string(t);
  return s;
}

GenerateResult result(const std::string& text, StopReason why) {
  GenerateResult r;
  r.text = text;
  r.tokens = {5, 99};
  r.prompt_tokens = 7;
  r.stop_reason = why;
  return r;
}

TEST(OpenAIJson, ChatCompletionShape) {
  const ResponseHead head{ApiKind::Chat, "chatcmpl-1", 1700000000, "tiny"};
  const json j = json::parse(
      completion_body(head, result("Hello", StopReason::EndOfGeneration), std::nullopt, piece));
  EXPECT_EQ(j["id"], "chatcmpl-1");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "tiny");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"], json::parse(R"({"prompt_tokens": 7, "completion_tokens": 2,
                                         "total_tokens": 9})"));
}

TEST(OpenAIJson, TextCompletionShapeAndFinishReasons) {
  const ResponseHead head{ApiKind::Completion, "cmpl-1", 1, "tiny"};
  const json j =
      json::parse(completion_body(head, result("x", StopReason::MaxTokens), std::nullopt, piece));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "x");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_STREQ(finish_reason(StopReason::ContextFull), "length");
  EXPECT_STREQ(finish_reason(StopReason::StopString), "stop");
  EXPECT_STREQ(finish_reason(StopReason::EndOfGeneration), "stop");
}

TEST(OpenAIJson, LogprobsInBothShapes) {
  const std::vector<TokenLogprob> lps = {{5, -0.5f}, {99, -INFINITY}};
  const std::vector<TokenLogprob> tops = {{5, -0.5f}, {6, -1.0f}, {7, -2.0f}, {99, -3.0f}};
  const LogprobSpan span{lps, tops, 2};
  const json c = json::parse(completion_body({ApiKind::Chat, "c", 1, "m"},
                                             result("t5", StopReason::MaxTokens), span, piece));
  const json& content = c["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["token"], "t5");
  EXPECT_EQ(content[0]["logprob"], -0.5);
  EXPECT_EQ(content[0]["bytes"], json::parse("[116, 53]"));
  EXPECT_EQ(content[0]["top_logprobs"][1]["token"], "t6");
  EXPECT_EQ(content[0]["top_logprobs"][1]["logprob"], -1.0);
  EXPECT_EQ(content[1]["token"], "\xEF\xBF\xBD");             // the cut character, replaced ...
  EXPECT_EQ(content[1]["bytes"], json::parse("[226, 130]"));  // ... its bytes exact
  EXPECT_EQ(content[1]["logprob"], -9999.0);                  // -inf has no JSON spelling
  EXPECT_TRUE(c["choices"][0]["logprobs"]["refusal"].is_null());

  const json p = json::parse(completion_body({ApiKind::Completion, "c", 1, "m"},
                                             result("t5", StopReason::MaxTokens), span, piece));
  const json& lp = p["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::parse(R"(["t5", "\ufffd"])"));
  EXPECT_EQ(lp["token_logprobs"], json::parse("[-0.5, -9999.0]"));
  EXPECT_EQ(lp["top_logprobs"][0], json::parse(R"({"t5": -0.5, "t6": -1.0})"));
  EXPECT_EQ(lp["text_offset"], json::parse("[0, 2]"));
}

TEST(OpenAIJson, StreamChunksAndUsage) {
  const ResponseHead chat{ApiKind::Chat, "c", 1, "m"};
  Chunk first;
  first.role = true;
  json j = json::parse(chunk_body(chat, first, false, piece));
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_EQ(j["choices"][0]["delta"], json::parse(R"({"role": "assistant", "content": ""})"));
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(j.contains("usage"));
  Chunk text;
  text.text = "abc";
  j = json::parse(chunk_body(chat, text, true, piece));
  EXPECT_EQ(j["choices"][0]["delta"], json::parse(R"({"content": "abc"})"));
  EXPECT_TRUE(j.contains("usage") && j["usage"].is_null());
  Chunk last;
  last.finish_reason = "length";
  j = json::parse(chunk_body(chat, last, false, piece));
  EXPECT_EQ(j["choices"][0]["delta"], json::object());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  j = json::parse(usage_chunk_body(chat, 3, 4));
  EXPECT_TRUE(j["choices"].empty());
  EXPECT_EQ(j["usage"]["total_tokens"], 7);

  j = json::parse(chunk_body({ApiKind::Completion, "c", 1, "m"}, text, false, piece));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "abc");
}

TEST(OpenAIJson, ErrorModelsAndTokenizeBodies) {
  json e = json::parse(error_body({400, "bad \xFF", "invalid_request_error", "top_p", ""}));
  EXPECT_EQ(e["error"]["message"], "bad \xEF\xBF\xBD");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "top_p");
  EXPECT_TRUE(e["error"]["code"].is_null());
  e = json::parse(error_body({503, "busy", "server_error", "", "server_overloaded"}));
  EXPECT_TRUE(e["error"]["param"].is_null());
  EXPECT_EQ(e["error"]["code"], "server_overloaded");

  const json m = json::parse(models_body("tiny", 5));
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0], json::parse(R"({"id": "tiny", "object": "model", "created": 5,
                                          "owned_by": "bitnet-cxx"})"));
  const std::vector<int32_t> ids = {5, 99};
  EXPECT_EQ(json::parse(tokenize_body(ids, false, piece)), json::parse(R"({"tokens": [5, 99]})"));
  EXPECT_EQ(json::parse(tokenize_body(ids, true, piece)),
            json::parse(R"({"tokens": [{"id": 5, "piece": "t5"},
                                       {"id": 99, "piece": [226, 130]}]})"));
  EXPECT_EQ(json::parse(detokenize_body("a\nb")), json::parse(R"({"content": "a\nb"})"));
}

TEST(OpenAIJson, Utf8Validation) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_FALSE(valid_utf8("\xE2\x82"));                             // cut
  EXPECT_FALSE(valid_utf8("\x80"));                                 // lone continuation
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));                             // overlong
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));                         // surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));                     // past U+10FFFF
  EXPECT_FALSE(valid_utf8("\xFF"));
}

}  // namespace
}  // namespace bitnet::server
