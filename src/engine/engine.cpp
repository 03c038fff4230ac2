// bitnet::Engine: a FIFO of validated requests and one scheduler thread that serves them by
// continuous batching over a BatchedSession (model/batched-session.h) on weights shared through the
// model cache. Each step, every admitted request contributes its next token, or a chunk of its
// prompt while the step has room (max_batch_tokens); requests are admitted in FIFO order while a
// slot is free (max_concurrent_requests) and the KV page pool can reserve their worst case
// (prompt + max_tokens), so none fails mid-way for want of memory.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "bitnet/engine.h"
#include "core/memory.h"
#include "core/perf-monitor.h"
#include "core/thread-pool.h"
#include "engine/generation.h"
#include "engine/model-cache.h"
#include "kernels/ternary-matmul.h"
#include "model/batched-session.h"
#include "model/model-validate.h"
#include "tokenizer/chat-template.h"

namespace bitnet {
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

// Internal layers throw standard exceptions; at this boundary they become bitnet::Error, prefixed
// with what was being done.
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

[[noreturn]] void rethrow_as_error(const std::string& context) {
  std::rethrow_exception(as_error(std::current_exception(), context));
}

model::LoadOptions load_options(const EngineConfig& c) {
  model::LoadOptions o;
  if (c.layout == WeightLayout::T1) o.layout = kernels::TernaryLayout::T1;
  if (c.layout == WeightLayout::T2) o.layout = kernels::TernaryLayout::T2;
  o.cache = c.prepared_cache == PreparedCache::On    ? model::CacheMode::On
            : c.prepared_cache == PreparedCache::Off ? model::CacheMode::Off
                                                     : model::CacheMode::Auto;
  o.cache_dir = c.cache_dir;
  o.threads = c.threads;
  o.on_pack_progress = c.on_pack_progress;
  return o;
}

void validate(const EngineConfig& c) {
  auto bad = [](const std::string& what) { throw Error("EngineConfig: " + what); };
  if (c.threads < 0) bad("threads must be >= 0 (0: all cores), found " + std::to_string(c.threads));
  if (c.max_concurrent_requests < 1) {
    bad("max_concurrent_requests must be >= 1, found " + std::to_string(c.max_concurrent_requests));
  }
  if (c.context_size < 0) {
    bad("context_size must be >= 0 (0: the model's), found " + std::to_string(c.context_size));
  }
  if (c.max_batch_tokens < c.max_concurrent_requests) {
    bad("max_batch_tokens must be >= max_concurrent_requests (" +
        std::to_string(c.max_concurrent_requests) + ": every running request decodes a token " +
        "each step), found " + std::to_string(c.max_batch_tokens));
  }
}

const char* source_name(model::LoadReport::Source s) {
  switch (s) {
    case model::LoadReport::Source::Packed:
      return "packed";
    case model::LoadReport::Source::CacheHit:
      return "prepared cache";
    case model::LoadReport::Source::CacheRebuilt:
      return "prepared cache rebuilt";
  }
  return "?";
}

}  // namespace

const char* to_string(StopReason reason) {
  switch (reason) {
    case StopReason::MaxTokens:
      return "max tokens";
    case StopReason::EndOfGeneration:
      return "end of generation";
    case StopReason::StopString:
      return "stop string";
    case StopReason::ContextFull:
      return "context full";
    case StopReason::Callback:
      return "callback";
    case StopReason::Cancelled:
      return "cancelled";
  }
  return "?";
}

EngineConfig::EngineConfig(OptimizationLevel lvl) : level(lvl) {
  switch (lvl) {
    case OptimizationLevel::None:
      threads = 1;
      kv_type = KvCacheType::F32;
      prepared_cache = PreparedCache::Off;
      fused_norm_quant = false;
      break;
    case OptimizationLevel::Basic:
      break;
    case OptimizationLevel::Aggressive:
      layout = WeightLayout::T1;
      prepared_cache = PreparedCache::On;
      break;
  }
}

