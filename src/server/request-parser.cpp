#include "server/request-parser.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "server/api-error.h"

namespace bitnet::server {
namespace {

using json = nlohmann::json;

json parse_object(std::string_view body, const RequestLimits& limits) {
  if (body.empty()) bad_request("", "the request body is empty; expected a JSON object");
  json j;
  try {
    j = json::parse(body.begin(), body.end(), [&](int depth, json::parse_event_t, json&) {
      if (depth > limits.max_depth) {
        bad_request("", "the request body nests deeper than " + std::to_string(limits.max_depth) +
                            " levels");
      }
      return true;
    });
  } catch (const json::exception& e) {
    bad_request("", std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) {
    bad_request("", std::string("the request body must be a JSON object, found ") + j.type_name());
  }
  return j;
}

// The field, or null when absent or JSON null (OpenAI treats null as "not given").
const json* field(const json& o, const char* name) {
  const auto it = o.find(name);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void wrong_type(const std::string& name, const char* expected, const json& v) {
  bad_request(name, "'" + name + "' must be " + expected + ", found " + v.type_name());
}

std::string fmt(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// A number in [lo, hi] (lo excluded when lo_open).
std::optional<double> number(const json& o, const char* name, double lo, double hi,
                             bool lo_open = false) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x > hi || x < lo || (lo_open && x == lo)) {
    bad_request(name, "'" + std::string(name) + "' must be in " + (lo_open ? "(" : "[") + fmt(lo) +
                          ", " + fmt(hi) + "], found " + fmt(x));
  }
  return x;
}

std::optional<int64_t> integer(const json& o, const char* name, int64_t lo, int64_t hi) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) wrong_type(name, "an integer", *v);
  // Unsigned values above INT64_MAX are out of every range asked for here.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    bad_request(name, "'" + std::string(name) + "' must be in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "], found " + v->dump());
  }
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) {
    bad_request(name, "'" + std::string(name) + "' must be in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "], found " + std::to_string(x));
  }
  return x;
}

// `at`: the path of the object o when it is nested ("messages[0]"), for the messages.
std::string path(const std::string& at, const char* name) {
  return at.empty() ? name : at + "." + name;
}

std::optional<bool> boolean(const json& o, const char* name, const std::string& at = "") {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(path(at, name), "a boolean", *v);
  return v->get<bool>();
}

std::optional<std::string> string(const json& o, const char* name, const std::string& at = "") {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(path(at, name), "a string", *v);
  return v->get<std::string>();
}

// A token id list: a non-empty array of integers in [0, INT32_MAX] (the vocabulary is checked
// later).
std::vector<int32_t> token_ids(const json& a, const std::string& name,
                               const RequestLimits& limits) {
  if (a.empty()) bad_request(name, "'" + name + "' is an empty list of token ids");
  if (a.size() > limits.max_prompt_ids) {
    bad_request(name, "'" + name + "' has " + std::to_string(a.size()) + " token ids, more than " +
                          std::to_string(limits.max_prompt_ids));
  }
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const json& t = a[i];
    const std::string at = name + "[" + std::to_string(i) + "]";
    if (!t.is_number_integer()) wrong_type(at, "a token id (an integer)", t);
    if (t.is_number_unsigned() ? t.get<uint64_t>() > INT32_MAX
                               : (t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)) {
      bad_request(at, "'" + at + "' is not a token id: " + t.dump());
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

// Message content: a string, or an array of content parts of which only {"type": "text"} ones are
// supported (concatenated).
std::string content_text(const json& c, const std::string& name) {
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) wrong_type(name, "a string or an array of content parts", c);
  std::string text;
  for (size_t i = 0; i < c.size(); ++i) {
    const json& part = c[i];
    const std::string at = name + "[" + std::to_string(i) + "]";
    if (!part.is_object()) wrong_type(at, "a content part object", part);
    const auto type = string(part, "type", at);
    if (!type) bad_request(at + ".type", "'" + at + ".type' is missing");
    if (*type != "text") {
      bad_request(at + ".type", "content parts of type '" + *type +
                                    "' are not supported (text only: this is a text model)");
    }
    const json* t = field(part, "text");
    if (!t || !t->is_string()) bad_request(at + ".text", "'" + at + ".text' must be a string");
    text += t->get<std::string>();
  }
  return text;
}

std::vector<Message> parse_messages(const json& body, const RequestLimits& limits) {
  const json* m = field(body, "messages");
  if (!m) bad_request("messages", "'messages' is required");
  if (!m->is_array()) wrong_type("messages", "an array of messages", *m);
  if (m->empty()) bad_request("messages", "'messages' is empty: give at least one message");
  if (m->size() > limits.max_messages) {
    bad_request("messages", "'messages' has " + std::to_string(m->size()) +
                                " messages, more than " + std::to_string(limits.max_messages));
  }
  std::vector<Message> out;
  out.reserve(m->size());
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) wrong_type(at, "a message object", msg);
    const auto role = string(msg, "role", at);
    if (!role) bad_request(at + ".role", "'" + at + ".role' is required");
    Message parsed;
    if (*role == "system" || *role == "developer") {
      parsed.role = "system";
    } else if (*role == "user" || *role == "assistant") {
      parsed.role = *role;
    } else {
      bad_request(at + ".role", "'" + at + ".role' is '" + *role +
                                    "'; supported roles: system (or developer), user, assistant");
    }
    if (field(msg, "tool_calls") || field(msg, "function_call")) {
      bad_request(at + ".tool_calls", "tool and function calls are not supported");
    }
    const json* c = field(msg, "content");
    if (!c) {
      if (parsed.role != "assistant")
        bad_request(at + ".content", "'" + at + ".content' is required");
    } else {
      parsed.content = content_text(*c, at + ".content");
    }
    out.push_back(std::move(parsed));
  }
  return out;
}

