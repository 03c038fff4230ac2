// Workloads of the batched session (model/session.h) for throughput benchmarks.
//
// BatchedDecode: `batch` sequences decoding together, one token each per step (M = batch rows
// through every linear and the LM head, every item asking for logits). Each sequence is prefilled
// with `prompt` tokens, untimed; step() then times one Session::step. The next token of
// each sequence is the argmax of its logits (greedy), computed after the timed call. After `window`
// steps the sequences are reset and prefilled again (untimed), so timed steps attend over
// prompt .. prompt + window - 1 cached positions (mean prompt + (window - 1) / 2).
//
// BatchedPrefill: one sequence, `rows` prompt tokens in one step from an empty cache (M = rows
// through the GEMM path; logits for the last row only, as a prompt is read). step() times it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread-pool.h"
#include "model/session.h"

namespace bitnet::bench {

class BatchedDecode {
 public:
  BatchedDecode(const model::ModelWeights& weights, ThreadPool& pool, int64_t batch,
                int64_t prompt = 16, int64_t window = 64, model::KvType kv = model::KvType::F16);
  double step();  // seconds of one timed decode step of all sequences
  int64_t batch() const { return batch_; }

 private:
  void prefill();

  int64_t batch_, prompt_, window_;
  model::Session session_;
  std::vector<int> slot_;
  std::vector<int32_t> next_;  // [batch] the token each sequence evaluates next
  std::vector<model::BatchItem> items_;
  std::vector<float> logits_;  // [max_batch_tokens][n_vocab]
  int64_t steps_in_window_ = 0;
};

class BatchedPrefill {
 public:
  BatchedPrefill(const model::ModelWeights& weights, ThreadPool& pool, int64_t rows,
                 model::KvType kv = model::KvType::F16);
  double step();  // seconds of one timed step of `rows` prompt tokens
  int64_t rows() const { return static_cast<int64_t>(items_.size()); }

 private:
  model::Session session_;
  int slot_;
  std::vector<model::BatchItem> items_;
  std::vector<float> logits_;  // [n_vocab]
};

}  // namespace bitnet::bench
