// The LRU cache of loaded models behind bitnet::ModelCache (include/bitnet/model-cache.h, where
// the budget and eviction rules are stated): engine::WeightsLru, which the public class wraps.
//
// Each entry holds a shared_future for its weights: the first acquirer of a key loads outside the
// lock, later acquirers of that key copy the future and wait on it. A load that fails removes its
// entry, and everyone waiting on it gets the exception.
#pragma once

#include <cstdint>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "bitnet/model-cache.h"
#include "model/model-weights.h"

namespace bitnet::engine {

using WeightsPtr = std::shared_ptr<const model::ModelWeights>;

// Bytes a loaded model occupies: the file's bytes (mapped or read; norms and embeddings are used
// in place) plus every packed ternary matrix.
uint64_t weights_bytes(const model::ModelWeights& w);

class WeightsLru {
 public:
  explicit WeightsLru(uint64_t budget_bytes) : budget_(budget_bytes) {}

  // The model at `path` (a GGUF file or a Hugging Face directory) loaded with `options`, from the
  // cache or loaded now. Throws what ModelWeights::load throws, and std::invalid_argument for a
  // path that does not exist.
  WeightsPtr acquire(const std::string& path, const model::LoadOptions& options);

  ModelCacheStats stats() const;
  void set_budget(uint64_t budget_bytes);
  void clear();  // drops every unheld model
  void trim();   // evicts unheld models, least recently used first, until under the budget

 private:
  struct Entry {
    std::shared_future<WeightsPtr> weights;
    bool ready = false;
    uint64_t bytes = 0;
    std::list<std::string>::iterator lru;  // position in lru_ (ready entries only)
  };
  void trim_locked();
  static bool held_elsewhere(const Entry& e);

  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // keys of ready entries, most recently used first
  uint64_t budget_;
  uint64_t bytes_ = 0;
  ModelCacheStats counters_;
};

}  // namespace bitnet::engine

namespace bitnet {

struct ModelCache::Impl {
  explicit Impl(uint64_t budget_bytes) : cache(budget_bytes) {}
  engine::WeightsLru cache;
};

namespace detail {
struct ModelCacheAccess {
  using Impl = ModelCache::Impl;
  static std::shared_ptr<Impl> impl(const ModelCache& c) { return c.impl_; }
};
}  // namespace detail

}  // namespace bitnet
