// A process-wide (or caller-owned) cache of loaded models, shared by Engines.
//
// Entries are keyed by the model's canonical path and the load options that change the loaded
// weights (layout, prepared-cache mode and directory). Engines that ask for the same key share one
// copy of the weights. Loading happens outside the cache's lock; concurrent requests for a key that
// is being loaded wait for that one load instead of starting another ("coalesced").
//
// Budget and eviction: the cache counts the bytes of every model it holds (the model file's bytes
// plus its packed ternary matrices). When the total exceeds the budget, it drops the least recently
// used models that no Engine holds. A model an Engine holds is never evicted: dropping it would
// free nothing, and the next load of the same key would make a second copy. The total can
// therefore exceed the budget while Engines hold more than it; it falls back under it as they are
// destroyed (the cache trims itself then, and on every acquisition).
//
// Thread-safe. Include only the standard library (this header and its type are public).
#pragma once

#include <cstdint>
#include <memory>

namespace bitnet {

namespace detail {
struct ModelCacheAccess;
}

struct ModelCacheStats {
  uint64_t hits = 0;       // acquisitions served by a loaded model
  uint64_t misses = 0;     // acquisitions that loaded the model
  uint64_t coalesced = 0;  // acquisitions that waited for another thread's load of the same key
  uint64_t evictions = 0;  // models dropped to get under the budget
  uint64_t entries = 0;    // models held now
  uint64_t bytes = 0;      // their total size
  uint64_t budget_bytes = 0;
};

class ModelCache {
 public:
  static constexpr uint64_t kDefaultBudgetBytes = uint64_t{8} << 30;  // 8 GiB

  explicit ModelCache(uint64_t budget_bytes = kDefaultBudgetBytes);
  ~ModelCache();
  ModelCache(const ModelCache&) = delete;
  ModelCache& operator=(const ModelCache&) = delete;

  // The cache used by Engines whose EngineConfig names none, and by bitnet::generate().
  static ModelCache& global();

  ModelCacheStats stats() const;
  // Applies the new budget at once (evicting unheld models if needed).
  void set_budget(uint64_t budget_bytes);
  // Drops every model no Engine holds.
  void clear();

 private:
  friend struct detail::ModelCacheAccess;
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared: Engines keep the cache alive while they hold weights
};

}  // namespace bitnet
