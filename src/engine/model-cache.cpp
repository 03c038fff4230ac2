#include "engine/model-cache.h"

#include <filesystem>
#include <stdexcept>

#include "convert/hf-convert.h"
#include "kernels/ternary-matmul.h"

namespace bitnet::engine {
namespace {

// Everything in LoadOptions but the load-time thread count changes what is loaded or where it
// comes from, so all of that is keyed.
std::string cache_key(const std::string& canonical, const model::LoadOptions& o) {
  std::string key = canonical;
  key += "\nlayout=";
  key += o.layout ? kernels::layout_name(*o.layout) : "auto";
  key += " cache=" + std::to_string(static_cast<int>(o.cache));
  key += " min=" + std::to_string(o.cache_min_bytes);
  key += " mmap=" + std::to_string(o.mmap_threshold);
  key += " dir=" + o.cache_dir;
  key += o.int8_head ? " head=int8" : " head=file";
  return key;
}

}  // namespace

uint64_t weights_bytes(const model::ModelWeights& w) {
  uint64_t total = w.file().file_size();
  for (const model::PackedLinear* l : w.linears()) {
    const uint64_t groups = static_cast<uint64_t>(l->view.groups());
    total += groups * l->view.group_bytes + groups * kernels::kGroupRows * sizeof(float);
  }
  total += w.int8_head_bytes();
  return total;
}

bool WeightsLru::held_elsewhere(const Entry& e) {
  // Under mu_, no new holder can appear except through acquire(); a stale count > 1 only makes
  // eviction more conservative.
  return e.weights.get().use_count() > 1;
}

WeightsPtr WeightsLru::acquire(const std::string& path, const model::LoadOptions& options) {
  std::error_code ec;
  const std::filesystem::path canonical = std::filesystem::canonical(path, ec);
  if (ec) throw std::invalid_argument(path + ": cannot open the model (" + ec.message() + ")");
  const std::string key = cache_key(canonical.string(), options);

  std::promise<WeightsPtr> promise;
  {
    std::unique_lock lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      Entry& e = it->second;
      if (e.ready) {
        ++counters_.hits;
        lru_.splice(lru_.begin(), lru_, e.lru);
        return e.weights.get();
      }
      ++counters_.coalesced;
      std::shared_future<WeightsPtr> pending = e.weights;
      lock.unlock();
      return pending.get();  // rethrows the loader's exception
    }
    ++counters_.misses;
    entries_[key].weights = promise.get_future().share();
  }

  WeightsPtr loaded;
  try {
    loaded = model::load_weights(canonical.string(), options);
  } catch (...) {
    {
      std::lock_guard lock(mu_);
      entries_.erase(key);
    }
    promise.set_exception(std::current_exception());
    throw;
  }
  const uint64_t bytes = weights_bytes(*loaded);
  promise.set_value(loaded);
  std::lock_guard lock(mu_);
  Entry& e = entries_.at(key);
  e.ready = true;
  e.bytes = bytes;
  lru_.push_front(key);
  e.lru = lru_.begin();
  bytes_ += bytes;
  trim_locked();  // `loaded` is held here, so this entry stays
  return loaded;
}

void WeightsLru::trim_locked() {
  for (auto it = lru_.end(); bytes_ > budget_ && it != lru_.begin();) {
    --it;
    auto entry = entries_.find(*it);
    if (held_elsewhere(entry->second)) continue;
    bytes_ -= entry->second.bytes;
    ++counters_.evictions;
    entries_.erase(entry);
    it = lru_.erase(it);
  }
}

void WeightsLru::trim() {
  std::lock_guard lock(mu_);
  trim_locked();
}

void WeightsLru::set_budget(uint64_t budget_bytes) {
  std::lock_guard lock(mu_);
  budget_ = budget_bytes;
  trim_locked();
}

void WeightsLru::clear() {
  std::lock_guard lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto entry = entries_.find(*it);
    if (held_elsewhere(entry->second)) {
      ++it;
      continue;
    }
    bytes_ -= entry->second.bytes;
    entries_.erase(entry);
    it = lru_.erase(it);
  }
}

ModelCacheStats WeightsLru::stats() const {
  std::lock_guard lock(mu_);
  ModelCacheStats s = counters_;
  s.entries = lru_.size();
  s.bytes = bytes_;
  s.budget_bytes = budget_;
  return s;
}

}  // namespace bitnet::engine

namespace bitnet {

ModelCache::ModelCache(uint64_t budget_bytes) : impl_(std::make_shared<Impl>(budget_bytes)) {}
ModelCache::~ModelCache() = default;

ModelCache& ModelCache::global() {
  static ModelCache cache;
  return cache;
}

ModelCacheStats ModelCache::stats() const {
  return impl_->cache.stats();
}
void ModelCache::set_budget(uint64_t budget_bytes) {
  impl_->cache.set_budget(budget_bytes);
}
void ModelCache::clear() {
  impl_->cache.clear();
}

}  // namespace bitnet
