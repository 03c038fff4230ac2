// Key/value cache for every layer, allocated once for the whole context (no allocation while
// decoding). Rows are [n_embd_kv] per position; F16 halves the memory, F32 is exact.
#pragma once

#include <cstdint>
#include <vector>

#include "core/aligned-buffer.h"

namespace bitnet::model {

enum class KvType { F16, F32 };

class KvCache {
 public:
  KvCache(KvType type, int64_t n_layer, int64_t n_ctx, int64_t row_dim);

  KvType type() const { return type_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t row_dim() const { return row_dim_; }
  size_t bytes() const { return k_.size() + v_.size(); }

  // Stores n consecutive rows (stride row_dim) for positions [pos, pos + n) of layer l.
  void store(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v, int64_t ld);
  // Reads elements [off, off + len) of position pos of layer l into out (from F16 when needed).
  void load_k(int64_t layer, int64_t pos, int64_t off, int64_t len, float* out) const;
  void load_v(int64_t layer, int64_t pos, int64_t off, int64_t len, float* out) const;
  // Direct F16 rows (only when type() == F16).
  const uint16_t* k_f16(int64_t layer, int64_t pos) const;
  const uint16_t* v_f16(int64_t layer, int64_t pos) const;
  // Direct F32 rows (only when type() == F32).
  const float* k_f32(int64_t layer, int64_t pos) const;
  const float* v_f32(int64_t layer, int64_t pos) const;

 private:
  size_t offset(int64_t layer, int64_t pos) const;
  void load(const AlignedBuffer<uint8_t>& buf, int64_t layer, int64_t pos, int64_t off, int64_t len,
            float* out) const;

  KvType type_;
  int64_t n_layer_, n_ctx_, row_dim_;
  size_t elem_;
  AlignedBuffer<uint8_t> k_, v_;
};

}  // namespace bitnet::model
