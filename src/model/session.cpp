#include "model/session.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "model/execution-plan.h"
#include "model/lm-head.h"

namespace bitnet::model {

Session::Session(const ModelWeights& weights, const SessionOptions& options, ThreadPool& pool)
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
    throw std::invalid_argument("session: max_sequences (" + std::to_string(opt_.max_sequences) +
                                "), max_batch_tokens (" + std::to_string(opt_.max_batch_tokens) +
                                ") and n_ctx (" + std::to_string(n_ctx_) + ") must be at least 1");
  }
  const auto S = static_cast<size_t>(opt_.max_sequences);
  kv_.reserve(S);
  for (size_t s = 0; s < S; ++s) kv_.emplace_back(kv_pool_, n_ctx_);
  reserved_.assign(S, 0);
  n_past_.assign(S, 0);
  active_.assign(S, 0);
  step_count_.assign(S, 0);

  const int64_t B = opt_.max_batch_tokens;
  item_slot_.assign(static_cast<size_t>(B), 0);
  item_pos_.assign(static_cast<size_t>(B), 0);
  eval_items_.reserve(static_cast<size_t>(B));
  PlanOptions po;
  po.max_rows = B;
  po.quantize_activations = opt_.quantize_activations;
  po.fused_norm_quant = opt_.fused_norm_quant && opt_.quantize_activations;
  po.split_linears = opt_.split_linears;
  po.n_ctx = n_ctx_;
  po.threads = pool.size();
  plan_ = ExecutionPlan(cfg_, w_.layout(), po);
  arena_ = AlignedBuffer<uint8_t>(plan_.arena_bytes());
  q8_.q = reinterpret_cast<int8_t*>(arena_.data() + plan_.offset(PlanBuffer::Q8));
  q8_.scale = reinterpret_cast<float*>(arena_.data() + plan_.q8_scale_offset());
  q8_.sum = reinterpret_cast<int32_t*>(arena_.data() + plan_.q8_sum_offset());
  q8_.row = buffer(PlanBuffer::Rows);
  q8_.max_k = plan_.q8_row_bytes();
  inv_freq_ = ops::rope_inv_freq(cfg_);
  if (!opt_.quantize_activations) dense_ = ops::DenseLinears(w_);
}

int64_t Session::positions_stored() const {
  int64_t n = 0;
  for (size_t s = 0; s < active_.size(); ++s) n += active_[s] ? n_past_[s] : 0;
  return n;
}

int64_t Session::pages_for(int64_t positions) const {
  return kv_pool_.pages_for(std::min(positions, n_ctx_));
}

size_t Session::activation_bytes() const {
  size_t b = arena_.size();
  for (const auto& d : dense_.w) b += d.size();
  return b;
}

bool Session::in_use(int slot) const {
  return slot >= 0 && slot < opt_.max_sequences && active_[static_cast<size_t>(slot)];
}

void Session::check_slot(int slot, const std::string& what) const {
  if (!in_use(slot)) {
    throw std::invalid_argument(what + ": sequence slot " + std::to_string(slot) +
                                " is not in use (slots 0.." +
                                std::to_string(opt_.max_sequences - 1) + ", from add_sequence)");
  }
}

