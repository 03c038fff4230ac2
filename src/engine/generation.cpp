#include "engine/generation.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/perf-monitor.h"

namespace bitnet::engine {
namespace {

double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Branch-free, so it vectorizes: one pass over the row, a few microseconds on a 128K vocabulary.
bool all_finite(const float* x, int32_t n) {
  int bad = 0;
  for (int32_t i = 0; i < n; ++i) bad |= !(std::fabs(x[i]) <= std::numeric_limits<float>::max());
  return bad == 0;
}

}  // namespace

engine::SamplerParams sampler_params(const GenerateOptions& o) {
  engine::SamplerParams sp;
  sp.temperature = o.temperature;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.min_p = o.min_p;
  sp.repeat_penalty = o.repeat_penalty;
  sp.repeat_last_n = o.repeat_last_n;
  sp.presence_penalty = o.presence_penalty;
  sp.frequency_penalty = o.frequency_penalty;
  sp.seed = o.seed;
  return sp;
}

void validate_options(const GenerateOptions& o, int32_t n_vocab) {
  auto bad = [](const std::string& what) { throw Error("GenerateOptions: " + what); };
  if (o.max_tokens < 0) bad("max_tokens must be >= 0, found " + std::to_string(o.max_tokens));
  if (o.top_logprobs < 0 || o.top_logprobs > 20)
    bad("top_logprobs must be in [0, 20], found " + std::to_string(o.top_logprobs));
  if (o.top_logprobs > 0 && !o.logprobs) bad("top_logprobs > 0 needs logprobs");
  try {
    engine::Sampler check(sampler_params(o), n_vocab);
  } catch (const std::exception& e) {
    bad(e.what());
  }
}

LogprobCalculator::LogprobCalculator(int32_t n_vocab, int32_t top_n)
    : n_vocab_(n_vocab), top_n_(std::min(top_n, n_vocab)) {}

float LogprobCalculator::compute(const float* logits, int32_t token, TokenLogprob* top) {
  const auto n = static_cast<size_t>(n_vocab_);
  float max = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double log_z = static_cast<double>(max) + std::log(sum);
  auto logprob = [&](size_t i) { return static_cast<float>(logits[i] - log_z); };
  // Insertion into a sorted array of top_n: ids are visited in ascending order, so an equal logit
  // never displaces an earlier id.
  int32_t kept = 0;
  for (size_t i = 0; i < n && top_n_ > 0; ++i) {
    const float l = logits[i];
    if (kept == top_n_ && !(l > logits[top[kept - 1].token])) continue;
    int32_t j = kept < top_n_ ? kept++ : top_n_ - 1;
    for (; j > 0 && l > logits[top[j - 1].token]; --j) top[j] = top[j - 1];
    top[j] = {static_cast<int32_t>(i), 0.0f};
  }
  for (int32_t j = 0; j < kept; ++j) top[j].logprob = logprob(static_cast<size_t>(top[j].token));
  return logprob(static_cast<size_t>(token));
}

Generation::Generation(const model::Tokenizer& tokenizer, Request& request, int64_t n_ctx,
                       const std::atomic<bool>* shutdown)
    : tok_(tokenizer),
      request_(request),
      n_ctx_(n_ctx),
      shutdown_(shutdown),
      sampler_(request.sampling, tokenizer.n_vocab()),
      stop_(request.options.stop),
      detok_(tokenizer, false, false),
      logprob_(tokenizer.n_vocab(), request.options.top_logprobs),
      top_(static_cast<size_t>(request.options.top_logprobs)),
      history_(request.prompt) {
  // At most the context's positions are generated, whatever max_tokens says.
  const auto most = static_cast<size_t>(std::min(request.options.max_tokens, n_ctx));
  history_.reserve(request.prompt.size() + most);
  result_.tokens.reserve(most);
  if (request.options.logprobs) {
    result_.logprobs.reserve(most);
    result_.top_logprobs.reserve(most * top_.size());
  }
  result_.prompt_tokens = static_cast<int64_t>(request.prompt.size());
  const auto n_vocab = static_cast<size_t>(tokenizer.n_vocab());
  if (request.options.prompt_logits) result_.prompt_logits.resize(request.prompt.size() * n_vocab);
  if (request.options.token_logits) result_.token_logits.reserve(most * n_vocab);
}

void Generation::store_prompt_logits(int64_t pos, const float* logits) {
  const auto n_vocab = static_cast<size_t>(tok_.n_vocab());
  std::memcpy(result_.prompt_logits.data() + static_cast<size_t>(pos) * n_vocab, logits,
              n_vocab * sizeof(float));
}

void Generation::emit(std::string_view piece) {
  if (piece.empty()) return;
  result_.text.append(piece);
  if (!request_.on_piece) return;
  bool more = true;
  try {
    more = request_.on_piece(piece);
  } catch (...) {
    throw CallbackError{std::current_exception()};
  }
  if (!more) callback_refused_ = true;
}

std::optional<int32_t> Generation::accept(float* logits, int64_t n_past) {
  const int64_t generated = static_cast<int64_t>(result_.tokens.size());
  if (cancelled()) {
    stopped_ = StopReason::Cancelled;
    return std::nullopt;
  }
  if (generated >= request_.options.max_tokens) {
    stopped_ = StopReason::MaxTokens;
    return std::nullopt;
  }
  const int32_t n_vocab = tok_.n_vocab();
  if (!all_finite(logits, n_vocab)) {
    int32_t v = 0;
    while (v < n_vocab && std::isfinite(logits[v])) ++v;
    throw Error("the model produced a non-finite logit (" +
                std::string(std::isnan(logits[v]) ? "NaN" : "infinity") + ", token id " +
                std::to_string(v) + ") at position " + std::to_string(n_past - 1) +
                " (generated token " + std::to_string(generated) +
                "): its weights or activations overflow");
  }
  if (request_.options.token_logits) {
    result_.token_logits.insert(result_.token_logits.end(), logits, logits + n_vocab);
  }
  if (request_.options.ignore_eos) {
    for (const int32_t id : tok_.eog_tokens()) logits[id] = -std::numeric_limits<float>::infinity();
  }
  const int32_t next = sampler_.sample(logits, history_);
  if (generated == 0) t_first_ = Clock::now();
  if (tok_.is_eog(next)) {
    stopped_ = StopReason::EndOfGeneration;
    return std::nullopt;
  }
  history_.push_back(next);
  result_.tokens.push_back(next);
  const GenerateOptions& o = request_.options;
  if (o.logprobs || o.on_token) {
    TokenEvent event;
    event.token = next;
    event.index = generated;
    if (o.logprobs) {
      event.logprob = logprob_.compute(logits, next, top_.data());
      event.top = top_;
      result_.logprobs.push_back({next, event.logprob});
      result_.top_logprobs.insert(result_.top_logprobs.end(), top_.begin(), top_.end());
    }
    if (o.on_token) {
      try {
        o.on_token(event);
      } catch (...) {
        throw CallbackError{std::current_exception()};
      }
    }
  }
  const int64_t t0 = perf_ticks();
  const engine::StopMatcher::Step step = stop_.feed(detok_.push(next));
  detok_ticks_ = perf_ticks() - t0;
  emit(step.emit);
  if (callback_refused_) {
    stopped_ = StopReason::Callback;
  } else if (step.stopped) {
    stopped_ = StopReason::StopString;
  } else if (generated + 1 >= request_.options.max_tokens) {
    stopped_ = StopReason::MaxTokens;
  } else if (n_past >= n_ctx_) {
    stopped_ = StopReason::ContextFull;
  }
  if (stopped_) return std::nullopt;
  return next;
}

GenerateResult Generation::finish(std::optional<StopReason> reason) {
  const Clock::time_point t_end = Clock::now();
  if (!stopped_) stopped_ = reason.value_or(StopReason::Cancelled);
  // The held-back text (an incomplete character, a prefix of a stop string) is released unless
  // the callback asked to stop or a stop string matched.
  if (!callback_refused_ && !stop_.stopped()) {
    emit(stop_.feed(detok_.flush()).emit);
    if (!callback_refused_) emit(stop_.flush());
  }
  result_.stop_reason = *stopped_;
  GenerateTimings& t = result_.timings;
  if (t_start_ != Clock::time_point{}) {
    t.queue_ms = ms(request_.submitted, t_start_);
    const double prompt_ms = ms(t_start_, t_prompt_);
    // The tokens evaluated: those from the prefix cache took no time.
    const auto evaluated = result_.prompt_tokens - result_.cached_prompt_tokens;
    if (prompt_ms > 0)
      t.prompt_tokens_per_second = 1000.0 * static_cast<double>(evaluated) / prompt_ms;
  }
  const size_t n = result_.tokens.size();
  if (t_first_ != Clock::time_point{}) {
    t.time_to_first_token_ms = ms(request_.submitted, t_first_);
    const double gen_ms = ms(t_first_, t_end);
    if (n > 1 && gen_ms > 0)
      t.generation_tokens_per_second = 1000.0 * static_cast<double>(n - 1) / gen_ms;
  }
  return std::move(result_);
}

}  // namespace bitnet::engine
