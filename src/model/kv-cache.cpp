#include "model/kv-cache.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "core/fp16.h"

namespace bitnet::model {

KvCache::KvCache(KvType type, int64_t n_layer, int64_t n_ctx, int64_t row_dim)
    : type_(type),
      n_layer_(n_layer),
      n_ctx_(n_ctx),
      row_dim_(row_dim),
      elem_(type == KvType::F16 ? 2 : 4),
      k_(static_cast<size_t>(n_layer * n_ctx * row_dim) * elem_),
      v_(static_cast<size_t>(n_layer * n_ctx * row_dim) * elem_) {}

size_t KvCache::offset(int64_t layer, int64_t pos) const {
  return static_cast<size_t>((layer * n_ctx_ + pos) * row_dim_) * elem_;
}

void KvCache::store(int64_t layer, int64_t pos, int64_t n, const float* k, const float* v,
                    int64_t ld) {
  if (pos < 0 || pos + n > n_ctx_) {
    throw std::out_of_range("KV cache: positions " + std::to_string(pos) + ".." +
                            std::to_string(pos + n) + " exceed the context of " +
                            std::to_string(n_ctx_));
  }
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* kd = k_.data() + offset(layer, pos + i);
    uint8_t* vd = v_.data() + offset(layer, pos + i);
    if (type_ == KvType::F32) {
      std::memcpy(kd, k + i * ld, static_cast<size_t>(row_dim_) * 4);
      std::memcpy(vd, v + i * ld, static_cast<size_t>(row_dim_) * 4);
    } else {
      fp32_to_fp16_row(k + i * ld, reinterpret_cast<uint16_t*>(kd), static_cast<size_t>(row_dim_));
      fp32_to_fp16_row(v + i * ld, reinterpret_cast<uint16_t*>(vd), static_cast<size_t>(row_dim_));
    }
  }
}

void KvCache::load(const AlignedBuffer<uint8_t>& buf, int64_t layer, int64_t pos, int64_t off,
                   int64_t len, float* out) const {
  const uint8_t* p = buf.data() + offset(layer, pos) + static_cast<size_t>(off) * elem_;
  if (type_ == KvType::F32) {
    std::memcpy(out, p, static_cast<size_t>(len) * 4);
  } else {
    fp16_to_fp32_row(reinterpret_cast<const uint16_t*>(p), out, static_cast<size_t>(len));
  }
}

void KvCache::load_k(int64_t layer, int64_t pos, int64_t off, int64_t len, float* out) const {
  load(k_, layer, pos, off, len, out);
}
void KvCache::load_v(int64_t layer, int64_t pos, int64_t off, int64_t len, float* out) const {
  load(v_, layer, pos, off, len, out);
}

const float* KvCache::k_f32(int64_t layer, int64_t pos) const {
  return type_ == KvType::F32 ? reinterpret_cast<const float*>(k_.data() + offset(layer, pos))
                              : nullptr;
}
const float* KvCache::v_f32(int64_t layer, int64_t pos) const {
  return type_ == KvType::F32 ? reinterpret_cast<const float*>(v_.data() + offset(layer, pos))
                              : nullptr;
}

}  // namespace bitnet::model

namespace bitnet::model {

const uint16_t* KvCache::k_f16(int64_t layer, int64_t pos) const {
  return type_ == KvType::F16 ? reinterpret_cast<const uint16_t*>(k_.data() + offset(layer, pos))
                              : nullptr;
}
const uint16_t* KvCache::v_f16(int64_t layer, int64_t pos) const {
  return type_ == KvType::F16 ? reinterpret_cast<const uint16_t*>(v_.data() + offset(layer, pos))
                              : nullptr;
}

}  // namespace bitnet::model
