#include "model/kv-cache.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/fp16.h"
#include "core/memory.h"

namespace bitnet::model {

KvPagePool::KvPagePool(KvType type, int64_t n_layer, int64_t row_dim, int64_t page_size,
                       int64_t n_pages)
    : type_(type),
      n_layer_(n_layer),
      row_dim_(row_dim),
      page_size_(page_size),
      n_pages_(n_pages),
      elem_(type == KvType::F16 ? 2 : 4) {
  if (n_layer < 1 || row_dim < 1 || page_size < 1 || n_pages < 1 || n_pages > INT32_MAX ||
      !std::has_single_bit(static_cast<uint64_t>(page_size))) {
    throw std::invalid_argument("KV page pool: n_layer (" + std::to_string(n_layer) +
                                "), row_dim (" + std::to_string(row_dim) + "), page_size (" +
                                std::to_string(page_size) + ", a power of 2) and n_pages (" +
                                std::to_string(n_pages) + ") must be positive");
  }
  // Uninitialized: a row is always stored before it is read, and pages never touched (a large
  // budget, short requests) then take no resident memory.
  const size_t half = page_bytes() / 2 * static_cast<size_t>(n_pages);
  check_fits_in_memory(2 * static_cast<uint64_t>(half),
                       "the KV cache (" + std::to_string(n_pages) + " pages of " +
                           std::to_string(page_size) + " positions, " + std::to_string(n_layer) +
                           " layers of " + std::to_string(row_dim) +
                           " keys and values); use a smaller context");
  k_ = AlignedBuffer<uint8_t>(half, AlignedBuffer<uint8_t>::Uninitialized{});
  v_ = AlignedBuffer<uint8_t>(half, AlignedBuffer<uint8_t>::Uninitialized{});
  free_.reserve(static_cast<size_t>(n_pages));
  // Popped from the back: page 0 first, so a lone sequence's pages are in address order.
  for (int64_t p = n_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

int32_t KvPagePool::acquire(bool reserved) {
  if (free_.empty() || (!reserved && available() <= 0)) return -1;
  const int32_t page = free_.back();
  free_.pop_back();
  if (reserved) --reserved_;
  peak_ = std::max(peak_, pages_in_use());
  return page;
}

void KvPagePool::release(int32_t page) {
  free_.push_back(page);
}

KvCache::KvCache(KvType type, int64_t n_layer, int64_t n_ctx, int64_t row_dim, int64_t page_size)
    : own_(std::make_unique<KvPagePool>(
          type, n_layer, row_dim, page_size,
          std::max<int64_t>(1, KvPagePool::pages_for(n_ctx, page_size)))),
      pool_(own_.get()),
      n_ctx_(n_ctx),
      page_(page_size),
      shift_(std::countr_zero(static_cast<uint64_t>(page_size))) {
  table_.reserve(static_cast<size_t>(pool_->pages_for(n_ctx_)));
}

KvCache::KvCache(KvPagePool& pool, int64_t n_ctx)
    : pool_(&pool),
      n_ctx_(n_ctx),
      page_(pool.page_size()),
      shift_(std::countr_zero(static_cast<uint64_t>(page_))) {
  table_.reserve(static_cast<size_t>(pool_->pages_for(n_ctx_)));
}

KvCache::KvCache(KvCache&& o) noexcept
    : own_(std::move(o.own_)),
      pool_(o.pool_),
      n_ctx_(o.n_ctx_),
      page_(o.page_),
      shift_(o.shift_),
      table_(std::move(o.table_)),
      reservation_(o.reservation_) {
  o.table_.clear();
  o.reservation_ = 0;
}

KvCache::~KvCache() {
  if (!own_) clear();
}

size_t KvCache::bytes() const {
  if (own_) return own_->bytes();
  return pool_->page_bytes() * table_.size();
}

bool KvCache::reserve(int64_t positions) {
  const int64_t want = pool_->pages_for(std::min(positions, n_ctx_)) - pages() - reservation_;
  if (want <= 0) return true;
  if (want > pool_->available()) return false;
  pool_->reserved_ += want;
  reservation_ += want;
  return true;
}

int64_t KvCache::pages_needed(int64_t positions) const {
  return std::max<int64_t>(0, pool_->pages_for(positions) - pages());
}

void KvCache::clear() {
  for (int32_t p : table_) pool_->release(p);
  table_.clear();
  pool_->reserved_ -= reservation_;
  reservation_ = 0;
}

void KvCache::truncate(int64_t positions) {
  const auto keep = static_cast<size_t>(pool_->pages_for(std::max<int64_t>(positions, 0)));
  while (table_.size() > keep) {
    pool_->release(table_.back());
    table_.pop_back();
  }
}

void KvCache::release_reservation() {
  pool_->reserved_ -= reservation_;
  reservation_ = 0;
}

void KvCache::store(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v,
                    int64_t ld) {
  if (pos < 0 || pos + n > n_ctx_) {
    throw std::out_of_range("KV cache: positions " + std::to_string(pos) + ".." +
                            std::to_string(pos + n) + " exceed the context of " +
                            std::to_string(n_ctx_));
  }
  const int64_t need = pages_needed(pos + n);
  if (need > reservation_ + pool_->available()) {
    throw std::out_of_range("KV cache: " + std::to_string(need) + " more pages of " +
                            std::to_string(page_) + " positions are needed but the pool has " +
                            std::to_string(pool_->available()) + " free");
  }
  for (int64_t i = 0; i < need; ++i) {
    const bool from_reservation = reservation_ > 0;
    table_.push_back(pool_->acquire(from_reservation));
    if (from_reservation) --reservation_;
  }
  const size_t elem = pool_->elem();
  const int64_t dim = row_dim();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = pos + i;
    const int32_t page = table_[static_cast<size_t>(p >> shift_)];
    uint8_t* kd = pool_->k_row(page, layer, p & (page_ - 1));
    uint8_t* vd = pool_->v_row(page, layer, p & (page_ - 1));
    if (type() == KvType::F32) {
      std::memcpy(kd, k + i * ld, static_cast<size_t>(dim) * elem);
      std::memcpy(vd, v + i * ld, static_cast<size_t>(dim) * elem);
    } else {
      fp32_to_fp16_row(k + i * ld, reinterpret_cast<uint16_t*>(kd), static_cast<size_t>(dim));
      fp32_to_fp16_row(v + i * ld, reinterpret_cast<uint16_t*>(vd), static_cast<size_t>(dim));
    }
  }
}

namespace {

void load_row(const uint8_t* row, KvType type, int64_t off, int64_t len, float* out) {
  if (type == KvType::F32) {
    std::memcpy(out, row + static_cast<size_t>(off) * 4, static_cast<size_t>(len) * 4);
  } else {
    fp16_to_fp32_row(reinterpret_cast<const uint16_t*>(row) + off, out, static_cast<size_t>(len));
  }
}

}  // namespace

void KvCache::load_k(int64_t layer, int64_t pos, int64_t off, int64_t len, float* out) const {
  load_row(k_at(layer, pos), type(), off, len, out);
}
void KvCache::load_v(int64_t layer, int64_t pos, int64_t off, int64_t len, float* out) const {
  load_row(v_at(layer, pos), type(), off, len, out);
}

const uint16_t* KvCache::k_f16(int64_t layer, int64_t pos) const {
  return type() == KvType::F16 ? reinterpret_cast<const uint16_t*>(k_at(layer, pos)) : nullptr;
}
const uint16_t* KvCache::v_f16(int64_t layer, int64_t pos) const {
  return type() == KvType::F16 ? reinterpret_cast<const uint16_t*>(v_at(layer, pos)) : nullptr;
}
const float* KvCache::k_f32(int64_t layer, int64_t pos) const {
  return type() == KvType::F32 ? reinterpret_cast<const float*>(k_at(layer, pos)) : nullptr;
}
const float* KvCache::v_f32(int64_t layer, int64_t pos) const {
  return type() == KvType::F32 ? reinterpret_cast<const float*>(v_at(layer, pos)) : nullptr;
}

}  // namespace bitnet::model