EngineConfig EngineConfig::optimized_for_speed() {
  EngineConfig c(OptimizationLevel::Aggressive);
  c.max_concurrent_requests = 8;
  return c;
}

EngineConfig EngineConfig::optimized_for_memory() {
  EngineConfig c(OptimizationLevel::Basic);
  c.layout = WeightLayout::T1;
  c.kv_type = KvCacheType::F16;
  c.context_size = 2048;
  c.max_batch_tokens = 32;
  c.max_concurrent_requests = 1;
  return c;
}

struct Engine::Impl {
  // A request admitted to the batch.
  struct Running {
    std::unique_ptr<engine::Request> request;
    std::optional<engine::Generation> gen;
    int slot = -1;
    size_t fed = 0;     // prompt tokens evaluated
    int32_t next = -1;  // the token to evaluate next, once decoding
    bool decoding = false;
    bool in_step = false;  // has an item in the current step
  };

  Impl(const std::string& path, const EngineConfig& config);
  ~Impl();
  std::unique_ptr<engine::Request> make_request(const std::string& prompt,
                                                const GenerateOptions& options,
                                                TokenCallback on_piece);
  std::unique_ptr<engine::Request> make_request(TokenPrompt prompt, const GenerateOptions& options,
                                                TokenCallback on_piece);
  void enqueue(std::unique_ptr<engine::Request> request);
  void scheduler_main();
  GenerateResult generate(std::unique_ptr<engine::Request> request);
  void admit(std::vector<std::unique_ptr<Running>>& running);
  void run_step(std::vector<std::unique_ptr<Running>>& running);
  void deliver(engine::Request& request, GenerateResult* result, std::exception_ptr error);
  void finish(Running& r, std::optional<StopReason> reason);
  void fail(Running& r, std::exception_ptr error);
  void release(Running& r);

  EngineConfig config;
  std::shared_ptr<detail::ModelCacheAccess::Impl> cache;
  engine::WeightsPtr weights;
  std::optional<model::Tokenizer> tok;
  model::ChatTemplate chat_template = model::ChatTemplate::Plain;
  model::BatchedOptions batch_options;
  EngineInfo info;
  uint64_t weights_bytes = 0;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<engine::Request>> queue;  // guarded by mu
  bool stopping = false;                               // guarded by mu
  std::atomic<bool> shutdown{false};                   // read by running requests
  std::atomic<uint64_t> completed{0}, pending{0}, running_n{0};
  std::atomic<int64_t> queued{0};  // queue.size(), readable without mu (the idle poll)

  // Owned by the scheduler thread; read by stats() and profile_json() under stats_mu.
  mutable std::mutex stats_mu;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<model::BatchedSession> session;
  PerfMonitor monitor;
  uint64_t steps = 0, step_tokens = 0;
  int64_t positions_held = 0;  // positions stored by running requests (fragmentation)

  // The batch: driven by the scheduler thread, or by a generate() caller while it is idle; whoever
  // holds driver_mu (driver names it, so a callback's thread can tell it is driving).
  std::mutex driver_mu;
  std::atomic<std::thread::id> driver{};
  std::vector<std::unique_ptr<Running>> batch;  // the running requests; guarded by driver_mu

  // Scheduler scratch, sized once (guarded by driver_mu).
  std::vector<model::BatchItem> items;
  std::vector<Running*> logit_owner;  // per logits row
  std::vector<float> logits;          // [max_concurrent_requests][n_vocab]
  std::thread scheduler;
};

