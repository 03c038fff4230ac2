// One generation request between an HTTP thread and the Engine: preparation (the prompt's tokens,
// the context check, the GenerateOptions), the exchange the Engine's callbacks fill on the
// scheduler thread and the HTTP thread drains, and the response (one body, or SSE events).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bitnet/engine.h"
#include "server/api-error.h"
#include "server/metrics.h"
#include "server/openai-json.h"
#include "server/request-parser.h"

namespace bitnet::server {

using Clock = std::chrono::steady_clock;

// A parsed request made ready for the Engine. Throws ApiException (400) for a prompt token outside
// the vocabulary, an unknown role (from the template), or a prompt plus max_tokens over the
// context (code context_length_exceeded). seed: used when the request gives none.
struct PreparedRequest {
  std::vector<int32_t> prompt;
  GenerateOptions options;
};
PreparedRequest prepare_request(const GenerationRequest& request, const Engine& engine,
                                uint64_t seed);

// Filled by the Engine's callbacks (scheduler thread), drained by the HTTP thread.
struct Exchange {
  std::mutex mu;
  std::condition_variable cv;
  // Guarded by mu:
  std::string text;                // streamed text not yet sent
  std::vector<TokenLogprob> lps;   // streamed logprobs not yet sent
  std::vector<TokenLogprob> tops;  // [lps.size() * top_n]
  bool done = false;
  std::optional<GenerateResult> result;
  std::exception_ptr error;
  // The HTTP thread is (about to be) waiting on cv and has not been woken since: the next piece
  // wakes it; pieces until it waits again do not (one wake-up per batch of pieces, not per token).
  bool waiting = false;

  CancelToken cancel;
  std::atomic<bool> cancelled_by_shutdown{false};
  std::atomic<bool> client_gone{false};
  // Written on the scheduler thread only (the token callback).
  Clock::time_point submitted, last_token, last_poll;
};

// The callbacks for Engine::submit: timing and counting every token into the metrics; for a
// stream, handing text and logprobs to the HTTP thread; for a whole response, checking the
// client's connection (fd, valid until the response is written) at most once a millisecond, so
// that a departed client's request is cancelled before the next step.
void attach_callbacks(GenerateOptions& options, TokenCallback& on_piece,
                      const std::shared_ptr<Exchange>& ex, Metrics& metrics, bool stream, int fd);

// Marks the client gone (counted once) and cancels its request.
void client_left(Exchange& ex, Metrics& metrics);

// A stream's Server-Sent Events ("data: {chunk}\n\n" each) in OpenAI's order: for chat a first
// chunk with the assistant role, a chunk per batch of text, a last chunk with finish_reason and
// no text, the usage chunk when asked, then "data: [DONE]".
class StreamEncoder {
 public:
  StreamEncoder(ResponseHead head, bool include_usage, int32_t top_n, PieceFn piece);
  // The opening events (chat: the role chunk; completions: none).
  std::string start();
  // A chunk for this text and these tokens' logprobs (top: top_n per token); "" when both are
  // empty.
  std::string text(std::string_view text, std::span<const TokenLogprob> lps,
                   std::span<const TokenLogprob> tops);
  // The closing events of a finished request.
  std::string finish(const GenerateResult& result);
  // An error event ({"error": ...}, OpenAI's shape) that ends a stream early; no [DONE] follows.
  static std::string error(const ApiError& error);

 private:
  ResponseHead head_;
  bool include_usage_;
  int32_t top_n_;
  PieceFn piece_;
  // A text-only chunk is prefix_ + the text as a JSON string's inside + suffix_: the same bytes
  // as chunk_body, cut once around a marker, so each event is built without a JSON object.
  std::string prefix_, suffix_;
};

}  // namespace bitnet::server
