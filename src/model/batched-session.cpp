#include "model/batched-session.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "model/execution-plan.h"
#include "model/lm-head.h"

namespace bitnet::model {

BatchedSession::BatchedSession(const ModelWeights& weights, const BatchedOptions& options,
                               ThreadPool& pool)
    : w_(weights),
      cfg_(weights.config()),
      opt_(options),
      pool_(pool),
      kt_(kernels::active_kernels()),
      n_ctx_(options.n_ctx > 0 ? options.n_ctx : weights.config().n_ctx_train),
      kv_pool_(options.kv, cfg_.n_layer, cfg_.n_embd_kv(), options.kv_page_size,
               options.kv_pages > 0
                   ? options.kv_pages
                   : std::max<int64_t>(1, options.max_sequences) *
                         KvPagePool::pages_for(std::max<int64_t>(1, n_ctx_),
                                               std::max<int64_t>(1, options.kv_page_size))) {
  if (opt_.max_sequences < 1 || opt_.max_batch_tokens < 1 || n_ctx_ < 1) {
    throw std::invalid_argument("batched session: max_sequences (" +
                                std::to_string(opt_.max_sequences) + "), max_batch_tokens (" +
                                std::to_string(opt_.max_batch_tokens) + ") and n_ctx (" +
                                std::to_string(n_ctx_) + ") must be at least 1");
  }
  const auto S = static_cast<size_t>(opt_.max_sequences);
  kv_.reserve(S);
  for (size_t s = 0; s < S; ++s) kv_.emplace_back(kv_pool_, n_ctx_);
  reserved_.assign(S, 0);
  n_past_.assign(S, 0);
  active_.assign(S, 0);
  step_count_.assign(S, 0);

  const int64_t B = opt_.max_batch_tokens, E = cfg_.n_embd;
  item_slot_.assign(static_cast<size_t>(B), 0);
  item_pos_.assign(static_cast<size_t>(B), 0);
  st_ = ops::StepState(w_, B, opt_.quantize_activations, opt_.fused_norm_quant, pool.size());
  // Per thread: the scores of a group of query heads [group][n_ctx], then an LM-head row.
  scratch_stride_ = (cfg_.n_head / cfg_.n_head_kv * n_ctx_ + E + 15) / 16 * 16;
  thread_scratch_ = AlignedBuffer<float>(static_cast<size_t>(scratch_stride_ * pool.size()));
}

int64_t BatchedSession::positions_stored() const {
  int64_t n = 0;
  for (size_t s = 0; s < active_.size(); ++s) n += active_[s] ? n_past_[s] : 0;
  return n;
}

int64_t BatchedSession::pages_for(int64_t positions) const {
  return kv_pool_.pages_for(std::min(positions, n_ctx_));
}

size_t BatchedSession::activation_bytes() const {
  size_t b = st_.arena.bytes() + thread_scratch_.size() * sizeof(float);
  for (const auto& d : st_.dense.w) b += d.size();
  return b;
}

bool BatchedSession::in_use(int slot) const {
  return slot >= 0 && slot < opt_.max_sequences && active_[static_cast<size_t>(slot)];
}

void BatchedSession::check_slot(int slot, const std::string& what) const {
  if (!in_use(slot)) {
    throw std::invalid_argument(what + ": sequence slot " + std::to_string(slot) +
                                " is not in use (slots 0.." +
                                std::to_string(opt_.max_sequences - 1) + ", from add_sequence)");
  }
}

int BatchedSession::add_sequence(int64_t reserve_positions) {
  for (size_t s = 0; s < active_.size(); ++s) {
    if (!active_[s]) {
      if (!kv_[s].reserve(reserve_positions)) return -1;
      active_[s] = 1;
      n_past_[s] = 0;
      reserved_[s] = reserve_positions;
      ++n_active_;
      return static_cast<int>(s);
    }
  }
  return -1;
}

void BatchedSession::remove_sequence(int slot) {
  check_slot(slot, "remove_sequence");
  const auto s = static_cast<size_t>(slot);
  kv_[s].clear();
  active_[s] = 0;
  n_past_[s] = 0;
  reserved_[s] = 0;
  --n_active_;
}

void BatchedSession::reset_sequence(int slot) {
  check_slot(slot, "reset_sequence");
  const auto s = static_cast<size_t>(slot);
  kv_[s].clear();
  kv_[s].reserve(reserved_[s]);  // cannot fail: clear() just gave at least as many pages back
  n_past_[s] = 0;
}

void BatchedSession::truncate_sequence(int slot, int64_t n) {
  check_slot(slot, "truncate_sequence");
  const auto s = static_cast<size_t>(slot);
  n_past_[s] = std::min(n_past_[s], std::max<int64_t>(n, 0));
  kv_[s].truncate(n_past_[s]);
}

bool BatchedSession::set_reservation(int slot, int64_t positions) {
  check_slot(slot, "set_reservation");
  const auto s = static_cast<size_t>(slot);
  const int64_t old = kv_[s].reservation();
  kv_[s].release_reservation();
  if (positions > 0 && !kv_[s].reserve(positions)) {
    // Back to the reservation it had: the pages just released are free again, so this holds.
    if (old > 0) kv_[s].reserve(reserved_[s]);
    return false;
  }
  reserved_[s] = positions;
  return true;
}

int64_t BatchedSession::pages_held(int slot) const {
  check_slot(slot, "pages_held");
  return kv_[static_cast<size_t>(slot)].pages();
}

int64_t BatchedSession::n_past(int slot) const {
  check_slot(slot, "n_past");
  return n_past_[static_cast<size_t>(slot)];
}

void BatchedSession::attention(int64_t layer, int64_t n) {
  const int64_t E = cfg_.n_embd, KV = cfg_.n_embd_kv(), hd = cfg_.head_dim;
  const int64_t ld = E + 2 * KV;
  const int64_t group = cfg_.n_head / cfg_.n_head_kv;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  // Several rows: the heads sharing a KV head in one item (each cached row serves all of them);
  // one row: one head per item, so that the threads share the heads evenly.
  const int64_t qb = n > 1 ? group : 1, items = cfg_.n_head / qb;
  pool_.parallel_for(n * items, [&](int64_t i0, int64_t i1, int thread) {
    float* scores = thread_scratch_.data() + scratch_stride_ * thread;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / items, h = i % items * qb;
      const KvCache& kv = kv_[static_cast<size_t>(item_slot_[static_cast<size_t>(t)])];
      const int64_t pos = item_pos_[static_cast<size_t>(t)];
      ops::attend_heads(kt_, kv, layer, (h / group) * hd, st_.arena.buffers().qkv + t * ld + h * hd,
                        qb, hd, pos + 1, scale, scores, st_.arena.buffers().attn + t * E + h * hd);
    }
  });
}