Engine::Impl::Impl(const std::string& path, const EngineConfig& cfg) : config(cfg) {
  validate(config);
  ModelCache& mc = config.model_cache ? *config.model_cache : ModelCache::global();
  cache = detail::ModelCacheAccess::impl(mc);
  try {
    weights = cache->cache.acquire(path, load_options(config));
    tok.emplace(model::load_model_tokenizer(weights->file(), weights->config()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    // Messages from the loader name the file already; others get it in front.
    const std::string msg = e.what();
    throw Error(msg.rfind(path, 0) == 0 ? msg : "loading model " + path + ": " + msg);
  } catch (...) {
    rethrow_as_error("loading model " + path);
  }
  const model::ModelConfig& mcfg = weights->config();
  model::ChatTemplateChoice tmpl;
  try {
    tmpl = model::choose_chat_template(config.chat_template,
                                       weights->file().find_string("tokenizer.chat_template"),
                                       tok->find_token("<|eot_id|>").has_value(),
                                       tok->find_token("<|start_header_id|>").has_value());
  } catch (...) {
    rethrow_as_error("EngineConfig::chat_template");
  }
  chat_template = tmpl.tmpl;
  info.chat_template = model::chat_template_name(tmpl.tmpl);
  info.chat_template_note = tmpl.note;

  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  model::BatchedOptions& bo = batch_options;
  bo.max_sequences = config.max_concurrent_requests;
  bo.n_ctx =
      config.context_size > 0 ? std::min(config.context_size, mcfg.n_ctx_train) : mcfg.n_ctx_train;
  bo.kv = config.kv_type == KvCacheType::F32 ? model::KvType::F32 : model::KvType::F16;
  bo.max_batch_tokens = config.max_batch_tokens;
  bo.quantize_activations = config.quantize_activations;
  bo.fused_norm_quant = config.fused_norm_quant && config.quantize_activations;
  const uint64_t page_bytes =
      model::KvPagePool::page_bytes(bo.kv, mcfg.n_layer, mcfg.n_embd_kv(), bo.kv_page_size);
  const int64_t pages_per_request = (bo.n_ctx + bo.kv_page_size - 1) / bo.kv_page_size;
  bo.kv_pages = config.kv_cache_bytes > 0 ? static_cast<int64_t>(config.kv_cache_bytes / page_bytes)
                                          : pages_per_request * bo.max_sequences;
  if (bo.kv_pages < 1) {
    throw Error("EngineConfig: kv_cache_bytes (" + std::to_string(config.kv_cache_bytes) +
                ") is less than one KV page of " + std::to_string(bo.kv_page_size) +
                " positions (" + std::to_string(page_bytes) + " bytes for this model)");
  }
  // The pool is allocated with the first request; a budget this machine cannot hold is refused
  // now, with the numbers, rather than failing then.
  try {
    check_fits_in_memory(page_bytes * static_cast<uint64_t>(bo.kv_pages),
                         "the KV cache (" + std::to_string(bo.kv_pages) + " pages of " +
                             std::to_string(bo.kv_page_size) + " positions: context_size " +
                             std::to_string(bo.n_ctx) + " x max_concurrent_requests " +
                             std::to_string(bo.max_sequences) + ", or kv_cache_bytes)");
  } catch (...) {
    rethrow_as_error("EngineConfig");
  }

  info.model_path = path;
  info.architecture = model::arch_name(mcfg.arch);
  info.n_vocab = mcfg.n_vocab;
  info.context_size = bo.n_ctx;
  info.trained_context = mcfg.n_ctx_train;
  info.threads = config.threads > 0 ? config.threads : hw;
  info.max_concurrent_requests = config.max_concurrent_requests;
  info.max_batch_tokens = bo.max_batch_tokens;
  info.kv_cache_bytes = page_bytes * static_cast<uint64_t>(bo.kv_pages);
  info.kv_page_positions = bo.kv_page_size;
  info.kv_type = config.kv_type;
  info.layout = kernels::layout_name(weights->layout());
  info.kernels = kernels::isa_name(kernels::active_kernels().isa);
  info.weights_source = source_name(weights->report().source);
  info.load_seconds = weights->report().seconds;
  info.weights_note = weights->report().cache_reason;
  weights_bytes = engine::weights_bytes(*weights);

  items.reserve(static_cast<size_t>(bo.max_batch_tokens));
  batch.reserve(static_cast<size_t>(bo.max_sequences));
  logit_owner.reserve(static_cast<size_t>(bo.max_sequences));
  scheduler = std::thread([this] { scheduler_main(); });
}

Engine::Impl::~Impl() {
  {
    std::lock_guard lock(mu);
    stopping = true;
  }
  shutdown.store(true);
  cv.notify_all();
  scheduler.join();
  session.reset();
  pool.reset();
  weights.reset();
  cache->cache.trim();
}

std::unique_ptr<engine::Request> Engine::Impl::make_request(const std::string& prompt,
                                                            const GenerateOptions& options,
                                                            TokenCallback on_piece) {
  const auto submitted = engine::Clock::now();
  engine::validate_options(options, tok->n_vocab());
  TokenPrompt tokens;
  try {
    const std::string text =
        options.chat ? model::apply_chat_template(chat_template, {{"user", prompt}}, true) : prompt;
    const int64_t t0 = perf_ticks();
    tokens.tokens = tok->encode(text, true, true);
    std::lock_guard stats_lock(stats_mu);
    monitor.add(PerfOp::Tokenize, perf_ticks() - t0);
  } catch (...) {
    rethrow_as_error("GenerateOptions");
  }
  GenerateOptions o = options;
  o.chat = false;  // applied
  auto request = make_request(std::move(tokens), o, std::move(on_piece));
  request->submitted = submitted;
  return request;
}

std::unique_ptr<engine::Request> Engine::Impl::make_request(TokenPrompt prompt,
                                                            const GenerateOptions& options,
                                                            TokenCallback on_piece) {
  auto request = std::make_unique<engine::Request>();
  request->submitted = engine::Clock::now();
  engine::validate_options(options, tok->n_vocab());
  if (options.chat) {
    throw Error(
        "GenerateOptions: chat applies to text prompts, not to a TokenPrompt (render the "
        "conversation with Engine::apply_chat_template and tokenize it)");
  }
  for (size_t i = 0; i < prompt.tokens.size(); ++i) {
    const int32_t t = prompt.tokens[i];
    if (t < 0 || t >= tok->n_vocab()) {
      throw Error("TokenPrompt: token " + std::to_string(i) + " is " + std::to_string(t) +
                  ", outside the vocabulary [0, " + std::to_string(tok->n_vocab()) + ")");
    }
  }
  request->sampling = engine::sampler_params(options);
  request->prompt = std::move(prompt.tokens);
  const int64_t n = static_cast<int64_t>(request->prompt.size());
  const int64_t n_ctx = batch_options.n_ctx;
  if (n == 0) {
    throw Error(
        "the prompt has no tokens (an empty TokenPrompt, or empty text and a vocabulary "
        "that adds no BOS token)");
  }
  if (n >= n_ctx) {
    throw Error("the prompt has " + std::to_string(n) + " tokens but the context holds " +
                std::to_string(n_ctx) + " (EngineConfig::context_size, up to the model's " +
                std::to_string(weights->config().n_ctx_train) + ")");
  }
  const int64_t worst = std::min(n + options.max_tokens, n_ctx);
  const int64_t pages = (worst + batch_options.kv_page_size - 1) / batch_options.kv_page_size;
  if (pages > batch_options.kv_pages) {
    throw Error("the request needs " + std::to_string(pages) + " KV pages (" +
                std::to_string(worst) + " positions: prompt + max_tokens) but the whole KV " +
                "budget holds " + std::to_string(batch_options.kv_pages) +
                " (EngineConfig::kv_cache_bytes = " + std::to_string(info.kv_cache_bytes) +
                " bytes); lower max_tokens or raise the budget");
  }
  request->options = options;
  request->on_piece = std::move(on_piece);
  return request;
}

void Engine::Impl::enqueue(std::unique_ptr<engine::Request> request) {
  {
    std::lock_guard lock(mu);
    if (stopping) throw Error("the Engine is being destroyed");
    queue.push_back(std::move(request));
    queued.fetch_add(1, std::memory_order_relaxed);
    pending.fetch_add(1);
  }
  cv.notify_one();
}

void Engine::Impl::deliver(engine::Request& request, GenerateResult* result,
                           std::exception_ptr error) {
  // Counted before the result is handed over, so a caller back from future.get() sees it in
  // stats().
  completed.fetch_add(1);
  pending.fetch_sub(1);
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

// The request's slot and pages go back before its result is handed over, so a caller back from
// future.get() sees them free in stats().
void Engine::Impl::release(Running& r) {
  if (r.slot >= 0) {
    std::lock_guard stats_lock(stats_mu);
    session->remove_sequence(r.slot);
    r.slot = -1;
  }
  running_n.fetch_sub(1);
}

void Engine::Impl::finish(Running& r, std::optional<StopReason> reason) {
  std::optional<GenerateResult> result;
  std::exception_ptr error;
  try {
    result = r.gen->finish(reason);
  } catch (const engine::CallbackError& e) {
    error = e.error;  // the caller's own exception, unchanged
  } catch (...) {
    error = as_error(std::current_exception(), "generating");
  }
  release(r);
  deliver(*r.request, result ? &*result : nullptr, error);
}

void Engine::Impl::fail(Running& r, std::exception_ptr error) {
  release(r);
  deliver(*r.request, nullptr, error);
}

// Moves queued requests into free slots, FIFO, while the pool can reserve their worst case.
// Cancelled queued requests complete at once without a slot.
void Engine::Impl::admit(std::vector<std::unique_ptr<Running>>& running) {
  for (;;) {
    std::unique_ptr<engine::Request> request;  // leaves the queue without a slot
    std::exception_ptr failed;                 // ... and fails with this, else is cancelled
    {
      std::lock_guard lock(mu);
      if (queue.empty()) return;
      auto pop = [&] {
        std::unique_ptr<engine::Request> front = std::move(queue.front());
        queue.pop_front();
        queued.fetch_sub(1, std::memory_order_relaxed);
        return front;
      };
      engine::Request& front = *queue.front();
      const bool cancelled = front.options.cancel.cancelled() || shutdown.load();
      if (!cancelled && static_cast<int64_t>(running.size()) >= batch_options.max_sequences) return;
      if (!cancelled && !session) {
        std::lock_guard stats_lock(stats_mu);
        try {
          pool = std::make_unique<ThreadPool>(info.threads);
          session = std::make_unique<model::BatchedSession>(*weights, batch_options, *pool);
          session->set_monitor(&monitor);
          logits.resize(static_cast<size_t>(batch_options.max_sequences * info.n_vocab));
        } catch (...) {  // out of memory: this request fails, the next one tries again
          session.reset();
          failed = as_error(std::current_exception(), "allocating the batched session");
        }
      }
      if (cancelled || failed) {
        request = pop();
      } else {
        const int64_t worst =
            std::min(static_cast<int64_t>(front.prompt.size()) + front.options.max_tokens,
                     batch_options.n_ctx);
        std::lock_guard stats_lock(stats_mu);
        const int slot = session->add_sequence(worst);
        if (slot < 0) return;  // waits for pages (FIFO: nothing behind it overtakes)
        auto r = std::make_unique<Running>();
        r->slot = slot;
        r->request = pop();
        running.push_back(std::move(r));
        running_n.fetch_add(1);
      }
    }
    if (failed) {
      deliver(*request, nullptr, failed);
      continue;
    }
    if (request) {  // cancelled while queued
      try {
        engine::Generation gen(*tok, *request, batch_options.n_ctx, &shutdown);
        GenerateResult result = gen.finish(StopReason::Cancelled);
        deliver(*request, &result, nullptr);
      } catch (...) {
        deliver(*request, nullptr, as_error(std::current_exception(), "generating"));
      }
      continue;
    }
    Running& r = *running.back();
    try {
      r.gen.emplace(*tok, *r.request, batch_options.n_ctx, &shutdown);
    } catch (...) {
      fail(r, as_error(std::current_exception(), "generating"));
      r.request.reset();  // removed by run_step's sweep
    }
  }
}

void Engine::Impl::run_step(std::vector<std::unique_ptr<Running>>& running) {
  // Requests that are done (failed at start) or cancelled leave before the step.
  auto leave = [&](size_t i) {  // after finish() or fail(), which released the slot
    running.erase(running.begin() + static_cast<ptrdiff_t>(i));
  };
  for (size_t i = 0; i < running.size();) {
    Running& r = *running[i];
    if (r.request && r.gen->cancelled()) finish(r, StopReason::Cancelled);
    if (!r.request || r.gen->cancelled()) {
      leave(i);
      continue;
    }
    ++i;
  }
  if (running.empty()) return;

  // Decode tokens first (one per decoding request), then prompt chunks while there is room.
  items.clear();
  logit_owner.clear();
  int64_t budget = batch_options.max_batch_tokens;
  for (auto& rp : running) {
    Running& r = *rp;
    r.in_step = false;
    if (!r.decoding) continue;
    items.push_back({r.slot, r.next, true});
    logit_owner.push_back(&r);
    r.in_step = true;
    --budget;
  }
  for (auto& rp : running) {
    Running& r = *rp;
    if (r.decoding || budget <= 0) continue;
    const auto prompt = r.gen->prompt_tokens();
    const auto n =
        static_cast<size_t>(std::min<int64_t>(budget, static_cast<int64_t>(prompt.size() - r.fed)));
    if (r.fed == 0) r.gen->prompt_started();
    for (size_t k = 0; k < n; ++k) {
      const bool last = r.fed + k + 1 == prompt.size();
      items.push_back({r.slot, prompt[r.fed + k], last});
      if (last) logit_owner.push_back(&r);
    }
    r.fed += n;
    r.in_step = true;
    budget -= static_cast<int64_t>(n);
  }

  try {
    std::lock_guard stats_lock(stats_mu);
    session->step(items, logits.data());
    ++steps;
    step_tokens += items.size();
  } catch (...) {  // everything was checked before the step: this is an engine bug or no memory
    const std::exception_ptr e = as_error(std::current_exception(), "batched step");
    for (size_t i = running.size(); i-- > 0;) {
      if (!running[i]->in_step) continue;
      fail(*running[i], e);
      leave(i);
    }
    return;
  }

  // Sample the next token of every request that got logits.
  for (size_t row = 0; row < logit_owner.size(); ++row) {
    Running& r = *logit_owner[row];
    if (!r.decoding) {
      r.gen->prompt_done();
      r.decoding = true;
    }
    try {
      // Timed without stats_mu held: accept() runs the request's callback, which may call stats().
      const int64_t t0 = perf_ticks();
      const std::optional<int32_t> next = r.gen->accept(
          logits.data() + row * static_cast<size_t>(info.n_vocab), session->n_past(r.slot));
      {
        const int64_t detok = r.gen->detokenize_ticks();
        std::lock_guard stats_lock(stats_mu);
        monitor.add(PerfOp::Sampling, perf_ticks() - t0 - detok);
        monitor.add(PerfOp::Detokenize, detok);
      }
      if (next) {
        r.next = *next;
      } else {
        finish(r, std::nullopt);
        r.request.reset();
      }
    } catch (const engine::CallbackError& e) {
      fail(r, e.error);
      r.request.reset();
    } catch (...) {
      fail(r, as_error(std::current_exception(), "generating"));
      r.request.reset();
    }
  }
  for (size_t i = running.size(); i-- > 0;) {
    if (!running[i]->request) leave(i);
  }
}

void Engine::Impl::scheduler_main() {
  for (;;) {
    if (running_n.load() == 0) {
      // Idle: poll briefly before sleeping. Waking a sleeping thread costs 35-110 us on the VMs we
      // measured, a visible share of a short request (docs/PERFORMANCE.md, engine targets), and a
      // client that just got a result often submits the next one at once.
      const auto t0 = engine::Clock::now();
      while (queued.load(std::memory_order_relaxed) == 0 && !shutdown.load() &&
             engine::Clock::now() - t0 < std::chrono::microseconds(kIdleSpinMicros)) {
        cpu_relax();
      }
    }
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return stopping || !queue.empty() || running_n.load() > 0; });
      if (stopping && queue.empty() && running_n.load() == 0) return;
    }
    std::lock_guard role(driver_mu);
    driver.store(std::this_thread::get_id());
    admit(batch);
    run_step(batch);
    driver.store(std::thread::id());
  }
}

