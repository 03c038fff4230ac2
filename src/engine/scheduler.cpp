#include "engine/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace bitnet::engine {
namespace {

// How long the idle scheduler polls for new work before sleeping on the condition variable.
constexpr int kIdleSpinMicros = 200;

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// The longest common prefix of two token sequences.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

// Internal layers throw standard exceptions; at the Engine's boundary they become bitnet::Error,
// prefixed with what was being done.
std::exception_ptr as_error(std::exception_ptr e, const std::string& context) {
  try {
    std::rethrow_exception(e);
  } catch (const Error&) {
    return e;
  } catch (const std::exception& x) {
    return std::make_exception_ptr(Error(context + ": " + x.what()));
  } catch (...) {
    return std::make_exception_ptr(Error(context + ": unknown error"));
  }
}

Scheduler::Scheduler(const model::ModelWeights& weights, const model::Tokenizer& tokenizer,
                     const ResolvedConfig& config, bool prefix_cache)
    : weights_(weights), tok_(tokenizer), config_(config), prefix_cache_(prefix_cache) {
  const model::SessionOptions& bo = config_.batch;
  items_.reserve(static_cast<size_t>(bo.max_batch_tokens));
  batch_.reserve(static_cast<size_t>(bo.max_sequences));
  parked_.reserve(static_cast<size_t>(bo.max_sequences));
  rows_.reserve(static_cast<size_t>(bo.max_batch_tokens));
  thread_ = std::thread([this] { main_loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  shutdown_.store(true);
  cv_.notify_all();
  thread_.join();
  session_.reset();
  pool_.reset();
}

void Scheduler::record(model::PerfOp op, int64_t ticks) {
  std::lock_guard lock(stats_mu_);
  monitor_.add(op, ticks);
}

void Scheduler::enqueue(std::unique_ptr<Request> request) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw Error("the Engine is being destroyed");
    queue_.push_back(std::move(request));
    queued_.fetch_add(1, std::memory_order_relaxed);
    pending_.fetch_add(1);
  }
  cv_.notify_one();
}

void Scheduler::deliver(Request& request, GenerateResult* result, std::exception_ptr error) {
  // Counted before the result is handed over, so a caller back from future.get() sees it in
  // stats().
  completed_.fetch_add(1);
  pending_.fetch_sub(1);
  if (request.on_done) {
    try {
      request.on_done(result, error);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bitnet::Engine: a completion callback threw (ignored): %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "bitnet::Engine: a completion callback threw (ignored)\n");
    }
  } else if (result) {
    request.promise.set_value(std::move(*result));
  } else {
    request.promise.set_exception(error);
  }
}

// The request's slot goes back (parked for the prefix cache, or freed) before its result is
// handed over, so a caller back from future.get() sees its pages as not in use in stats().
void Scheduler::release(Running& r) {
  if (r.slot >= 0) {
    std::lock_guard stats_lock(stats_mu_);
    const bool park = prefix_cache_ && !shutdown_.load() && !r.cached.empty() &&
                      static_cast<int64_t>(r.cached.size()) == session_->n_past(r.slot);
    if (park) {
      session_->set_reservation(r.slot, 0);  // pages it never used go back now
      parked_.push_back({r.slot, std::move(r.cached), ++admissions_});
    } else {
      session_->remove_sequence(r.slot);
    }
    r.slot = -1;
  }
  running_n_.fetch_sub(1);
}

void Scheduler::finish(Running& r, std::optional<StopReason> reason) {
  std::optional<GenerateResult> result;
  std::exception_ptr error;
  try {
    result = r.gen->finish(reason);
  } catch (const CallbackError& e) {
    error = e.error;  // the caller's own exception, unchanged
  } catch (...) {
    error = as_error(std::current_exception(), "generating");
  }
  release(r);
  deliver(*r.request, result ? &*result : nullptr, error);
}

void Scheduler::fail(Running& r, std::exception_ptr error) {
  r.cached.clear();  // a failed step may have left its KV rows half written: never reused
  release(r);
  deliver(*r.request, nullptr, error);
}

