#include "server/completion.h"

#include <utility>

#include "server/socket-util.h"

namespace bitnet::server {
namespace {

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string sse(const std::string& data) {
  std::string e;
  e.reserve(data.size() + 8);
  e += "data: ";
  e += data;
  e += "\n\n";
  return e;
}

}  // namespace

PreparedRequest prepare_request(const GenerationRequest& r, const Engine& engine, uint64_t seed) {
  PreparedRequest p;
  const EngineInfo& info = engine.info();
  const bool chat = r.kind == ApiKind::Chat;
  if (chat) {
    std::vector<ChatMessage> messages;
    messages.reserve(r.messages.size());
    for (const Message& m : r.messages) messages.push_back({m.role, m.content});
    std::string text;
    try {
      text = engine.apply_chat_template(messages, true);
    } catch (const Error& e) {
      bad_request("messages", e.what());
    }
    p.prompt = engine.tokenize(text, true, true);
  } else if (r.prompt) {
    p.prompt = engine.tokenize(*r.prompt, true, true);
  } else {
    p.prompt = r.prompt_ids.value_or(std::vector<int32_t>{});
    for (size_t i = 0; i < p.prompt.size(); ++i) {
      if (p.prompt[i] >= info.n_vocab) {
        bad_request("prompt", "prompt token " + std::to_string(i) + " is " +
                                  std::to_string(p.prompt[i]) + ", outside the vocabulary [0, " +
                                  std::to_string(info.n_vocab) + ")");
      }
    }
  }
  const char* param = chat ? "messages" : "prompt";
  const auto n = static_cast<int64_t>(p.prompt.size());
  const int64_t ctx = info.context_size;
  if (n == 0) bad_request(param, "the prompt has no tokens (and this vocabulary adds no BOS)");
  if (n >= ctx) {
    bad_request(param,
                "this model's maximum context length is " + std::to_string(ctx) +
                    " tokens, but the prompt has " + std::to_string(n) +
                    " tokens; shorten the prompt",
                "context_length_exceeded");
  }
  const int64_t max_tokens = r.max_tokens.value_or(ctx - n);
  if (n + max_tokens > ctx) {
    bad_request("max_tokens",
                "this model's maximum context length is " + std::to_string(ctx) +
                    " tokens, but the request asks for " + std::to_string(n + max_tokens) + " (" +
                    std::to_string(n) + " in the prompt, " + std::to_string(max_tokens) +
                    " for the completion); lower max_tokens or shorten the prompt",
                "context_length_exceeded");
  }
  GenerateOptions& o = p.options;
  o.max_tokens = max_tokens;
  o.temperature = static_cast<float>(r.temperature);
  o.top_p = static_cast<float>(r.top_p);
  o.top_k = r.top_k;
  o.min_p = static_cast<float>(r.min_p);
  o.repeat_penalty = static_cast<float>(r.repeat_penalty);
  o.presence_penalty = static_cast<float>(r.presence_penalty);
  o.frequency_penalty = static_cast<float>(r.frequency_penalty);
  o.seed = r.seed.value_or(seed);
  o.stop = r.stop;
  o.logprobs = r.logprobs;
  o.top_logprobs = r.top_logprobs;
  return p;
}

void client_left(Exchange& ex, Metrics& metrics) {
  if (!ex.client_gone.exchange(true)) metrics.client_disconnects.fetch_add(1);
  ex.cancel.cancel();
}

void attach_callbacks(GenerateOptions& options, TokenCallback& on_piece,
                      const std::shared_ptr<Exchange>& ex, Metrics& metrics, bool stream, int fd) {
  const bool stream_logprobs = stream && options.logprobs;
  const int watch_fd = stream ? -1 : fd;  // a stream's HTTP thread checks after every event
  options.on_token = [ex, &metrics, stream_logprobs, watch_fd](const TokenEvent& e) {
    const Clock::time_point now = Clock::now();
    if (watch_fd >= 0 && now - ex->last_poll >= std::chrono::milliseconds(1)) {
      ex->last_poll = now;
      if (!peer_connected(watch_fd)) client_left(*ex, metrics);
    }
    if (e.index == 0) {
      metrics.time_to_first_token.observe(seconds(ex->submitted, now));
    } else {
      metrics.inter_token.observe(seconds(ex->last_token, now));
    }
    ex->last_token = now;
    metrics.generated_tokens.fetch_add(1, std::memory_order_relaxed);
    if (stream_logprobs) {
      std::lock_guard lock(ex->mu);
      ex->lps.push_back({e.token, e.logprob});
      ex->tops.insert(ex->tops.end(), e.top.begin(), e.top.end());
    }
  };
  if (stream) {
    on_piece = [ex](std::string_view piece) {
      bool wake;
      {
        std::lock_guard lock(ex->mu);
        ex->text.append(piece);
        wake = ex->waiting;
        ex->waiting = false;
      }
      if (wake) ex->cv.notify_one();
      return true;
    };
  }
}

StreamEncoder::StreamEncoder(ResponseHead head, bool include_usage, int32_t top_n, PieceFn piece)
    : head_(std::move(head)),
      include_usage_(include_usage),
      top_n_(top_n),
      piece_(std::move(piece)) {
  // A marker JSON writes as itself; the text is the last string field of a chunk, so the last
  // occurrence is it whatever the model id says.
  constexpr std::string_view kMarker = "@@bitnet-chunk-text@@";
  Chunk c;
  c.text = kMarker;
  const std::string body = chunk_body(head_, c, include_usage_, piece_);
  const size_t at = body.rfind(kMarker);
  prefix_ = body.substr(0, at);
  suffix_ = body.substr(at + kMarker.size());
}

std::string StreamEncoder::start() {
  if (head_.kind != ApiKind::Chat) return {};
  Chunk c;
  c.role = true;
  return sse(chunk_body(head_, c, include_usage_, piece_));
}

std::string StreamEncoder::text(std::string_view text, std::span<const TokenLogprob> lps,
                                std::span<const TokenLogprob> tops) {
  if (text.empty() && lps.empty()) return {};
  if (lps.empty()) {
    const std::string quoted = json_string(text);  // "..."
    std::string e;
    e.reserve(prefix_.size() + quoted.size() + suffix_.size() + 8);
    e += "data: ";
    e += prefix_;
    e.append(quoted, 1, quoted.size() - 2);
    e += suffix_;
    e += "\n\n";
    return e;
  }
  Chunk c;
  c.text = text;
  c.logprobs = LogprobSpan{lps, tops, top_n_};
  return sse(chunk_body(head_, c, include_usage_, piece_));
}

std::string StreamEncoder::finish(const GenerateResult& result) {
  Chunk c;
  c.finish_reason = finish_reason(result.stop_reason);
  std::string out = sse(chunk_body(head_, c, include_usage_, piece_));
  if (include_usage_) {
    out += sse(
        usage_chunk_body(head_, result.prompt_tokens, static_cast<int64_t>(result.tokens.size())));
  }
  out += sse("[DONE]");
  return out;
}

std::string StreamEncoder::error(const ApiError& error) {
  return sse(error_body(error));
}

}  // namespace bitnet::server