GenerateResult Engine::Impl::generate(std::unique_ptr<engine::Request> request) {
  std::future<GenerateResult> future = request->promise.get_future();
  // When no other thread is driving the batch, the caller drives it until its own request is
  // done, instead of handing the request to the scheduler thread and sleeping until the result
  // comes back (two thread wake-ups, 0.1 ms per request here). The batch is the same either way.
  // The role is taken before the request is queued, so the idle scheduler cannot take it first.
  // Not from inside a token callback (this thread is already driving: it would deadlock before).
  const bool drive = driver.load() != std::this_thread::get_id() && driver_mu.try_lock();
  if (!drive) {
    enqueue(std::move(request));
    return future.get();
  }
  driver.store(std::this_thread::get_id());
  try {
    enqueue(std::move(request));
    while (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      admit(batch);
      if (batch.empty()) break;  // nothing runs: ours was completed by admit (cancelled)
      run_step(batch);
    }
  } catch (...) {
    driver.store(std::thread::id());
    driver_mu.unlock();
    throw;
  }
  driver.store(std::thread::id());
  driver_mu.unlock();
  { std::lock_guard lock(mu); }  // orders with the scheduler's wait predicate
  cv.notify_all();
  return future.get();
}

Engine::Engine(const std::string& model_path, const EngineConfig& config)
    : impl_(std::make_unique<Impl>(model_path, config)) {}