void Scheduler::ensure_session() {
  if (session_) return;
  std::lock_guard stats_lock(stats_mu_);
  pool_ = std::make_unique<ThreadPool>(config_.threads);
  session_ = std::make_unique<model::Session>(weights_, config_.batch, *pool_);
  session_->set_monitor(&monitor_);
  logits_.resize(static_cast<size_t>(config_.batch.max_sequences * tok_.n_vocab()));
}

std::optional<std::pair<int, size_t>> Scheduler::take_slot(const Request& request) {
  const int64_t n_ctx = config_.batch.n_ctx;
  const auto n_prompt = static_cast<int64_t>(request.prompt.size());
  const int64_t worst = std::min(n_prompt + request.options.max_tokens, n_ctx);
  auto evict_lru = [&] {
    if (parked_.empty()) return false;
    const auto lru =
        std::min_element(parked_.begin(), parked_.end(),
                         [](const Parked& a, const Parked& b) { return a.used < b.used; });
    session_->remove_sequence(lru->slot);
    parked_.erase(lru);
    return true;
  };
  // A parked slot sharing the longest prefix; at least the last prompt token is evaluated (its
  // logits start the generation). A request that wants every prompt row's logits evaluates all.
  if (prefix_cache_ && !request.options.prompt_logits) {
    size_t best = 0, best_len = 0;
    for (size_t i = 0; i < parked_.size(); ++i) {
      const size_t len =
          std::min(common_prefix(parked_[i].tokens, request.prompt), request.prompt.size() - 1);
      if (len > best_len) {
        best = i;
        best_len = len;
      }
    }
    if (best_len > 0) {
      const int slot = parked_[best].slot;
      parked_.erase(parked_.begin() + static_cast<ptrdiff_t>(best));
      session_->truncate_sequence(slot, static_cast<int64_t>(best_len));
      bool reserved = session_->set_reservation(slot, worst);
      while (!reserved && evict_lru()) reserved = session_->set_reservation(slot, worst);
      if (reserved) return std::make_pair(slot, best_len);
      session_->remove_sequence(slot);  // cannot hold the rest now: a fresh slot must wait
    }
  }
  for (;;) {
    const int slot = session_->add_sequence(worst);
    if (slot >= 0) return std::make_pair(slot, size_t{0});
    if (!evict_lru()) return std::nullopt;  // nothing to give up: the request waits
  }
}

// Moves queued requests into slots, FIFO, while the pool can reserve their worst case. Cancelled
// queued requests complete at once without a slot.
void Scheduler::admit() {
  for (;;) {
    std::unique_ptr<Request> request;  // leaves the queue without a slot
    std::exception_ptr failed;         // ... and fails with this, else is cancelled
    size_t reused = 0;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) return;
      auto pop = [&] {
        std::unique_ptr<Request> front = std::move(queue_.front());
        queue_.pop_front();
        queued_.fetch_sub(1, std::memory_order_relaxed);
        return front;
      };
      Request& front = *queue_.front();
      const bool cancelled = front.options.cancel.cancelled() || shutdown_.load();
      if (!cancelled && static_cast<int64_t>(batch_.size()) >= config_.batch.max_sequences) return;
      if (!cancelled) {
        try {
          ensure_session();
        } catch (...) {  // out of memory: this request fails, the next one tries again
          session_.reset();
          failed = as_error(std::current_exception(), "allocating the forward session");
        }
      }
      if (cancelled || failed) {
        request = pop();
      } else {
        std::lock_guard stats_lock(stats_mu_);
        const auto got = take_slot(front);
        if (!got) return;  // waits for pages (FIFO: nothing behind it overtakes)
        auto r = std::make_unique<Running>();
        r->slot = got->first;
        reused = got->second;
        r->fed = reused;
        r->request = pop();
        r->cached.assign(r->request->prompt.begin(),
                         r->request->prompt.begin() + static_cast<ptrdiff_t>(reused));
        r->cached.reserve(static_cast<size_t>(config_.batch.n_ctx));
        if (reused > 0) {
          ++prefix_hits_;
          prefix_tokens_ += reused;
        }
        if (r->request->options.prompt_logits) {
          const size_t need = static_cast<size_t>(config_.batch.max_batch_tokens) *
                              static_cast<size_t>(tok_.n_vocab());
          if (logits_.size() < need) logits_.resize(need);  // once: scoring requests only
        }
        batch_.push_back(std::move(r));
        running_n_.fetch_add(1);
      }
    }
    if (failed) {
      deliver(*request, nullptr, failed);
      continue;
    }
    if (request) {  // cancelled while queued
      try {
        Generation gen(tok_, *request, config_.batch.n_ctx, &shutdown_);
        GenerateResult result = gen.finish(StopReason::Cancelled);
        deliver(*request, &result, nullptr);
      } catch (...) {
        deliver(*request, nullptr, as_error(std::current_exception(), "generating"));
      }
      continue;
    }
    Running& r = *batch_.back();
    try {
      r.gen.emplace(tok_, *r.request, config_.batch.n_ctx, &shutdown_);
      r.gen->set_cached_prompt(static_cast<int64_t>(reused));
    } catch (...) {
      fail(r, as_error(std::current_exception(), "generating"));
      r.request.reset();  // removed by step()'s sweep
    }
  }
}

