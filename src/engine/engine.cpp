// bitnet::Engine: the public API over three parts, each decided once - the configuration resolved
// against the model (engine-config.h), requests validated and tokenized before they are queued
// (request-builder.h), and the scheduler that serves them by continuous batching with a prefix
// cache (scheduler.h) - on weights shared through the model cache.
#include <algorithm>
#include <optional>
#include <string>

#include "bitnet/engine.h"
#include "core/perf-monitor.h"
#include "engine/engine-config.h"
#include "engine/model-cache.h"
#include "engine/request-builder.h"
#include "engine/scheduler.h"
#include "kernels/ternary-matmul.h"
#include "model/model-validate.h"
#include "tokenizer/chat-template.h"

namespace bitnet {
namespace {

using engine::as_error;

[[noreturn]] void rethrow_as_error(const std::string& context) {
  std::rethrow_exception(as_error(std::current_exception(), context));
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
  Impl(const std::string& path, const EngineConfig& config);
  ~Impl();

  EngineConfig config;
  std::shared_ptr<detail::ModelCacheAccess::Impl> cache;
  engine::WeightsPtr weights;
  std::optional<model::Tokenizer> tok;
  model::ChatTemplate chat_template = model::ChatTemplate::Plain;
  engine::ResolvedConfig resolved;
  EngineInfo info;
  uint64_t weights_bytes = 0;
  std::optional<engine::RequestBuilder> builder;
  std::unique_ptr<engine::Scheduler> scheduler;
};

Engine::Impl::Impl(const std::string& path, const EngineConfig& cfg) : config(cfg) {
  engine::validate_config(config);
  ModelCache& mc = config.model_cache ? *config.model_cache : ModelCache::global();
  cache = detail::ModelCacheAccess::impl(mc);
  try {
    weights = cache->cache.acquire(path, engine::load_options(config));
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
  resolved = engine::resolve_config(config, mcfg);
  const model::SessionOptions& bo = resolved.batch;

  info.model_path = path;
  info.architecture = model::arch_name(mcfg.arch);
  info.n_vocab = mcfg.n_vocab;
  info.context_size = bo.n_ctx;
  info.trained_context = mcfg.n_ctx_train;
  info.threads = resolved.threads;
  info.max_concurrent_requests = config.max_concurrent_requests;
  info.max_batch_tokens = bo.max_batch_tokens;
  info.kv_cache_bytes = resolved.kv_pool_bytes();
  info.kv_page_positions = bo.kv_page_size;
  info.kv_type = config.kv_type;
  info.layout = kernels::layout_name(weights->layout());
  info.kernels = kernels::isa_name(kernels::active_kernels().isa);
  info.lm_head = model::lm_head_name(*weights);
  info.weights_source = source_name(weights->report().source);
  info.load_seconds = weights->report().seconds;
  info.weights_note = weights->report().cache_reason;
  info.chat_template = model::chat_template_name(tmpl.tmpl);
  info.chat_template_note = tmpl.note;
  weights_bytes = engine::weights_bytes(*weights);

  scheduler = std::make_unique<engine::Scheduler>(*weights, *tok, resolved, config.prefix_cache);
  engine::Scheduler* sched = scheduler.get();
  builder.emplace(*tok, chat_template, resolved, mcfg.n_ctx_train,
                  [sched](int64_t ticks) { sched->record(model::PerfOp::Tokenize, ticks); });
}

Engine::Impl::~Impl() {
  scheduler.reset();  // pending requests complete as cancelled, running ones stop
  weights.reset();
  cache->cache.trim();
}

Engine::Engine(const std::string& model_path, const EngineConfig& config)
    : impl_(std::make_unique<Impl>(model_path, config)) {}

Engine::~Engine() = default;

GenerateResult Engine::generate(const std::string& prompt, const GenerateOptions& options,
                                TokenCallback on_piece) {
  return impl_->scheduler->run(impl_->builder->build(prompt, options, std::move(on_piece)));
}

GenerateResult Engine::generate(TokenPrompt prompt, const GenerateOptions& options,
                                TokenCallback on_piece) {
  return impl_->scheduler->run(
      impl_->builder->build(std::move(prompt), options, std::move(on_piece)));
}

std::future<GenerateResult> Engine::submit(const std::string& prompt,
                                           const GenerateOptions& options, TokenCallback on_piece) {
  auto request = impl_->builder->build(prompt, options, std::move(on_piece));
  std::future<GenerateResult> future = request->promise.get_future();
  impl_->scheduler->enqueue(std::move(request));
  return future;
}

void Engine::submit(const std::string& prompt, const GenerateOptions& options,
                    TokenCallback on_piece, CompletionCallback on_done) {
  if (!on_done) throw Error("Engine::submit: the completion callback is empty");
  auto request = impl_->builder->build(prompt, options, std::move(on_piece));
  request->on_done = std::move(on_done);
  impl_->scheduler->enqueue(std::move(request));
}

std::future<GenerateResult> Engine::submit(TokenPrompt prompt, const GenerateOptions& options,
                                           TokenCallback on_piece) {
  auto request = impl_->builder->build(std::move(prompt), options, std::move(on_piece));
  std::future<GenerateResult> future = request->promise.get_future();
  impl_->scheduler->enqueue(std::move(request));
  return future;
}

void Engine::submit(TokenPrompt prompt, const GenerateOptions& options, TokenCallback on_piece,
                    CompletionCallback on_done) {
  if (!on_done) throw Error("Engine::submit: the completion callback is empty");
  auto request = impl_->builder->build(std::move(prompt), options, std::move(on_piece));
  request->on_done = std::move(on_done);
  impl_->scheduler->enqueue(std::move(request));
}

std::vector<int32_t> Engine::tokenize(std::string_view text, bool add_special,
                                      bool parse_special) const {
  return impl_->builder->tokenize(text, add_special, parse_special);
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
  const engine::SchedulerStats ss = impl_->scheduler->stats();
  EngineStats s;
  s.weights_bytes = impl_->weights_bytes;
  s.kv_pool_bytes = ss.kv_pool_bytes;
  s.kv_bytes_in_use = ss.kv_page_bytes * static_cast<uint64_t>(ss.kv_pages_in_use);
  s.kv_peak_bytes = ss.kv_page_bytes * static_cast<uint64_t>(ss.kv_pages_peak);
  s.kv_pages_total = static_cast<uint64_t>(ss.kv_pages_total);
  s.kv_pages_in_use = static_cast<uint64_t>(ss.kv_pages_in_use);
  s.kv_pages_peak = static_cast<uint64_t>(ss.kv_pages_peak);
  s.kv_pages_cached = static_cast<uint64_t>(ss.kv_pages_cached);
  const int64_t capacity = ss.kv_pages_in_use * impl_->resolved.batch.kv_page_size;
  s.kv_fragmentation =
      capacity > 0 ? 1.0 - static_cast<double>(ss.positions_stored) / static_cast<double>(capacity)
                   : 0.0;
  s.activation_bytes = ss.activation_bytes;
  s.steps = ss.steps;
  s.step_tokens = ss.step_tokens;
  s.prefix_cache_hits = ss.prefix_hits;
  s.prefix_tokens_reused = ss.prefix_tokens;
  s.current_bytes = s.weights_bytes + s.activation_bytes + s.kv_bytes_in_use;
  s.peak_bytes = s.weights_bytes + s.activation_bytes + s.kv_peak_bytes;
  s.requests_completed = ss.completed;
  s.requests_pending = ss.pending;
  s.requests_running = ss.running;
  s.requests_queued = ss.queued;
  return s;
}

std::string Engine::profile_json(bool series) const {
  return impl_->scheduler->profile_json(series);
}

std::string generate(const std::string& model_path, const std::string& prompt,
                     const GenerateOptions& options, const EngineConfig& config) {
  Engine engine(model_path, config);
  return engine.generate(prompt, options).text;
}

}  // namespace bitnet
