// bitnet::Engine: a FIFO of validated requests served by max_concurrent_requests worker threads,
// each owning a ThreadPool and a BitNetSession (KV cache, activations) over weights shared through
// the model cache. serve() is the only place that evaluates tokens; a batched decode step would
// replace it, driving many Generation objects (generation.h) at once.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "bitnet/engine.h"
#include "core/thread-pool.h"
#include "engine/generation.h"
#include "engine/model-cache.h"
#include "kernels/ternary-matmul.h"
#include "model/bitnet-b158.h"
#include "model/chat-template.h"

namespace bitnet {
namespace {

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
  if (c.prefill_batch < 1) {
    bad("prefill_batch must be >= 1, found " + std::to_string(c.prefill_batch));
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
  c.max_concurrent_requests = 1;
  return c;
}

EngineConfig EngineConfig::optimized_for_memory() {
  EngineConfig c(OptimizationLevel::Basic);
  c.layout = WeightLayout::T1;
  c.kv_type = KvCacheType::F16;
  c.context_size = 2048;
  c.prefill_batch = 32;
  c.max_concurrent_requests = 1;
  return c;
}

struct Engine::Impl {
  Impl(const std::string& path, const EngineConfig& config);
  ~Impl();
  std::future<GenerateResult> submit(const std::string& prompt, const GenerateOptions& options,
                                     TokenCallback on_piece);
  void worker_main();
  void serve(engine::Request& request, std::unique_ptr<ThreadPool>& pool,
             std::unique_ptr<model::BitNetSession>& session, std::vector<float>& logits);

