#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <utility>

namespace bitnet::engine {
namespace {

// Always-on invariant check for the per-token path, where throwing is not allowed.
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "bitnet: Sampler::sample: %s\n", what);
  std::abort();
}

// Named as the user sets it (GenerateOptions, the CLI flags), the value printed as given.
[[noreturn]] void bad_param(const char* name, const char* expected, double got) {
  char value[32];
  std::snprintf(value, sizeof value, "%g", got);
  throw std::invalid_argument(std::string("sampling option ") + name + " must be " + expected +
                              ", found " + value);
}

void validate(const SamplerParams& p, int32_t n_vocab) {
  if (!(std::isfinite(p.temperature) && p.temperature >= 0.0f))
    bad_param("temperature", ">= 0 (0 = greedy)", p.temperature);
  if (p.top_k < 0) bad_param("top_k", ">= 0 (0 = off)", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad_param("top_p", "in (0, 1] (1 = off)", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) bad_param("min_p", "in [0, 1] (0 = off)", p.min_p);
  if (!(std::isfinite(p.repeat_penalty) && p.repeat_penalty > 0.0f))
    bad_param("repeat_penalty", "> 0 (1 = off)", p.repeat_penalty);
  if (!std::isfinite(p.presence_penalty))
    bad_param("presence_penalty", "finite (0 = off)", p.presence_penalty);
  if (!std::isfinite(p.frequency_penalty))
    bad_param("frequency_penalty", "finite (0 = off)", p.frequency_penalty);
  if (p.repeat_last_n < -1)
    bad_param("repeat_last_n", ">= -1 (0 = off, -1 = whole history)", p.repeat_last_n);
  if (n_vocab <= 0)
    throw std::invalid_argument("Sampler: n_vocab must be > 0, got " + std::to_string(n_vocab));
}

// Top 53 bits of one 64-bit draw as a double in [0, 1): exact and the same on every platform,
// unlike std::uniform_real_distribution whose algorithm each standard library chooses.
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace

Sampler::Sampler(SamplerParams params, int32_t n_vocab)
    : params_(params), n_vocab_(n_vocab), rng_(params.seed) {
  validate(params_, n_vocab_);
  const auto n = static_cast<size_t>(n_vocab_);
  candidates_.resize(n);
  probs_.resize(n);
  counts_.assign(n, 0);
}

int32_t Sampler::sample(const float* logits, std::span<const int32_t> history) {
  const auto n = static_cast<size_t>(n_vocab_);
  const bool penalty = (params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                        params_.frequency_penalty != 0.0f) &&
                       params_.repeat_last_n != 0;
  // Plain greedy: one pass over the logits, no candidate array; the same token as step 2 below
  // (the first maximum, NaN refused).
  if (params_.temperature == 0.0f && !penalty) {
    size_t best = 0;
    bool nan = std::isnan(logits[0]);
    for (size_t i = 1; i < n; ++i) {
      nan |= std::isnan(logits[i]);
      if (logits[i] > logits[best]) best = i;
    }
    check(!nan, "NaN logit");
    return static_cast<int32_t>(best);
  }
  for (size_t i = 0; i < n; ++i) {
    check(!std::isnan(logits[i]), "NaN logit");
    candidates_[i] = {logits[i], static_cast<int32_t>(i)};
  }

  // 1. Penalties, once per distinct token in the window (as llama.cpp): count the occurrences,
  // then apply each token's penalties at its first visit and zero its count for the next call.
  if (penalty) {
    const size_t window =
        params_.repeat_last_n < 0
            ? history.size()
            : std::min(history.size(), static_cast<size_t>(params_.repeat_last_n));
    const auto recent = history.last(window);
    for (const int32_t t : recent) {
      check(t >= 0 && t < n_vocab_, "history token out of range");
      ++counts_[static_cast<size_t>(t)];
    }
    for (const int32_t t : recent) {
      const auto u = static_cast<size_t>(t);
      const uint32_t c = counts_[u];
      if (c == 0) continue;
      counts_[u] = 0;
      float& l = candidates_[u].logit;
      l = l > 0.0f ? l / params_.repeat_penalty : l * params_.repeat_penalty;
      l -= static_cast<float>(c) * params_.frequency_penalty + params_.presence_penalty;
    }
  }

  // 2. Greedy: the first maximum is the lowest id among ties.
  if (params_.temperature == 0.0f) {
    size_t best = 0;
    for (size_t i = 1; i < n; ++i)
      if (candidates_[i].logit > candidates_[best].logit) best = i;
    return candidates_[best].id;
  }

  const auto before = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  const auto first = candidates_.begin();
  size_t m = n;
  bool sorted = false;

  // 3. Top-k.
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < m) {
    const auto k = static_cast<size_t>(params_.top_k);
    std::partial_sort(first, first + static_cast<std::ptrdiff_t>(k), candidates_.end(), before);
    m = k;
    sorted = true;
  }

  double max_logit = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < m; ++i) max_logit = std::max(max_logit, double{candidates_[i].logit});
  check(max_logit > -std::numeric_limits<double>::infinity(), "every logit is -inf");

  // 4. Top-p over the softmax at temperature 1 of the survivors (unnormalised: exp(l - max)).
  if (params_.top_p < 1.0f) {
    if (!sorted) std::sort(first, first + static_cast<std::ptrdiff_t>(m), before);
    sorted = true;
    double sum = 0.0;
    for (size_t i = 0; i < m; ++i) {
      probs_[i] = std::exp(double{candidates_[i].logit} - max_logit);
      sum += probs_[i];
    }
    const double target = double{params_.top_p} * sum;
    double cum = 0.0;
    for (size_t i = 0; i < m; ++i) {
      cum += probs_[i];
      if (cum >= target) {
        m = i + 1;
        break;
      }
    }
  }

  // 5. Min-p: p_i / p_max = exp(l_i - max) >= min_p. Compaction keeps the order.
  if (params_.min_p > 0.0f) {
    const double min_logit = max_logit + std::log(double{params_.min_p});
    size_t kept = 0;
    for (size_t i = 0; i < m; ++i)
      if (double{candidates_[i].logit} >= min_logit) candidates_[kept++] = candidates_[i];
    m = kept;  // the maximum always survives
  }

  // 6-7. Temperature, then one draw from the softmax of the survivors.
  const double inv_t = 1.0 / double{params_.temperature};
  double sum = 0.0;
  for (size_t i = 0; i < m; ++i) {
    probs_[i] = std::exp((double{candidates_[i].logit} - max_logit) * inv_t);
    sum += probs_[i];
  }
  const double target = uniform01(rng_) * sum;
  double cum = 0.0;
  size_t last_positive = 0;
  for (size_t i = 0; i < m; ++i) {
    if (probs_[i] <= 0.0) continue;
    cum += probs_[i];
    last_positive = i;
    if (cum > target) return candidates_[i].id;
  }
  return candidates_[last_positive].id;  // target within rounding of sum
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  size_t longest = 0;
  for (auto& s : stops) {
    if (s.empty()) continue;
    longest = std::max(longest, s.size());
    stops_.push_back(std::move(s));
  }
  buffer_.reserve(2 * longest + 256);
}