void Scheduler::step() {
  // Requests that are done (failed at start) or cancelled leave before the step.
  auto leave = [&](size_t i) {  // after finish() or fail(), which released the slot
    batch_.erase(batch_.begin() + static_cast<ptrdiff_t>(i));
  };
  for (size_t i = 0; i < batch_.size();) {
    Running& r = *batch_[i];
    if (r.request && r.gen->cancelled()) finish(r, StopReason::Cancelled);
    if (!r.request || r.gen->cancelled()) {
      leave(i);
      continue;
    }
    ++i;
  }
  if (batch_.empty()) return;

  // Decode tokens first (one per decoding request), then prompt chunks while there is room.
  items_.clear();
  rows_.clear();
  int64_t budget = config_.batch.max_batch_tokens;
  for (auto& rp : batch_) {
    Running& r = *rp;
    r.in_step = false;
    if (!r.decoding) continue;
    items_.push_back({r.slot, r.next, true});
    rows_.push_back({&r, -1, true});
    r.cached.push_back(r.next);
    r.in_step = true;
    --budget;
  }
  for (auto& rp : batch_) {
    Running& r = *rp;
    if (r.decoding || budget <= 0) continue;
    const auto prompt = r.gen->prompt_tokens();
    const bool every_row = r.request->options.prompt_logits;
    const auto n =
        static_cast<size_t>(std::min<int64_t>(budget, static_cast<int64_t>(prompt.size() - r.fed)));
    r.gen->prompt_started();
    for (size_t k = 0; k < n; ++k) {
      const size_t pos = r.fed + k;
      const bool last = pos + 1 == prompt.size();
      items_.push_back({r.slot, prompt[pos], last || every_row});
      if (last || every_row) {
        rows_.push_back({&r, every_row ? static_cast<int64_t>(pos) : -1, last});
      }
      r.cached.push_back(prompt[pos]);
    }
    r.fed += n;
    r.in_step = true;
    budget -= static_cast<int64_t>(n);
  }

  try {
    std::lock_guard stats_lock(stats_mu_);
    session_->step(items_, logits_.data());
    ++steps_;
    step_tokens_ += items_.size();
  } catch (...) {  // everything was checked before the step: this is an engine bug or no memory
    const std::exception_ptr e = as_error(std::current_exception(), "batched step");
    for (size_t i = batch_.size(); i-- > 0;) {
      if (!batch_[i]->in_step) continue;
      fail(*batch_[i], e);
      leave(i);
    }
    return;
  }

  // Hand each row to its request: prompt rows kept, the last prompt row and decode rows sampled.
  const auto n_vocab = static_cast<size_t>(tok_.n_vocab());
  for (size_t row = 0; row < rows_.size(); ++row) {
    Running& r = *rows_[row].owner;
    if (!r.request) continue;  // failed on an earlier row of this step
    float* logits = logits_.data() + row * n_vocab;
    if (rows_[row].prompt_pos >= 0) r.gen->store_prompt_logits(rows_[row].prompt_pos, logits);
    if (!rows_[row].samples) continue;
    if (!r.decoding) {
      r.gen->prompt_done();
      r.decoding = true;
    }
    try {
      // Timed without stats_mu_ held: accept() runs the request's callback, which may call stats().
      const int64_t t0 = perf_ticks();
      const std::optional<int32_t> next = r.gen->accept(logits, session_->n_past(r.slot));
      {
        const int64_t detok = r.gen->detokenize_ticks();
        std::lock_guard stats_lock(stats_mu_);
        monitor_.add(model::PerfOp::Sampling, perf_ticks() - t0 - detok);
        monitor_.add(model::PerfOp::Detokenize, detok);
      }
      if (next) {
        r.next = *next;
      } else {
        finish(r, std::nullopt);
        r.request.reset();
      }
    } catch (const CallbackError& e) {
      fail(r, e.error);
      r.request.reset();
    } catch (...) {
      fail(r, as_error(std::current_exception(), "generating"));
      r.request.reset();
    }
  }
  for (size_t i = batch_.size(); i-- > 0;) {
    if (!batch_[i]->request) leave(i);
  }
}

