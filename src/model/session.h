// The forward pass of BitNet b1.58 (bitnet-b158.h), one driver for every batch size: many
// sequences, each with its own KV cache slot and position, advance together in one step, and a
// single sequence is one slot of it.
//
// One step takes a list of items {slot, token, wants_logits}: decode items (one token of a
// sequence) and prefill chunks (several consecutive tokens of one sequence) may be mixed. Each
// item's position is its sequence's n_past plus the number of earlier items of the same sequence
// in the step. The step runs the execution plan's operations (execution-plan.h) in order, the layer
// block once per layer: every linear (qkv, o, gate_up, down) once for all items (M = item count),
// so the ternary weights are streamed once per step instead of once per sequence; attention is per
// item against its own sequence's cache, causal within that sequence's items of the step.
//
// Row-independence: every operation computes each row from that row alone (bitnet-b158-ops.h,
// the ternary matmul too), so a sequence's logits are bit-identical whatever else shares its steps
// and however its tokens are cut into steps.
//
// Memory: fixed at construction. One arena for the activations of max_batch_tokens rows and every
// per-thread scratch, laid out by the plan, and one KV page pool (kv-cache.h) shared by all slots:
// a sequence holds pages for the positions it has stored, and may reserve pages for the positions
// it will need when it is added, so a scheduler that admits sequences by their reservations never
// sees a step fail for want of pages. step() does no heap allocation. Not thread-safe: one caller
// at a time (the pool runs one job at a time).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/aligned-buffer.h"
#include "core/perf-monitor.h"
#include "core/thread-pool.h"
#include "model/bitnet-b158-ops.h"
#include "model/execution-plan.h"
#include "model/kv-cache.h"
#include "model/model-weights.h"
#include "model/perf-ops.h"

namespace bitnet::model {

struct SessionOptions {
  int64_t max_sequences = 1;
  int64_t n_ctx = 0;  // positions per sequence; 0: the model's context_length
  KvType kv = KvType::F16;
  int64_t max_batch_tokens = 256;                       // items per step
  int64_t kv_page_size = KvPagePool::kDefaultPageSize;  // positions per page, a power of 2
  int64_t kv_pages = 0;  // pages in the pool; 0: every slot's whole context (never short)
  // false: the validation mode of bitnet-b158.h (exact float BitLinear, no int8 activations).
  bool quantize_activations = true;
  // The plan's norm_quant / act_norm_quant fusions (execution-plan.h); false runs the unfused
  // operations. Same results.
  bool fused_norm_quant = true;
  // The plan's split_linears rewrite, for benchmarks only (what the load-time qkv and gate_up
  // fusions gain): needs quantize_activations and fused_norm_quant off. Same results.
  bool split_linears = false;
};

struct BatchItem {
  int32_t slot = 0;  // from add_sequence()
  int32_t token = 0;
  bool wants_logits = false;
};

class Session {
 public:
  // Allocates everything; throws std::invalid_argument for a non-positive size or an invalid
  // plan (split_linears with the other options).
  Session(const ModelWeights& weights, const SessionOptions& options, ThreadPool& pool);

  // A free slot with n_past = 0, or -1 when all max_sequences slots are in use or the pool cannot
  // reserve pages for reserve_positions (capped at n_ctx): the caller queues.
  int add_sequence(int64_t reserve_positions = 0);
  // Frees the slot for a later add_sequence(). Throws std::invalid_argument for an unknown slot.
  void remove_sequence(int slot);
  // Forgets the slot's tokens (n_past = 0, its pages back to the pool) and keeps the slot and its
  // reservation.
  void reset_sequence(int slot);
  // Keeps the slot's first min(n, n_past) positions and gives the pages past them back: a later
  // step continues from position n (a cached prefix reused by the next request).
  void truncate_sequence(int slot, int64_t n);
  // Replaces the slot's reservation by one for `positions` (capped at n_ctx; the pages it holds
  // count towards it); 0 gives the reservation back. False, and nothing changed, when the pool
  // cannot promise the pages.
  bool set_reservation(int slot, int64_t positions);

