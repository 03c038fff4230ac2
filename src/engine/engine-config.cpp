#include "engine/engine-config.h"

#include <algorithm>
#include <string>

#include "core/memory.h"
#include "core/thread-pool.h"
#include "model/kv-cache.h"

namespace bitnet::engine {

void validate_config(const EngineConfig& c) {
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

model::LoadOptions load_options(const EngineConfig& c) {
  model::LoadOptions o;
  if (c.layout == WeightLayout::T1) o.layout = kernels::TernaryLayout::T1;
  if (c.layout == WeightLayout::T2) o.layout = kernels::TernaryLayout::T2;
  o.cache = c.prepared_cache == PreparedCache::On    ? model::CacheMode::On
            : c.prepared_cache == PreparedCache::Off ? model::CacheMode::Off
                                                     : model::CacheMode::Auto;
  o.cache_dir = c.cache_dir;
  o.threads = c.threads;
  o.int8_head = c.int8_lm_head && c.quantize_activations;
  o.on_pack_progress = c.on_pack_progress;
  return o;
}

ResolvedConfig resolve_config(const EngineConfig& config, const model::ModelConfig& m) {
  ResolvedConfig r;
  model::SessionOptions& bo = r.batch;
  bo.max_sequences = config.max_concurrent_requests;
  bo.n_ctx = config.context_size > 0 ? std::min(config.context_size, m.n_ctx_train) : m.n_ctx_train;
  bo.kv = config.kv_type == KvCacheType::F32 ? model::KvType::F32 : model::KvType::F16;
  bo.max_batch_tokens = config.max_batch_tokens;
  bo.quantize_activations = config.quantize_activations;
  bo.fused_norm_quant = config.fused_norm_quant && config.quantize_activations;
  r.threads = resolve_threads(config.threads);
  r.kv_page_bytes = model::KvPagePool::page_bytes(bo.kv, m.n_layer, m.n_embd_kv(), bo.kv_page_size);
  const int64_t pages_per_request = model::KvPagePool::pages_for(bo.n_ctx, bo.kv_page_size);
  bo.kv_pages = config.kv_cache_bytes > 0
                    ? static_cast<int64_t>(config.kv_cache_bytes / r.kv_page_bytes)
                    : pages_per_request * bo.max_sequences;
  if (bo.kv_pages < 1) {
    throw Error("EngineConfig: kv_cache_bytes (" + std::to_string(config.kv_cache_bytes) +
                ") is less than one KV page of " + std::to_string(bo.kv_page_size) +
                " positions (" + std::to_string(r.kv_page_bytes) + " bytes for this model)");
  }
  // The pool is allocated with the first request; a budget this machine cannot hold is refused
  // now, with the numbers, rather than failing then.
  try {
    check_fits_in_memory(r.kv_pool_bytes(),
                         "the KV cache (" + std::to_string(bo.kv_pages) + " pages of " +
                             std::to_string(bo.kv_page_size) + " positions: context_size " +
                             std::to_string(bo.n_ctx) + " x max_concurrent_requests " +
                             std::to_string(bo.max_sequences) + ", or kv_cache_bytes)");
  } catch (const std::exception& e) {
    throw Error(std::string("EngineConfig: ") + e.what());
  }
  return r;
}

}  // namespace bitnet::engine