Engine::~Engine() = default;

GenerateResult Engine::generate(const std::string& prompt, const GenerateOptions& options,
                                TokenCallback on_piece) {
  return impl_->generate(impl_->make_request(prompt, options, std::move(on_piece)));
}

GenerateResult Engine::generate(TokenPrompt prompt, const GenerateOptions& options,
                                TokenCallback on_piece) {
  return impl_->generate(impl_->make_request(std::move(prompt), options, std::move(on_piece)));
}

std::future<GenerateResult> Engine::submit(const std::string& prompt,
                                           const GenerateOptions& options, TokenCallback on_piece) {
  auto request = impl_->make_request(prompt, options, std::move(on_piece));
  std::future<GenerateResult> future = request->promise.get_future();
  impl_->enqueue(std::move(request));
  return future;
}

void Engine::submit(const std::string& prompt, const GenerateOptions& options,
                    TokenCallback on_piece, CompletionCallback on_done) {
  if (!on_done) throw Error("Engine::submit: the completion callback is empty");
  auto request = impl_->make_request(prompt, options, std::move(on_piece));
  request->on_done = std::move(on_done);
  impl_->enqueue(std::move(request));
}

std::future<GenerateResult> Engine::submit(TokenPrompt prompt, const GenerateOptions& options,
                                           TokenCallback on_piece) {
  auto request = impl_->make_request(std::move(prompt), options, std::move(on_piece));
  std::future<GenerateResult> future = request->promise.get_future();
  impl_->enqueue(std::move(request));
  return future;
}