int Session::add_sequence(int64_t reserve_positions) {
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

void Session::remove_sequence(int slot) {
  check_slot(slot, "remove_sequence");
  const auto s = static_cast<size_t>(slot);
  kv_[s].clear();
  active_[s] = 0;
  n_past_[s] = 0;
  reserved_[s] = 0;
  --n_active_;
}

void Session::reset_sequence(int slot) {
  check_slot(slot, "reset_sequence");
  const auto s = static_cast<size_t>(slot);
  kv_[s].clear();
  kv_[s].reserve(reserved_[s]);  // cannot fail: clear() just gave at least as many pages back
  n_past_[s] = 0;
}

void Session::truncate_sequence(int slot, int64_t n) {
  check_slot(slot, "truncate_sequence");
  const auto s = static_cast<size_t>(slot);
  n_past_[s] = std::min(n_past_[s], std::max<int64_t>(n, 0));
  kv_[s].truncate(n_past_[s]);
}

bool Session::set_reservation(int slot, int64_t positions) {
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

void Session::eval(int slot, std::span<const int32_t> tokens, float* logits, bool all_logits) {
  const auto n = static_cast<int64_t>(tokens.size());
  check_slot(slot, "eval");
  if (n_past_[static_cast<size_t>(slot)] + n > n_ctx_) {
    throw std::out_of_range("the context of " + std::to_string(n_ctx_) + " tokens is exceeded: " +
                            std::to_string(n_past_[static_cast<size_t>(slot)]) +
                            " in the cache + " + std::to_string(n) + " new");
  }
  std::vector<BatchItem>& items = eval_items_;  // reserved at construction: no allocation here
  for (int64_t start = 0; start < n; start += opt_.max_batch_tokens) {
    const int64_t len = std::min(opt_.max_batch_tokens, n - start);
    const bool last_chunk = start + len == n;
    items.clear();
    for (int64_t i = 0; i < len; ++i) {
      const bool want = logits && (all_logits || (last_chunk && i + 1 == len));
      items.push_back({slot, tokens[static_cast<size_t>(start + i)], want});
    }
    float* out = nullptr;
    if (logits && all_logits) out = logits + start * cfg_.n_vocab;
    if (logits && !all_logits && last_chunk) out = logits;
    step(items, out);
  }
}

int64_t Session::pages_held(int slot) const {
  check_slot(slot, "pages_held");
  return kv_[static_cast<size_t>(slot)].pages();
}

int64_t Session::n_past(int slot) const {
  check_slot(slot, "n_past");
  return n_past_[static_cast<size_t>(slot)];
}

void Session::attention(int64_t layer, int64_t n) {
  const int64_t E = cfg_.n_embd, KV = cfg_.n_embd_kv(), hd = cfg_.head_dim;
  const int64_t ld = E + 2 * KV;
  const int64_t group = cfg_.n_head / cfg_.n_head_kv;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  float* const qkv = buffer(PlanBuffer::Qkv);
  float* const attn = buffer(PlanBuffer::Attn);
  float* const scores_base = buffer(PlanBuffer::Scores);
  const int64_t stride = plan_.scores_stride();
  // Several rows: the heads sharing a KV head in one item (each cached row serves all of them);
  // one row: one head per item, so that the threads share the heads evenly.
  const int64_t qb = n > 1 ? group : 1, items = cfg_.n_head / qb;
  pool_.parallel_for(n * items, [&](int64_t i0, int64_t i1, int thread) {
    float* scores = scores_base + stride * thread;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / items, h = i % items * qb;
      const KvCache& kv = kv_[static_cast<size_t>(item_slot_[static_cast<size_t>(t)])];
      const int64_t pos = item_pos_[static_cast<size_t>(t)];
      ops::attend_heads(kt_, kv, layer, (h / group) * hd, qkv + t * ld + h * hd, qb, hd, pos + 1,
                        scale, scores, attn + t * E + h * hd);
    }
  });
}

const std::vector<float>& Session::norm_weights(NormId id, int64_t layer) const {
  const LayerWeights& L = w_.layers()[static_cast<size_t>(layer)];
  switch (id) {
    case NormId::Attn:
      return L.attn_norm;
    case NormId::AttnSub:
      return L.attn_sub_norm;
    case NormId::Ffn:
      return L.ffn_norm;
    case NormId::FfnSub:
      return L.ffn_sub_norm;
    case NormId::Output:
    case NormId::None:
      break;
  }
  return w_.output_norm();
}

// The interpreter: one operation of the plan over the step's n rows.
void Session::run(const PlanOp& op, int64_t l, int64_t n) {
  const int64_t E = cfg_.n_embd, F = cfg_.n_ff, KV = cfg_.n_embd_kv();
  const float eps = cfg_.rms_eps;
  const LayerWeights& L = w_.layers()[static_cast<size_t>(l)];
  const PackedLinear* linears[] = {&L.qkv, &L.attn_out, &L.gate_up, &L.down};
  PerfScope scope(op.kind == OpKind::Attention ? nullptr : mon_, op.timer);
  auto width = [&](PlanBuffer b) {
    return b == PlanBuffer::Qkv      ? E + 2 * KV
           : b == PlanBuffer::GateUp ? 2 * F
           : b == PlanBuffer::Act    ? F
                                     : E;
  };
  switch (op.kind) {
    case OpKind::Norm: {
      const float* in = buffer(op.reads[0]);
      float* out = buffer(op.writes[0]);
      const int64_t k = width(op.reads[0]);
      const std::vector<float>& w = norm_weights(op.norm, l);
      const bool sub = op.norm == NormId::AttnSub || op.norm == NormId::FfnSub;
      for (int64_t t = 0; t < n; ++t) {
        if (sub) {
          ops::sub_norm(in + t * k, w, k, eps, out + t * k);
        } else {
          ops::rmsnorm(in + t * k, w.data(), k, eps, out + t * k);
        }
      }
      break;
    }
    case OpKind::Linear: {
      const PackedLinear& w = *linears[static_cast<int>(op.linear)];
      const float* in = buffer(op.reads[0]);
      float* out = buffer(op.writes[0]);
      if (!opt_.quantize_activations) {
        const size_t d = static_cast<size_t>(4 * l + static_cast<int>(op.linear));
        ops::bitlinear_dense(pool_, w, dense_.w[d].data(), in, n, out);
      } else if (op.row1 >= 0) {
        ops::bitlinear_q8_rows(pool_, kt_, w, op.row0, op.row1, in, n, q8_, out);
      } else {
        ops::bitlinear_q8(pool_, kt_, w, in, n, q8_, out);
      }
      break;
    }
    case OpKind::NormQuant: {
      const std::vector<float>& w = norm_weights(op.norm, l);
      ops::norm_quant_rows(pool_, kt_, buffer(op.reads[0]),
                           op.add_residual ? buffer(PlanBuffer::Tmp) : nullptr,
                           w.empty() ? nullptr : w.data(), n, E, eps, q8_);
      break;
    }
    case OpKind::MatmulQ8:
      ops::matmul_q8(pool_, kt_, *linears[static_cast<int>(op.linear)], n, q8_,
                     buffer(op.writes[0]));
      break;
    case OpKind::Attention: {
      const int64_t ld = E + 2 * KV;
      float* qkv = buffer(PlanBuffer::Qkv);
      const auto* rope = reinterpret_cast<const double*>(buffer(PlanBuffer::Rope));
      {
        PerfScope s(mon_, PerfOp::RopeKv);
        for (int64_t t = 0; t < n; ++t) {
          float* row = qkv + t * ld;
          const auto ti = static_cast<size_t>(t);
          ops::rope_qk_row(cfg_, rope + t * cfg_.rope_dim, row);
          kv_[static_cast<size_t>(item_slot_[ti])].store(l, item_pos_[ti], 1, row + E, row + E + KV,
                                                         ld);
        }
      }
      PerfScope s(mon_, PerfOp::Attention);
      attention(l, n);
      break;
    }
    case OpKind::Residual: {
      float* x = buffer(PlanBuffer::X);
      const float* tmp = buffer(PlanBuffer::Tmp);
      for (int64_t i = 0; i < n * E; ++i) x[i] += tmp[i];
      break;
    }
    case OpKind::ActNorm: {
      const float* gate_up = buffer(op.reads[0]);
      float* act = buffer(op.writes[0]);
      for (int64_t t = 0; t < n; ++t) {
        const float* g = gate_up + t * 2 * F;
        float* a = act + t * F;
        ops::ffn_act_row(cfg_.activation, g, g + F, F, a);
        ops::sub_norm(a, L.ffn_sub_norm, F, eps, a);
      }
      break;
    }
    case OpKind::ActNormQuant:
      ops::act_norm_quant_rows(pool_, kt_, cfg_.activation, buffer(op.reads[0]), L.ffn_sub_norm, n,
                               F, eps, q8_);
      break;
    case OpKind::Embed:
    case OpKind::OutputNorm:
    case OpKind::LmHead:
      break;  // run by step() around the layers
  }
}

void Session::step(std::span<const BatchItem> items, float* logits) {
  const int64_t n = static_cast<int64_t>(items.size());
  if (n == 0) return;
  if (n > opt_.max_batch_tokens) {
    throw std::invalid_argument("step: " + std::to_string(n) + " items exceed max_batch_tokens = " +
                                std::to_string(opt_.max_batch_tokens));
  }
  int64_t n_logits = 0;
  std::fill(step_count_.begin(), step_count_.end(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const BatchItem& it = items[static_cast<size_t>(i)];
    if (!in_use(it.slot)) check_slot(it.slot, "step, item " + std::to_string(i));
    if (it.token < 0 || it.token >= cfg_.n_vocab) {
      throw std::invalid_argument("step, item " + std::to_string(i) + ": token id " +
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
      throw std::out_of_range("step: sequence slot " + std::to_string(s) +
                              " would exceed its context of " + std::to_string(n_ctx_) +
                              " tokens: " + std::to_string(n_past_[s]) + " in the cache + " +
                              std::to_string(step_count_[s]) + " new");
    }
    unreserved_pages += std::max<int64_t>(
        0, kv_[s].pages_needed(n_past_[s] + step_count_[s]) - kv_[s].reservation());
  }
  if (unreserved_pages > kv_pool_.available()) {
    throw std::out_of_range("step: the KV cache needs " + std::to_string(unreserved_pages) +
                            " more pages beyond the reservations but " +
                            std::to_string(kv_pool_.available()) + " of " +
                            std::to_string(kv_pool_.n_pages()) + " are free");
  }
  if (n_logits > 0 && logits == nullptr) {
    throw std::invalid_argument("step: " + std::to_string(n_logits) +
                                " items want logits but no logits buffer was given");
  }

  std::fill(step_count_.begin(), step_count_.end(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const auto slot = static_cast<size_t>(items[static_cast<size_t>(i)].slot);
    item_slot_[static_cast<size_t>(i)] = static_cast<int32_t>(slot);
    item_pos_[static_cast<size_t>(i)] = n_past_[slot] + step_count_[slot]++;
  }

  const int64_t E = cfg_.n_embd;
  {
    PerfScope s(mon_, PerfOp::Embed);
    float* x = buffer(PlanBuffer::X);
    for (int64_t t = 0; t < n; ++t)
      ops::embed_row(w_, items[static_cast<size_t>(t)].token, x + t * E);
  }
  {
    PerfScope s(mon_, PerfOp::RopeKv);
    auto* rope = reinterpret_cast<double*>(buffer(PlanBuffer::Rope));
    for (int64_t t = 0; t < n; ++t) {
      ops::rope_angles(inv_freq_, item_pos_[static_cast<size_t>(t)], rope + t * cfg_.rope_dim);
    }
  }
  const std::vector<PlanOp>& ops = plan_.ops();
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    for (size_t i = plan_.layer_begin(); i < plan_.layer_end(); ++i) run(ops[i], l, n);
  }
  if (n_logits > 0) {
    {
      PerfScope s(mon_, PerfOp::Norm);
      const float* x = buffer(PlanBuffer::X);
      float* h = buffer(PlanBuffer::H);
      int64_t r = 0;
      for (int64_t t = 0; t < n; ++t) {
        if (!items[static_cast<size_t>(t)].wants_logits) continue;
        ops::rmsnorm(x + t * E, w_.output_norm().data(), E, cfg_.rms_eps, h + r * E);
        ++r;
      }
    }
    PerfScope s(mon_, PerfOp::LmHead);
    ops::lm_head_rows(pool_, kt_, w_, buffer(PlanBuffer::H), n_logits, logits, cfg_.n_vocab,
                      buffer(PlanBuffer::HeadRows), plan_.head_stride(), opt_.quantize_activations,
                      q8_);
  }
  for (size_t s = 0; s < step_count_.size(); ++s) n_past_[s] += step_count_[s];
  if (mon_) mon_->end_step(n);
}

}  // namespace bitnet::model