  // One forward pass over all items. logits receives one [n_vocab] row per item whose
  // wants_logits is set, in item order (may be null when no item asks); no items: nothing to do.
  // Everything is checked before anything is evaluated, and a failed step changes nothing:
  // std::invalid_argument for more than max_batch_tokens items, a slot that is not in use, a token
  // outside the vocabulary or missing logits storage; std::out_of_range when a sequence's context
  // would overflow or the pool lacks the pages the step needs beyond the reservations.
  void step(std::span<const BatchItem> items, float* logits);

  // One sequence's tokens through as many steps of max_batch_tokens as they take: logits of every
  // token ([n][n_vocab]) with all_logits, else of the last ([n_vocab]; null: none). Throws as
  // step().
  void eval(int slot, std::span<const int32_t> tokens, float* logits, bool all_logits);

  int64_t n_past(int slot) const;      // throws std::invalid_argument for an unknown slot
  int64_t pages_held(int slot) const;  // KV pages the slot's positions occupy
  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_vocab() const { return cfg_.n_vocab; }
  int64_t max_sequences() const { return opt_.max_sequences; }
  int64_t max_batch_tokens() const { return opt_.max_batch_tokens; }
  int64_t active_sequences() const { return n_active_; }
  int64_t positions_stored() const;                     // sum of n_past over the slots in use
  size_t kv_bytes() const { return kv_pool_.bytes(); }  // the whole page pool
  const KvPagePool& kv_pool() const { return kv_pool_; }
  // The reservation add_sequence() would need for `positions` (pages), and whether the pool could
  // ever hold it (capped at n_ctx).
  int64_t pages_for(int64_t positions) const;
  // Bytes of the activation arena and, in the validation mode, the dense weights.
  size_t activation_bytes() const;
  const ExecutionPlan& plan() const { return plan_; }
  // Times every operation of step() into m (null: off); each step() closes one series row.
  void set_monitor(PerfMonitor* m) { mon_ = m; }

 private:
  bool in_use(int slot) const;
  void check_slot(int slot, const std::string& what) const;  // throws naming `what`
  float* buffer(PlanBuffer b) { return reinterpret_cast<float*>(arena_.data() + plan_.offset(b)); }
  void run(const PlanOp& op, int64_t layer, int64_t n);  // one operation over n rows
  void attention(int64_t layer, int64_t n);
  const std::vector<float>& norm_weights(NormId id, int64_t layer) const;

  const ModelWeights& w_;
  const ModelConfig& cfg_;
  SessionOptions opt_;
  ThreadPool& pool_;
  const kernels::KernelTable& kt_;
  int64_t n_ctx_;
  KvPagePool kv_pool_;
  std::vector<KvCache> kv_;          // [max_sequences] views on kv_pool_
  std::vector<int64_t> reserved_;    // [max_sequences] positions reserved by add_sequence
  std::vector<int64_t> n_past_;      // [max_sequences]
  std::vector<uint8_t> active_;      // [max_sequences]
  std::vector<int64_t> step_count_;  // [max_sequences] items per slot in the step being checked
  int64_t n_active_ = 0;
  // Per item of the current step: its slot and position.
  std::vector<int32_t> item_slot_;
  std::vector<int64_t> item_pos_;
  std::vector<BatchItem> eval_items_;  // eval()'s items, [max_batch_tokens] reserved
  ExecutionPlan plan_;
  AlignedBuffer<uint8_t> arena_;  // every buffer of the plan, by liveness
  ops::Q8Scratch q8_;             // views into the arena
  ops::DenseLinears dense_;       // validation mode only
  std::vector<double> inv_freq_;  // base^(-2i/rope_dim)
  PerfMonitor* mon_ = nullptr;
};

}  // namespace bitnet::model
