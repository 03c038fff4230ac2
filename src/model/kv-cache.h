// Key/value cache in pages. A KvPagePool holds fixed-size pages, each with page_size positions of
// every layer's K and V rows ([n_embd_kv] per position; F16 halves the memory, F32 is exact). A
// KvCache is one sequence's view: a page table filled as positions are stored, so a sequence uses
// memory for the positions it has, not for its whole context, and many sequences share one pool
// (model::Session's slots; the Engine's memory budget is a number of pages).
//
// Page layout: [page][layer][page_size][row_dim], K and V in separate arrays, so one position's
// row is contiguous and a page holds a run of positions for every layer.
//
// Reservations: a sequence may reserve pages when it starts (its prompt plus the tokens it may
// generate), so that a scheduler which admitted it can never run out of pages mid-way; free pages
// not covered by a reservation are available() to others. Nothing allocates after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/aligned-buffer.h"

namespace bitnet::model {

enum class KvType { F16, F32 };

class KvPagePool {
 public:
  static constexpr int64_t kDefaultPageSize = 64;

  // Throws std::invalid_argument for non-positive sizes or a page_size that is not a power of 2.
  KvPagePool(KvType type, int64_t n_layer, int64_t row_dim, int64_t page_size, int64_t n_pages);
  KvPagePool(const KvPagePool&) = delete;
  KvPagePool& operator=(const KvPagePool&) = delete;

  KvType type() const { return type_; }
  int64_t n_layer() const { return n_layer_; }
  int64_t row_dim() const { return row_dim_; }
  int64_t page_size() const { return page_size_; }
  int64_t n_pages() const { return n_pages_; }
  // Bytes of one page (K and V) for these sizes: what a KV budget is divided by before a pool
  // exists.
  static size_t page_bytes(KvType type, int64_t n_layer, int64_t row_dim, int64_t page_size) {
    return 2 * static_cast<size_t>(n_layer * page_size * row_dim) * (type == KvType::F16 ? 2 : 4);
  }
  size_t page_bytes() const { return page_bytes(type_, n_layer_, row_dim_, page_size_); }
  size_t bytes() const { return page_bytes() * static_cast<size_t>(n_pages_); }  // K and V
  int64_t pages_in_use() const { return n_pages_ - static_cast<int64_t>(free_.size()); }
  int64_t peak_pages_in_use() const { return peak_; }
  // Free pages not promised to a reservation.
  int64_t available() const { return static_cast<int64_t>(free_.size()) - reserved_; }
  int64_t pages_for(int64_t positions) const { return pages_for(positions, page_size_); }
  // Pages of page_size positions that hold `positions`: the one formula, also before a pool exists.
  static int64_t pages_for(int64_t positions, int64_t page_size) {
    return (positions + page_size - 1) / page_size;
  }

  size_t elem() const { return elem_; }
  uint8_t* k_row(int32_t page, int64_t layer, int64_t in_page) {
    return k_.data() + offset(page, layer, in_page);
  }
  uint8_t* v_row(int32_t page, int64_t layer, int64_t in_page) {
    return v_.data() + offset(page, layer, in_page);
  }
  const uint8_t* k_row(int32_t page, int64_t layer, int64_t in_page) const {
    return k_.data() + offset(page, layer, in_page);
  }
  const uint8_t* v_row(int32_t page, int64_t layer, int64_t in_page) const {
    return v_.data() + offset(page, layer, in_page);
  }

 private:
  friend class KvCache;
  size_t offset(int32_t page, int64_t layer, int64_t in_page) const {
    return static_cast<size_t>(((page * n_layer_ + layer) * page_size_ + in_page) * row_dim_) *
           elem_;
  }
  // A page from the free list; reserved: it comes out of the caller's reservation. -1 when none.
  int32_t acquire(bool reserved);
  void release(int32_t page);

  KvType type_;
  int64_t n_layer_, row_dim_, page_size_, n_pages_;
  size_t elem_;
  AlignedBuffer<uint8_t> k_, v_;
  std::vector<int32_t> free_;  // stack of free pages, capacity n_pages
  int64_t reserved_ = 0;       // free pages promised to reservations
  int64_t peak_ = 0;
};

class KvCache {
 public:
  // A private pool sized for n_ctx positions (one sequence, on its own).
  KvCache(KvType type, int64_t n_layer, int64_t n_ctx, int64_t row_dim,
          int64_t page_size = KvPagePool::kDefaultPageSize);
  // A sequence of up to n_ctx positions in a shared pool, which must outlive it. Holds no page
  // until positions are stored.
  KvCache(KvPagePool& pool, int64_t n_ctx);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
  KvCache(KvCache&& other) noexcept;
  KvCache& operator=(KvCache&&) = delete;

  KvType type() const { return pool_->type(); }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t row_dim() const { return pool_->row_dim(); }
  const KvPagePool& pool() const { return *pool_; }
  // Bytes of the pages this sequence holds (a private pool: all of it).
  size_t bytes() const;
  int64_t pages() const { return static_cast<int64_t>(table_.size()); }
  int64_t reservation() const { return reservation_; }  // pages still promised to it

  // Reserves pages for positions [0, positions): later stores take them first. Returns false (and
  // reserves nothing) when the pool has fewer available pages than needed.
  bool reserve(int64_t positions);
  // Pages needed beyond those held to store up to `positions`, not counting the reservation.
  int64_t pages_needed(int64_t positions) const;
  // Gives every page and the reservation back to the pool.
  void clear();
  // Keeps positions [0, positions) and gives the pages past them back to the pool (the reservation
  // stays as it is).
  void truncate(int64_t positions);
  // Gives the reservation back to the pool (the pages held stay).
  void release_reservation();

  // Stores n consecutive rows (stride ld) for positions [pos, pos + n) of layer l. Throws
  // std::out_of_range past n_ctx or when the pool has no page left (nothing is stored then).
  void store(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v, int64_t ld);
  // Reads elements [off, off + len) of position pos of layer l into out (from F16 when needed).
  void load_k(int64_t layer, int64_t pos, int64_t off, int64_t len, float* out) const;
  void load_v(int64_t layer, int64_t pos, int64_t off, int64_t len, float* out) const;
  // Direct rows of a stored position: F16 ones only when type() == F16, F32 only when F32
  // (nullptr otherwise).
  const uint16_t* k_f16(int64_t layer, int64_t pos) const;
  const uint16_t* v_f16(int64_t layer, int64_t pos) const;
  const float* k_f32(int64_t layer, int64_t pos) const;
  const float* v_f32(int64_t layer, int64_t pos) const;

 private:
  const uint8_t* k_at(int64_t layer, int64_t pos) const {
    return pool_->k_row(table_[static_cast<size_t>(pos >> shift_)], layer, pos & (page_ - 1));
  }
  const uint8_t* v_at(int64_t layer, int64_t pos) const {
    return pool_->v_row(table_[static_cast<size_t>(pos >> shift_)], layer, pos & (page_ - 1));
  }

  std::unique_ptr<KvPagePool> own_;  // the private pool, or null
  KvPagePool* pool_;
  int64_t n_ctx_, page_;
  int shift_;                   // log2(page_): the attention loop looks rows up without a division
  std::vector<int32_t> table_;  // page of positions [i * page, (i + 1) * page); capacity reserved
  int64_t reservation_ = 0;     // pages still promised to this sequence
};

}  // namespace bitnet::model