void Scheduler::main_loop() {
  for (;;) {
    if (running_n_.load() == 0) {
      // Idle: poll briefly before sleeping. Waking a sleeping thread costs 35-110 us on the VMs we
      // measured, a visible share of a short request (docs/PERFORMANCE.md, engine targets), and a
      // client that just got a result often submits the next one at once.
      const auto t0 = Clock::now();
      while (queued_.load(std::memory_order_relaxed) == 0 && !shutdown_.load() &&
             Clock::now() - t0 < std::chrono::microseconds(kIdleSpinMicros)) {
        cpu_relax();
      }
    }
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || running_n_.load() > 0; });
      if (stopping_ && queue_.empty() && running_n_.load() == 0) return;
    }
    std::lock_guard role(driver_mu_);
    driver_.store(std::this_thread::get_id());
    admit();
    step();
    driver_.store(std::thread::id());
  }
}

GenerateResult Scheduler::run(std::unique_ptr<Request> request) {
  std::future<GenerateResult> future = request->promise.get_future();
  // When no other thread is driving the batch, the caller drives it until its own request is
  // done, instead of handing the request to the scheduler thread and sleeping until the result
  // comes back (two thread wake-ups, 0.1 ms per request here). The batch is the same either way.
  // The role is taken before the request is queued, so the idle scheduler cannot take it first.
  // Not from inside a token callback (this thread is already driving: it would deadlock before).
  const bool drive = driver_.load() != std::this_thread::get_id() && driver_mu_.try_lock();
  if (!drive) {
    enqueue(std::move(request));
    return future.get();
  }
  driver_.store(std::this_thread::get_id());
  try {
    enqueue(std::move(request));
    while (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      admit();
      if (batch_.empty()) break;  // nothing runs: ours was completed by admit (cancelled)
      step();
    }
  } catch (...) {
    driver_.store(std::thread::id());
    driver_mu_.unlock();
    throw;
  }
  driver_.store(std::thread::id());
  driver_mu_.unlock();
  { std::lock_guard lock(mu_); }  // orders with the scheduler's wait predicate
  cv_.notify_all();
  return future.get();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  {
    std::lock_guard lock(stats_mu_);
    if (const model::Session* b = session_.get()) {
      const model::KvPagePool& kv = b->kv_pool();
      s.kv_pool_bytes = kv.bytes();
      s.kv_page_bytes = kv.page_bytes();
      s.kv_pages_total = kv.n_pages();
      int64_t parked_positions = 0;
      for (const Parked& p : parked_) {
        s.kv_pages_cached += b->pages_held(p.slot);
        parked_positions += static_cast<int64_t>(p.tokens.size());
      }
      s.kv_pages_in_use = kv.pages_in_use() - s.kv_pages_cached;
      s.kv_pages_peak = kv.peak_pages_in_use();
      s.positions_stored = b->positions_stored() - parked_positions;
      s.activation_bytes = b->activation_bytes();
    }
    s.steps = steps_;
    s.step_tokens = step_tokens_;
    s.prefix_hits = prefix_hits_;
    s.prefix_tokens = prefix_tokens_;
  }
  s.completed = completed_.load();
  s.pending = pending_.load();
  s.running = running_n_.load();
  s.queued = static_cast<uint64_t>(std::max<int64_t>(0, queued_.load()));
  return s;
}

std::string Scheduler::profile_json(bool series) const {
  std::ostringstream out;
  std::lock_guard lock(stats_mu_);
  monitor_.write_json(out, series);
  return out.str();
}

}  // namespace bitnet::engine