  EngineConfig config;
  std::shared_ptr<detail::ModelCacheAccess::Impl> cache;
  engine::WeightsPtr weights;
  std::optional<model::Tokenizer> tok;
  model::ChatTemplate chat_template = model::ChatTemplate::Plain;
  model::SessionOptions session_options;
  EngineInfo info;
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes = 0;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<engine::Request>> queue;  // guarded by mu
  bool stopping = false;                               // guarded by mu
  std::atomic<bool> shutdown{false};                   // read by running requests
  std::vector<std::thread> workers;
  std::atomic<int64_t> sessions{0};
  std::atomic<uint64_t> completed{0}, pending{0};
};

Engine::Impl::Impl(const std::string& path, const EngineConfig& cfg) : config(cfg) {
  validate(config);
  ModelCache& mc = config.model_cache ? *config.model_cache : ModelCache::global();
  cache = detail::ModelCacheAccess::impl(mc);
  try {
    weights = cache->cache.acquire(path, load_options(config));
    tok.emplace(model::Tokenizer::from_gguf(weights->file()));
  } catch (...) {
    rethrow_as_error("loading model " + path);
  }
  const model::ModelConfig& mcfg = weights->config();
  if (tok->n_vocab() != mcfg.n_vocab) {
    throw Error(path + ": the tokenizer has " + std::to_string(tok->n_vocab()) +
                " tokens but the model's vocabulary is " + std::to_string(mcfg.n_vocab));
  }
  chat_template =
      model::detect_chat_template(weights->file().find_string("tokenizer.chat_template"),
                                  tok->find_token("<|eot_id|>").has_value(),
                                  tok->find_token("<|start_header_id|>").has_value());

  const int workers_n = config.max_concurrent_requests;
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int threads = config.threads > 0 ? config.threads : std::max(1, hw / workers_n);
  session_options.n_ctx =
      config.context_size > 0 ? std::min(config.context_size, mcfg.n_ctx_train) : mcfg.n_ctx_train;
  session_options.kv = config.kv_type == KvCacheType::F32 ? model::KvType::F32 : model::KvType::F16;
  session_options.quantize_activations = config.quantize_activations;
  session_options.max_batch = config.prefill_batch;

  info.model_path = path;
  info.architecture = model::arch_name(mcfg.arch);
  info.n_vocab = mcfg.n_vocab;
  info.context_size = session_options.n_ctx;
  info.threads_per_request = threads;
  info.max_concurrent_requests = workers_n;
  info.kv_type = config.kv_type;
  info.layout = kernels::layout_name(weights->layout());
  info.kernels = kernels::isa_name(kernels::active_kernels().isa);
  info.weights_source = source_name(weights->report().source);
  weights_bytes = engine::weights_bytes(*weights);
  // As KvCache allocates: K and V, [n_layer][n_ctx][n_embd_kv] each.
  kv_bytes = 2 * static_cast<uint64_t>(mcfg.n_layer * session_options.n_ctx * mcfg.n_embd_kv()) *
             (session_options.kv == model::KvType::F16 ? 2u : 4u);

  workers.reserve(static_cast<size_t>(workers_n));
  for (int i = 0; i < workers_n; ++i) workers.emplace_back([this] { worker_main(); });
}

Engine::Impl::~Impl() {
  {
    std::lock_guard lock(mu);
    stopping = true;
  }
  shutdown.store(true);
  cv.notify_all();
  for (std::thread& t : workers) t.join();
  weights.reset();
  cache->cache.trim();
}

std::future<GenerateResult> Engine::Impl::submit(const std::string& prompt,
                                                 const GenerateOptions& options,
                                                 TokenCallback on_piece) {
  auto request = std::make_unique<engine::Request>();
  request->submitted = engine::Clock::now();
  if (options.max_tokens < 0) {
    throw Error("GenerateOptions: max_tokens must be >= 0, found " +
                std::to_string(options.max_tokens));
  }
  model::SamplerParams& sp = request->sampling;
  sp.temperature = options.temperature;
  sp.top_k = options.top_k;
  sp.top_p = options.top_p;
  sp.min_p = options.min_p;
  sp.repeat_penalty = options.repeat_penalty;
  sp.repeat_last_n = options.repeat_last_n;
  sp.seed = options.seed;
  try {
    model::Sampler check(sp, tok->n_vocab());  // validates the parameters
    const std::string text =
        options.chat ? model::apply_chat_template(chat_template, {{"user", prompt}}, true) : prompt;
    request->prompt = tok->encode(text, true, true);
  } catch (...) {
    rethrow_as_error("GenerateOptions");
  }
  const int64_t n = static_cast<int64_t>(request->prompt.size());
  if (n == 0) throw Error("the prompt is empty and the vocabulary adds no BOS token");
  if (n >= session_options.n_ctx) {
    throw Error("the prompt has " + std::to_string(n) + " tokens but the context holds " +
                std::to_string(session_options.n_ctx) + " (EngineConfig::context_size, up to the " +
                "model's " + std::to_string(weights->config().n_ctx_train) + ")");
  }
  request->options = options;
  request->on_piece = std::move(on_piece);
  std::future<GenerateResult> future = request->promise.get_future();
  {
    std::lock_guard lock(mu);
    if (stopping) throw Error("the Engine is being destroyed");
    queue.push_back(std::move(request));
    pending.fetch_add(1);
  }
  cv.notify_one();
  return future;
}

void Engine::Impl::worker_main() {
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<model::BitNetSession> session;
  std::vector<float> logits;
  for (;;) {
    std::unique_ptr<engine::Request> request;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping, and every queued request has been served
      request = std::move(queue.front());
      queue.pop_front();
    }
    serve(*request, pool, session, logits);
  }
}

void Engine::Impl::serve(engine::Request& request, std::unique_ptr<ThreadPool>& pool,
                         std::unique_ptr<model::BitNetSession>& session,
                         std::vector<float>& logits) {
  // Counted before the promise is fulfilled, so a caller back from future.get() sees it in stats().
  auto complete = [&] {
    completed.fetch_add(1);
    pending.fetch_sub(1);
  };
  std::optional<engine::Generation> gen;
  try {
    gen.emplace(*tok, request, session_options.n_ctx, &shutdown);
    if (!gen->cancelled()) {
      if (!session) {
        pool = std::make_unique<ThreadPool>(info.threads_per_request);
        session = std::make_unique<model::BitNetSession>(*weights, session_options, *pool);
        logits.resize(static_cast<size_t>(session->n_vocab()));
        sessions.fetch_add(1);
      }
      session->reset();
      gen->prompt_started();
      session->eval(gen->prompt_tokens(), logits.data(), false);
      gen->prompt_done();
      while (const std::optional<int32_t> next = gen->accept(logits.data(), session->n_past())) {
        session->eval(std::span<const int32_t>(&*next, 1), logits.data(), false);
      }
    }
    GenerateResult result = gen->finish(StopReason::Cancelled);
    complete();
    request.promise.set_value(std::move(result));
  } catch (const engine::CallbackError& e) {
    complete();
    request.promise.set_exception(e.error);  // the caller's own exception, unchanged
  } catch (...) {
    complete();
    request.promise.set_exception(as_error(std::current_exception(), "generating"));
  }
}

Engine::Engine(const std::string& model_path, const EngineConfig& config)
    : impl_(std::make_unique<Impl>(model_path, config)) {}

Engine::~Engine() = default;

GenerateResult Engine::generate(const std::string& prompt, const GenerateOptions& options,
                                TokenCallback on_piece) {
  return submit(prompt, options, std::move(on_piece)).get();
}

std::future<GenerateResult> Engine::submit(const std::string& prompt,
                                           const GenerateOptions& options, TokenCallback on_piece) {
  return impl_->submit(prompt, options, std::move(on_piece));
}

const EngineInfo& Engine::info() const {
  return impl_->info;
}

EngineStats Engine::stats() const {
  EngineStats s;
  s.weights_bytes = impl_->weights_bytes;
  s.kv_bytes_per_session = impl_->kv_bytes;
  s.sessions = impl_->sessions.load();
  s.current_bytes = s.weights_bytes + static_cast<uint64_t>(s.sessions) * s.kv_bytes_per_session;
  s.peak_bytes = s.current_bytes;
  s.requests_completed = impl_->completed.load();
  s.requests_pending = impl_->pending.load();
  return s;
}

std::string generate(const std::string& model_path, const std::string& prompt,
                     const GenerateOptions& options, const EngineConfig& config) {
  Engine engine(model_path, config);
  return engine.generate(prompt, options).text;
}

}  // namespace bitnet
