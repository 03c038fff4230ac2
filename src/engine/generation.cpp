#include "engine/generation.h"

#include <string>

namespace bitnet::engine {
namespace {

double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

Generation::Generation(const model::Tokenizer& tokenizer, Request& request, int64_t n_ctx,
                       const std::atomic<bool>* shutdown)
    : tok_(tokenizer),
      request_(request),
      n_ctx_(n_ctx),
      shutdown_(shutdown),
      sampler_(request.sampling, tokenizer.n_vocab()),
      stop_(request.options.stop),
      detok_(tokenizer, false, false),
      history_(request.prompt) {
  history_.reserve(request.prompt.size() + static_cast<size_t>(request.options.max_tokens));
  result_.tokens.reserve(static_cast<size_t>(request.options.max_tokens));
  result_.prompt_tokens = static_cast<int64_t>(request.prompt.size());
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

std::optional<int32_t> Generation::accept(const float* logits, int64_t n_past) {
  const int64_t generated = static_cast<int64_t>(result_.tokens.size());
  if (cancelled()) {
    stopped_ = StopReason::Cancelled;
    return std::nullopt;
  }
  if (generated >= request_.options.max_tokens) {
    stopped_ = StopReason::MaxTokens;
    return std::nullopt;
  }
  const int32_t next = sampler_.sample(logits, history_);
  if (generated == 0) t_first_ = Clock::now();
  if (tok_.is_eog(next)) {
    stopped_ = StopReason::EndOfGeneration;
    return std::nullopt;
  }
  history_.push_back(next);
  result_.tokens.push_back(next);
  const model::StopMatcher::Step step = stop_.feed(detok_.push(next));
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
    if (prompt_ms > 0)
      t.prompt_tokens_per_second = 1000.0 * static_cast<double>(result_.prompt_tokens) / prompt_ms;
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