void parse_prompt(const json& body, GenerationRequest& r, const RequestLimits& limits) {
  const json* p = field(body, "prompt");
  if (!p) bad_request("prompt", "'prompt' is required");
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
    return;
  }
  if (!p->is_array()) wrong_type("prompt", "a string, or an array of token ids", *p);
  if (!p->empty() && (*p)[0].is_number()) {
    r.prompt_ids = token_ids(*p, "prompt", limits);
    return;
  }
  if (p->size() != 1) {
    bad_request("prompt", "'prompt' is a list of " + std::to_string(p->size()) +
                              " prompts; one prompt per request is supported");
  }
  const json& only = (*p)[0];
  if (only.is_string()) {
    r.prompt = only.get<std::string>();
  } else if (only.is_array()) {
    r.prompt_ids = token_ids(only, "prompt[0]", limits);
  } else {
    wrong_type("prompt[0]", "a string or an array of token ids", only);
  }
}

void parse_stop(const json& body, GenerationRequest& r, const RequestLimits& limits) {
  const json* s = field(body, "stop");
  if (!s) return;
  auto add = [&](const json& v, const std::string& at) {
    if (!v.is_string()) wrong_type(at, "a string", v);
    std::string text = v.get<std::string>();
    if (text.size() > limits.max_stop_bytes) {
      bad_request("stop", "'" + at + "' is " + std::to_string(text.size()) +
                              " bytes long, more than " + std::to_string(limits.max_stop_bytes));
    }
    if (!text.empty()) r.stop.push_back(std::move(text));
  };
  if (s->is_string()) {
    add(*s, "stop");
    return;
  }
  if (!s->is_array()) wrong_type("stop", "a string or an array of strings", *s);
  if (s->size() > limits.max_stop) {
    bad_request("stop", "'stop' has " + std::to_string(s->size()) + " strings, more than " +
                            std::to_string(limits.max_stop));
  }
  for (size_t i = 0; i < s->size(); ++i) add((*s)[i], "stop[" + std::to_string(i) + "]");
}

// Fields of OpenAI's API this server does not implement: refused unless they ask for nothing.
void refuse_unsupported(const json& body, ApiKind kind) {
  if (const auto n = integer(body, "n", 1, 128); n && *n != 1) {
    bad_request("n",
                "'n' must be 1: one choice per request is supported, found " + std::to_string(*n));
  }
  if (const json* b = field(body, "logit_bias")) {
    if (!b->is_object()) wrong_type("logit_bias", "an object", *b);
    if (!b->empty()) bad_request("logit_bias", "'logit_bias' is not supported");
  }
  if (const json* t = field(body, "tools")) {
    if (!t->is_array()) wrong_type("tools", "an array", *t);
    if (!t->empty()) bad_request("tools", "tools (function calling) are not supported");
  }
  if (field(body, "functions")) bad_request("functions", "function calling is not supported");
  if (const json* t = field(body, "tool_choice")) {
    if (!t->is_string() || (*t != "none" && *t != "auto")) {
      bad_request("tool_choice", "tool_choice other than \"none\" is not supported");
    }
  }
  if (const json* f = field(body, "response_format")) {
    if (!f->is_object()) wrong_type("response_format", "an object", *f);
    const auto type = string(*f, "type", "response_format");
    if (type && *type != "text") {
      bad_request("response_format",
                  "response_format '" + *type + "' is not supported (only \"text\")");
    }
  }
  if (kind == ApiKind::Completion) {
    if (boolean(body, "echo").value_or(false)) bad_request("echo", "'echo' is not supported");
    if (const auto s = string(body, "suffix"); s && !s->empty()) {
      bad_request("suffix", "'suffix' (insertion) is not supported");
    }
    if (const auto b = integer(body, "best_of", 1, 128); b && *b != 1) {
      bad_request("best_of", "'best_of' must be 1, found " + std::to_string(*b));
    }
  }
}

}  // namespace

