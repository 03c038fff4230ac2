#include "batched-decode.h"

#include <algorithm>
#include <chrono>

namespace bitnet::bench {
namespace {

using Clock = std::chrono::steady_clock;

int32_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

// A fixed pseudo-random prompt token: sequence s, position i.
int32_t prompt_token(int64_t s, int64_t i, int64_t n_vocab) {
  return static_cast<int32_t>((s * 7919 + i * 37 + 11) % n_vocab);
}

model::SessionOptions decode_options(int64_t batch, int64_t prompt, int64_t window,
                                     model::KvType kv) {
  model::SessionOptions o;
  o.max_sequences = batch;
  o.n_ctx = prompt + window;
  o.kv = kv;
  o.max_batch_tokens = std::max<int64_t>(batch, 64);  // prefill packs prompts into such steps
  return o;
}

template <class F>
double timed(F&& f) {
  const Clock::time_point t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

BatchedDecode::BatchedDecode(const model::ModelWeights& weights, ThreadPool& pool, int64_t batch,
                             int64_t prompt, int64_t window, model::KvType kv)
    : batch_(batch),
      prompt_(prompt),
      window_(window),
      session_(weights, decode_options(batch, prompt, window, kv), pool),
      next_(static_cast<size_t>(batch)),
      logits_(static_cast<size_t>(session_.max_batch_tokens() * session_.n_vocab())) {
  for (int64_t s = 0; s < batch; ++s) slot_.push_back(session_.add_sequence());
  items_.reserve(static_cast<size_t>(session_.max_batch_tokens()));
  prefill();
}

void BatchedDecode::prefill() {
  const int64_t V = session_.n_vocab(), chunk = session_.max_batch_tokens();
  std::vector<model::BatchItem> all;
  for (int64_t s = 0; s < batch_; ++s) {
    session_.reset_sequence(slot_[static_cast<size_t>(s)]);
    for (int64_t i = 0; i < prompt_; ++i)
      all.push_back({slot_[static_cast<size_t>(s)], prompt_token(s, i, V), i == prompt_ - 1});
  }
  int64_t seq = 0;
  for (size_t start = 0; start < all.size(); start += static_cast<size_t>(chunk)) {
    const size_t n = std::min(all.size() - start, static_cast<size_t>(chunk));
    session_.step(std::span<const model::BatchItem>(all.data() + start, n), logits_.data());
    int64_t row = 0;
    for (size_t i = start; i < start + n; ++i) {
      if (all[i].wants_logits) next_[static_cast<size_t>(seq++)] = argmax(&logits_[row++ * V], V);
    }
  }
  steps_in_window_ = 0;
}

double BatchedDecode::step() {
  if (steps_in_window_ == window_) prefill();
  items_.clear();
  for (int64_t s = 0; s < batch_; ++s)
    items_.push_back({slot_[static_cast<size_t>(s)], next_[static_cast<size_t>(s)], true});
  const double seconds = timed([&] { session_.step(items_, logits_.data()); });
  const int64_t V = session_.n_vocab();
  for (int64_t s = 0; s < batch_; ++s)
    next_[static_cast<size_t>(s)] = argmax(&logits_[static_cast<size_t>(s * V)], V);
  ++steps_in_window_;
  return seconds;
}

BatchedPrefill::BatchedPrefill(const model::ModelWeights& weights, ThreadPool& pool, int64_t rows,
                               model::KvType kv)
    : session_(weights, {.max_sequences = 1, .n_ctx = rows, .kv = kv, .max_batch_tokens = rows},
               pool),
      slot_(session_.add_sequence()),
      logits_(static_cast<size_t>(session_.n_vocab())) {
  for (int64_t i = 0; i < rows; ++i)
    items_.push_back({slot_, prompt_token(0, i, session_.n_vocab()), i == rows - 1});
}

double BatchedPrefill::step() {
  session_.reset_sequence(slot_);
  return timed([&] { session_.step(items_, logits_.data()); });
}

}  // namespace bitnet::bench
