// The Engine's scheduler: a FIFO of validated requests served by continuous batching over one
// Session (model/session.h). Each step, every admitted request contributes its next
// token, or a chunk of its prompt while the step has room (max_batch_tokens); requests are admitted
// in FIFO order while a slot is free (max_concurrent_requests) and the KV page pool can reserve
// their worst case (prompt + max_tokens), so none fails mid-way for want of memory.
//
// The batch is driven by the scheduler's own thread, or by a generate() caller while no one else
// drives it (saving two thread hand-overs per blocking request); whoever drives holds driver_mu_.
//
// Prefix cache (EngineConfig::prefix_cache): a finished request's slot is parked with the tokens
// its KV pages hold. A new request whose prompt shares a prefix with a parked slot takes that slot,
// truncated to the common prefix, and evaluates only the rest. Parked slots are given back, least
// recently used first, whenever a request needs a slot or pages. The batched step computes every
// row from its own inputs, so the results do not depend on what came from the cache.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bitnet/engine.h"
#include "core/perf-monitor.h"
#include "core/thread-pool.h"
#include "engine/engine-config.h"
#include "engine/generation.h"
#include "model/model-weights.h"
#include "model/perf-ops.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::engine {

// An exception from an internal layer as the bitnet::Error the public API throws, prefixed with
// what was being done (a bitnet::Error passes unchanged).
std::exception_ptr as_error(std::exception_ptr e, const std::string& context);

// What stats() reads of the scheduler.
struct SchedulerStats {
  uint64_t kv_pool_bytes = 0, kv_page_bytes = 0;
  int64_t kv_pages_total = 0, kv_pages_in_use = 0, kv_pages_peak = 0, kv_pages_cached = 0;
  int64_t positions_stored = 0;  // by running requests
  uint64_t activation_bytes = 0;
  uint64_t steps = 0, step_tokens = 0;
  uint64_t completed = 0, pending = 0, running = 0, queued = 0;
  uint64_t prefix_hits = 0, prefix_tokens = 0;
};

class Scheduler {
 public:
  // Starts the scheduler thread. The session (KV pool, activations) is allocated with the first
  // request.
  Scheduler(const model::ModelWeights& weights, const model::Tokenizer& tokenizer,
            const ResolvedConfig& config, bool prefix_cache);
  // Pending requests complete as cancelled; waits for the running ones to stop.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request (its future or completion callback receives the result). Throws
  // bitnet::Error when the scheduler is stopping.
  void enqueue(std::unique_ptr<Request> request);
  // Queues the request and waits for its result, driving the batch on this thread when no other
  // thread does.
  GenerateResult run(std::unique_ptr<Request> request);

  SchedulerStats stats() const;
  std::string profile_json(bool series) const;
  // Adds to the profile from outside the steps (tokenization by the request builder).
  void record(model::PerfOp op, int64_t ticks);

 private:
  // A request admitted to the batch.
  struct Running {
    std::unique_ptr<Request> request;
    std::optional<Generation> gen;
    int slot = -1;
    size_t fed = 0;     // prompt tokens in the KV cache (evaluated or reused)
    int32_t next = -1;  // the token to evaluate next, once decoding
    bool decoding = false;
    bool in_step = false;         // has an item in the current step
    std::vector<int32_t> cached;  // the tokens the slot's KV pages hold, in order
  };
  // A finished request's slot, kept for the prefix cache.
  struct Parked {
    int slot = -1;
    std::vector<int32_t> tokens;  // what its KV pages hold
    uint64_t used = 0;            // admission counter when parked (least recently used first)
  };
  // Where a row of the step's logits goes.
  struct LogitsRow {
    Running* owner = nullptr;
    int64_t prompt_pos = -1;  // >= 0: a prompt position (prompt_logits); the last one samples too
    bool samples = false;
  };

  void main_loop();
  void ensure_session();
  void admit();
  // A slot for the queue's front request (reusing a parked one when it shares a prefix), or
  // nullopt when none can be had now. Gives up parked slots as needed.
  std::optional<std::pair<int, size_t>> take_slot(const Request& request);
  void step();
  void deliver(Request& request, GenerateResult* result, std::exception_ptr error);
  void finish(Running& r, std::optional<StopReason> reason);
  void fail(Running& r, std::exception_ptr error);
  void release(Running& r);  // parks or frees the slot

  const model::ModelWeights& weights_;
  const model::Tokenizer& tok_;
  const ResolvedConfig& config_;
  const bool prefix_cache_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Request>> queue_;  // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_
  std::atomic<bool> shutdown_{false};           // read by running requests
  std::atomic<uint64_t> completed_{0}, pending_{0}, running_n_{0};
  std::atomic<int64_t> queued_{0};  // queue_.size(), readable without mu_ (the idle poll)

  // Owned by the driving thread; read by stats() and profile_json() under stats_mu_.
  mutable std::mutex stats_mu_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<model::Session> session_;
  PerfMonitor monitor_{model::perf_op_names()};
  uint64_t steps_ = 0, step_tokens_ = 0, prefix_hits_ = 0, prefix_tokens_ = 0;

  // The batch and its scratch, guarded by driver_mu_ (driver_ names its holder, so a callback's
  // thread can tell it is driving).
  std::mutex driver_mu_;
  std::atomic<std::thread::id> driver_{};
  std::vector<std::unique_ptr<Running>> batch_;
  std::vector<Parked> parked_;  // also read by stats() under stats_mu_
  uint64_t admissions_ = 0;
  std::vector<model::BatchItem> items_;
  std::vector<LogitsRow> rows_;  // per logits row of the step
  std::vector<float> logits_;    // [rows][n_vocab]; grows for prompt_logits requests
  std::thread thread_;
};

}  // namespace bitnet::engine