void Engine::submit(TokenPrompt prompt, const GenerateOptions& options, TokenCallback on_piece,
                    CompletionCallback on_done) {
  if (!on_done) throw Error("Engine::submit: the completion callback is empty");
  auto request = impl_->make_request(std::move(prompt), options, std::move(on_piece));
  request->on_done = std::move(on_done);
  impl_->enqueue(std::move(request));
}

std::vector<int32_t> Engine::tokenize(std::string_view text, bool add_special,
                                      bool parse_special) const {
  const int64_t t0 = perf_ticks();
  std::vector<int32_t> ids = impl_->tok->encode(text, add_special, parse_special);
  std::lock_guard lock(impl_->stats_mu);
  impl_->monitor.add(PerfOp::Tokenize, perf_ticks() - t0);
  return ids;
}

std::string Engine::detokenize(std::span<const int32_t> tokens, bool render_special) const {
  const model::Tokenizer& tok = *impl_->tok;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= tok.n_vocab()) {
      throw Error("detokenize: token " + std::to_string(i) + " is " + std::to_string(tokens[i]) +
                  ", outside the vocabulary [0, " + std::to_string(tok.n_vocab()) + ")");
    }
  }
  return tok.decode(tokens, render_special);
}

std::string Engine::apply_chat_template(const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) const {
  std::vector<model::ChatMessage> turns;
  turns.reserve(messages.size());
  for (const ChatMessage& m : messages) turns.push_back({m.role, m.content});
  try {
    return model::apply_chat_template(impl_->chat_template, turns, add_generation_prompt);
  } catch (...) {
    rethrow_as_error("apply_chat_template");
  }
}

