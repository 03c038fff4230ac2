// The Engine's configuration resolved against its model, once: every decision EngineConfig leaves
// open (the context, the threads, the KV pages, the session's modes) is taken here and nowhere
// else, and what was decided is what EngineInfo reports.
#pragma once

#include <cstdint>

#include "bitnet/engine.h"
#include "model/model-config.h"
#include "model/model-weights.h"
#include "model/session.h"

namespace bitnet::engine {

// Throws bitnet::Error ("EngineConfig: ...") naming a field out of range.
void validate_config(const EngineConfig& config);

// What the model cache loads with (layout, prepared cache, directories, load threads).
model::LoadOptions load_options(const EngineConfig& config);

struct ResolvedConfig {
  model::SessionOptions batch;  // sequences, context, KV type and pages, step tokens, modes
  int threads = 0;              // compute threads of the step (0 resolved to the cores)
  uint64_t kv_page_bytes = 0;   // one page of kv_page_size positions, all layers, K and V
  uint64_t kv_pool_bytes() const { return kv_page_bytes * static_cast<uint64_t>(batch.kv_pages); }
};

// context_size 0 or above the model's -> the model's; threads 0 -> all cores; kv_cache_bytes 0 ->
// max_concurrent_requests whole contexts. Throws bitnet::Error for a budget below one page or
// above this machine's memory.
ResolvedConfig resolve_config(const EngineConfig& config, const model::ModelConfig& model);

}  // namespace bitnet::engine