GenerationRequest parse_generation_request(std::string_view text, ApiKind kind,
                                           const RequestLimits& limits) {
  const json body = parse_object(text, limits);
  GenerationRequest r;
  r.kind = kind;
  r.model = string(body, "model").value_or("");
  if (kind == ApiKind::Chat) {
    r.messages = parse_messages(body, limits);
  } else {
    parse_prompt(body, r, limits);
  }
  constexpr int64_t kMaxTokens = int64_t{1} << 40;
  r.max_tokens = integer(body, "max_completion_tokens", 1, kMaxTokens);
  if (!r.max_tokens) r.max_tokens = integer(body, "max_tokens", 1, kMaxTokens);
  if (kind == ApiKind::Completion && !r.max_tokens) r.max_tokens = 16;  // OpenAI's default
  r.temperature = number(body, "temperature", 0, 2).value_or(1.0);
  r.top_p = number(body, "top_p", 0, 1, true).value_or(1.0);
  r.top_k = static_cast<int32_t>(integer(body, "top_k", 0, INT32_MAX).value_or(0));
  r.min_p = number(body, "min_p", 0, 1).value_or(0.0);
  r.presence_penalty = number(body, "presence_penalty", -2, 2).value_or(0.0);
  r.frequency_penalty = number(body, "frequency_penalty", -2, 2).value_or(0.0);
  r.repeat_penalty = number(body, "repeat_penalty", 0, 10, true).value_or(1.0);
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) wrong_type("seed", "an integer", *s);
    r.seed =
        s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>());
  }
  parse_stop(body, r, limits);
  r.stream = boolean(body, "stream").value_or(false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    if (!r.stream) {
      bad_request("stream_options", "'stream_options' is only allowed with \"stream\": true");
    }
    r.include_usage = boolean(*so, "include_usage", "stream_options").value_or(false);
  }
  if (kind == ApiKind::Chat) {
    r.logprobs = boolean(body, "logprobs").value_or(false);
    if (const auto top = integer(body, "top_logprobs", 0, 20)) {
      if (!r.logprobs && *top > 0) {
        bad_request("top_logprobs", "'top_logprobs' needs \"logprobs\": true");
      }
      r.top_logprobs = static_cast<int32_t>(*top);
    }
  } else if (const auto lp = integer(body, "logprobs", 0, 5)) {
    r.logprobs = true;
    r.top_logprobs = static_cast<int32_t>(*lp);
  }
  refuse_unsupported(body, kind);
  return r;
}

TokenizeRequest parse_tokenize_request(std::string_view text, const RequestLimits& limits) {
  const json body = parse_object(text, limits);
  TokenizeRequest r;
  const auto content = string(body, "content");
  if (!content) bad_request("content", "'content' (the text to tokenize) is required");
  r.content = *content;
  r.add_special = boolean(body, "add_special").value_or(false);
  r.parse_special = boolean(body, "parse_special").value_or(true);
  r.with_pieces = boolean(body, "with_pieces").value_or(false);
  return r;
}

DetokenizeRequest parse_detokenize_request(std::string_view text, const RequestLimits& limits) {
  const json body = parse_object(text, limits);
  const json* t = field(body, "tokens");
  if (!t) bad_request("tokens", "'tokens' (the token ids to detokenize) is required");
  if (!t->is_array()) wrong_type("tokens", "an array of token ids", *t);
  DetokenizeRequest r;
  if (!t->empty()) r.tokens = token_ids(*t, "tokens", limits);
  return r;
}

}  // namespace bitnet::server
