// One request's generation, apart from how its tokens are evaluated: sampling, detokenizing,
// stop strings, the streaming callback, cancellation, timings and the result.
//
// The evaluator (the Engine's batched step, many requests at once) evaluates prompt_tokens(), then
// repeatedly hands the logits of the last evaluated position to accept(), which returns the next
// token to evaluate or nullopt when the request is done; finish() then gives the result.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "bitnet/engine.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::engine {

using Clock = std::chrono::steady_clock;

// Wraps an exception thrown by the request's callback, so that it reaches the future unchanged
// (engine errors become bitnet::Error; the caller's own exceptions are theirs).
struct CallbackError {
  std::exception_ptr error;
};

// The sampler parameters of the options.
engine::SamplerParams sampler_params(const GenerateOptions& options);
// Throws bitnet::Error naming the option that is out of range (sampling, max_tokens, logprobs).
void validate_options(const GenerateOptions& options, int32_t n_vocab);

// Log-probabilities from one position's logits: the log-softmax at temperature 1 and the most
// likely tokens. Sized once for a vocabulary and a number of alternatives; no allocation per call.
class LogprobCalculator {
 public:
  LogprobCalculator(int32_t n_vocab, int32_t top_n);
  // logits: [n_vocab], finite or -inf, not all -inf. Returns token's log-probability and writes
  // the top_n most likely tokens (logit descending, ties to the lower id) to top[0, top_n).
  float compute(const float* logits, int32_t token, TokenLogprob* top);

 private:
  int32_t n_vocab_, top_n_;
};

// A validated, tokenized request waiting for a worker.
struct Request {
  std::vector<int32_t> prompt;
  engine::SamplerParams sampling;
  GenerateOptions options;
  TokenCallback on_piece;
  std::promise<GenerateResult> promise;  // unused when on_done is set
  CompletionCallback on_done;
  Clock::time_point submitted;
};

class Generation {
 public:
  // n_ctx: positions available to this request; shutdown: set when the Engine is being destroyed
  // (cancels like the request's CancelToken). Allocates everything it needs here.
  Generation(const model::Tokenizer& tokenizer, Request& request, int64_t n_ctx,
             const std::atomic<bool>* shutdown);

  std::span<const int32_t> prompt_tokens() const { return request_.prompt; }
  // Also checked before evaluating the prompt: true when the request was cancelled while queued.
  bool cancelled() const {
    return request_.options.cancel.cancelled() || shutdown_->load(std::memory_order_relaxed);
  }

  // Called before each prompt chunk; the first call starts the prompt's clock.
  void prompt_started() {
    if (t_start_ == Clock::time_point{}) t_start_ = Clock::now();
  }
  // The first n prompt tokens came from the prefix cache (GenerateResult::cached_prompt_tokens).
  void set_cached_prompt(int64_t n) { result_.cached_prompt_tokens = n; }
  // With GenerateOptions::prompt_logits: the logits of prompt position pos.
  void store_prompt_logits(int64_t pos, const float* logits);
  void prompt_done() { t_prompt_ = Clock::now(); }
  // logits: [n_vocab] for the last evaluated position (with ignore_eos, the end-of-generation
  // tokens' logits are set to -inf in place); n_past: positions now in the KV cache. May call the
  // request's callback; what it throws leaves as CallbackError. Throws bitnet::Error when a logit
  // is NaN or infinite (the model's arithmetic overflowed), naming the position.
  std::optional<int32_t> accept(float* logits, int64_t n_past);
  // Ends the request: the result for its future. reason is only used when accept() has not
  // already stopped it (cancellation before the prompt). May call the callback (held-back text).
  GenerateResult finish(std::optional<StopReason> reason = std::nullopt);
  // Time-stamp-counter ticks (core/perf-monitor.h) the last accept() spent detokenizing.
  int64_t detokenize_ticks() const { return detok_ticks_; }

 private:
  void emit(std::string_view piece);

  const model::Tokenizer& tok_;
  Request& request_;
  int64_t n_ctx_;
  const std::atomic<bool>* shutdown_;
  engine::Sampler sampler_;
  engine::StopMatcher stop_;
  model::StreamingDetokenizer detok_;
  LogprobCalculator logprob_;
  std::vector<TokenLogprob> top_;  // [top_logprobs] of the current token
  std::vector<int32_t> history_;   // prompt then generated tokens (repetition penalty)
  GenerateResult result_;
  std::optional<StopReason> stopped_;
  bool callback_refused_ = false;
  int64_t detok_ticks_ = 0;
  Clock::time_point t_start_, t_prompt_, t_first_;
};

}  // namespace bitnet::engine