StopMatcher::Step StopMatcher::feed(std::string_view piece) {
  if (stopped_) return {{}, true};
  buffer_.erase(0, handed_out_);
  buffer_.append(piece);
  const std::string_view text = buffer_;

  // The held-back bytes contain no complete stop string, so every match found ends in the new
  // piece. Stop at the one that completed first (smallest end; at equal ends, the longest), which
  // makes the result independent of how the text was cut into pieces.
  size_t match = std::string_view::npos;
  size_t match_end = std::string_view::npos;
  for (const auto& s : stops_) {
    const size_t pos = text.find(s);
    if (pos == std::string_view::npos) continue;
    const size_t end = pos + s.size();
    if (end < match_end || (end == match_end && pos < match)) {
      match = pos;
      match_end = end;
    }
  }
  if (match != std::string_view::npos) {
    stopped_ = true;
    handed_out_ = match;
    return {text.substr(0, match), true};
  }

  // Hold back the longest suffix that is a proper prefix of some stop string: any later match
  // must start inside it.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k) {
      if (text.ends_with(std::string_view(s).substr(0, k))) {
        hold = k;
        break;
      }
    }
  }
  handed_out_ = text.size() - hold;
  return {text.substr(0, handed_out_), false};
}

std::string_view StopMatcher::flush() {
  if (stopped_) return {};
  buffer_.erase(0, handed_out_);
  handed_out_ = buffer_.size();
  return buffer_;
}

}  // namespace bitnet::engine