void BatchedSession::step(std::span<const BatchItem> items, float* logits) {
  const int64_t n = static_cast<int64_t>(items.size());
  if (n == 0) return;
  if (n > opt_.max_batch_tokens) {
    throw std::invalid_argument(
        "batched step: " + std::to_string(n) +
        " items exceed max_batch_tokens = " + std::to_string(opt_.max_batch_tokens));
  }
  int64_t n_logits = 0;
  std::fill(step_count_.begin(), step_count_.end(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const BatchItem& it = items[static_cast<size_t>(i)];
    if (!in_use(it.slot)) check_slot(it.slot, "batched step, item " + std::to_string(i));
    if (it.token < 0 || it.token >= cfg_.n_vocab) {
      throw std::invalid_argument("batched step, item " + std::to_string(i) + ": token id " +
                                  std::to_string(it.token) + " is outside the vocabulary (" +
                                  std::to_string(cfg_.n_vocab) + " tokens)");
    }
    ++step_count_[static_cast<size_t>(it.slot)];
    n_logits += it.wants_logits ? 1 : 0;
  }
  int64_t unreserved_pages = 0;
  for (size_t s = 0; s < step_count_.size(); ++s) {
    if (step_count_[s] == 0) continue;
    if (n_past_[s] + step_count_[s] > n_ctx_) {
      throw std::out_of_range("batched step: sequence slot " + std::to_string(s) +
                              " would exceed its context of " + std::to_string(n_ctx_) +
                              " tokens: " + std::to_string(n_past_[s]) + " in the cache + " +
                              std::to_string(step_count_[s]) + " new");
    }
    unreserved_pages += std::max<int64_t>(
        0, kv_[s].pages_needed(n_past_[s] + step_count_[s]) - kv_[s].reservation());
  }
  if (unreserved_pages > kv_pool_.available()) {
    throw std::out_of_range("batched step: the KV cache needs " + std::to_string(unreserved_pages) +
                            " more pages beyond the reservations but " +
                            std::to_string(kv_pool_.available()) + " of " +
                            std::to_string(kv_pool_.n_pages()) + " are free");
  }
  if (n_logits > 0 && logits == nullptr) {
    throw std::invalid_argument("batched step: " + std::to_string(n_logits) +
                                " items want logits but no logits buffer was given");
  }

  std::fill(step_count_.begin(), step_count_.end(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const auto slot = static_cast<size_t>(items[static_cast<size_t>(i)].slot);
    item_slot_[static_cast<size_t>(i)] = static_cast<int32_t>(slot);
    item_pos_[static_cast<size_t>(i)] = n_past_[slot] + step_count_[slot]++;
  }

  const int64_t E = cfg_.n_embd, KV = cfg_.n_embd_kv();
  const int64_t ld_qkv = E + 2 * KV;
  const float eps = cfg_.rms_eps;
  {
    PerfScope s(mon_, PerfOp::Embed);
    for (int64_t t = 0; t < n; ++t) {
      ops::embed_row(w_, items[static_cast<size_t>(t)].token, st_.arena.buffers().x + t * E);
    }
  }
  const ops::LayerBuffers& b = st_.arena.buffers();
  std::optional<ops::Fusion> fused = st_.fusion(pool_, kt_);
  {
    PerfScope s(mon_, PerfOp::RopeKv);
    for (int64_t t = 0; t < n; ++t) {
      st_.set_rope(t, item_pos_[static_cast<size_t>(t)]);
    }
  }
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    ops::layer_forward(
        cfg_, w_.layers()[static_cast<size_t>(l)], n, b, mon_, fused ? &*fused : nullptr,
        [&](const PackedLinear& w, int k, const float* in, float* out) {
          if (opt_.quantize_activations) {
            ops::bitlinear_q8(pool_, kt_, w, in, n, st_.arena.q8(), out);
          } else {
            ops::bitlinear_dense(pool_, w, st_.dense.w[static_cast<size_t>(4 * l + k)].data(), in,
                                 n, out);
          }
        },
        [&] {
          {
            PerfScope s(mon_, PerfOp::RopeKv);
            for (int64_t t = 0; t < n; ++t) {
              float* row = st_.arena.buffers().qkv + t * ld_qkv;
              const auto ti = static_cast<size_t>(t);
              ops::rope_qk_row(cfg_, st_.rope(t), row);
              kv_[static_cast<size_t>(item_slot_[ti])].store(l, item_pos_[ti], 1, row + E,
                                                             row + E + KV, ld_qkv);
            }
          }
          PerfScope s(mon_, PerfOp::Attention);
          attention(l, n);
        });
  }

  if (n_logits > 0) {
    {
      PerfScope s(mon_, PerfOp::Norm);
      int64_t r = 0;
      for (int64_t t = 0; t < n; ++t) {
        if (!items[static_cast<size_t>(t)].wants_logits) continue;
        ops::rmsnorm(st_.arena.buffers().x + t * E, w_.output_norm().data(), E, eps,
                     st_.arena.buffers().h + r * E);
        ++r;
      }
    }
    PerfScope s(mon_, PerfOp::LmHead);
    ops::lm_head_rows(pool_, kt_, w_, st_.arena.buffers().h, n_logits, logits, cfg_.n_vocab,
                      thread_scratch_.data() + cfg_.n_head / cfg_.n_head_kv * n_ctx_,
                      scratch_stride_, opt_.quantize_activations);
  }
  for (size_t s = 0; s < step_count_.size(); ++s) n_past_[s] += step_count_[s];
  if (mon_) mon_->end_step(n);
}

}  // namespace bitnet::model