const EngineInfo& Engine::info() const {
  return impl_->info;
}

EngineStats Engine::stats() const {
  EngineStats s;
  s.weights_bytes = impl_->weights_bytes;
  {
    std::lock_guard lock(impl_->stats_mu);
    if (const model::BatchedSession* b = impl_->session.get()) {
      const model::KvPagePool& kv = b->kv_pool();
      s.kv_pool_bytes = kv.bytes();
      s.kv_bytes_in_use = kv.page_bytes() * static_cast<uint64_t>(kv.pages_in_use());
      s.kv_peak_bytes = kv.page_bytes() * static_cast<uint64_t>(kv.peak_pages_in_use());
      s.kv_pages_total = static_cast<uint64_t>(kv.n_pages());
      s.kv_pages_in_use = static_cast<uint64_t>(kv.pages_in_use());
      s.kv_pages_peak = static_cast<uint64_t>(kv.peak_pages_in_use());
      const int64_t capacity = kv.pages_in_use() * kv.page_size();
      s.kv_fragmentation = capacity > 0 ? 1.0 - static_cast<double>(b->positions_stored()) /
                                                    static_cast<double>(capacity)
                                        : 0.0;
      s.activation_bytes = b->activation_bytes();
    }
    s.steps = impl_->steps;
    s.step_tokens = impl_->step_tokens;
  }
  s.current_bytes = s.weights_bytes + s.activation_bytes + s.kv_bytes_in_use;
  s.peak_bytes = s.weights_bytes + s.activation_bytes + s.kv_peak_bytes;
  s.requests_completed = impl_->completed.load();
  s.requests_pending = impl_->pending.load();
  s.requests_running = impl_->running_n.load();
  s.requests_queued = static_cast<uint64_t>(std::max<int64_t>(0, impl_->queued.load()));
  return s;
}

std::string Engine::profile_json(bool series) const {
  std::ostringstream out;
  std::lock_guard lock(impl_->stats_mu);
  impl_->monitor.write_json(out, series);
  return out.str();
}

std::string generate(const std::string& model_path, const std::string& prompt,
                     const GenerateOptions& options, const EngineConfig& config) {
  Engine engine(model_path, config);
  return engine.generate(prompt, options).text;
}

}  // namespace bitnet
