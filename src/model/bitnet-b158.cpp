#include "model/bitnet-b158.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "model/bitnet-b158-ops.h"
#include "model/execution-plan.h"
#include "model/lm-head.h"

namespace bitnet::model {

BitNetSession::BitNetSession(const ModelWeights& weights, const SessionOptions& options,
                             ThreadPool& pool)
    : w_(weights),
      cfg_(weights.config()),
      opt_(options),
      pool_(pool),
      kt_(kernels::active_kernels()),
      n_ctx_(options.n_ctx > 0 ? options.n_ctx : weights.config().n_ctx_train),
      kv_(options.kv, cfg_.n_layer, n_ctx_, cfg_.n_embd_kv()) {
  if (opt_.max_batch < 1) throw std::invalid_argument("max_batch must be at least 1");
  const int64_t B = opt_.max_batch, E = cfg_.n_embd;
  st_ = ops::StepState(w_, B, opt_.quantize_activations, opt_.fused_norm_quant, pool.size());
  // Per thread: the scores of a group of query heads [group][n_ctx], 2 head rows, an LM-head row.
  scratch_stride_ = (cfg_.n_head / cfg_.n_head_kv * n_ctx_ + 2 * cfg_.head_dim + E + 15) / 16 * 16;
  thread_scratch_ = AlignedBuffer<float>(static_cast<size_t>(scratch_stride_ * pool.size()));
  if (opt_.split_fused_linears) {
    if (!opt_.quantize_activations || opt_.fused_norm_quant) {
      throw std::invalid_argument(
          "split_fused_linears needs quantize_activations and no fused_norm_quant");
    }
    for (int64_t r : {cfg_.n_embd, cfg_.n_embd_kv(), cfg_.n_ff}) {
      if (r % kernels::kGroupRows != 0) {
        throw std::invalid_argument("split_fused_linears: " + std::to_string(r) +
                                    " rows is not a whole number of packed row groups");
      }
    }
  }
}

void BitNetSession::bitlinear(const PackedLinear& w, size_t dense_index, const float* in, int64_t n,
                              float* out) {
  if (opt_.split_fused_linears && (dense_index % 4 == 0 || dense_index % 4 == 2)) {
    const int64_t E = cfg_.n_embd, KV = cfg_.n_embd_kv(), F = cfg_.n_ff;
    const int64_t qkv_rows[] = {0, E, E + KV, E + 2 * KV}, gate_up_rows[] = {0, F, 2 * F};
    const int64_t* rows = dense_index % 4 == 0 ? qkv_rows : gate_up_rows;
    const int parts = dense_index % 4 == 0 ? 3 : 2;
    for (int i = 0; i < parts; ++i) {
      ops::bitlinear_q8_rows(pool_, kt_, w, rows[i], rows[i + 1], in, n, st_.arena.q8(), out);
    }
  } else if (opt_.quantize_activations) {
    ops::bitlinear_q8(pool_, kt_, w, in, n, st_.arena.q8(), out);
  } else {
    ops::bitlinear_dense(pool_, w, st_.dense.w[dense_index].data(), in, n, out);
  }
}

void BitNetSession::attention(int64_t layer, int64_t n) {
  const int64_t E = cfg_.n_embd, KV = cfg_.n_embd_kv(), hd = cfg_.head_dim;
  const int64_t ld = E + 2 * KV;
  const int64_t group = cfg_.n_head / cfg_.n_head_kv;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  // Prefill: the heads sharing a KV head in one item, so each cached row serves all of them.
  // Decode: one head per item, so that two threads share the heads evenly.
  const int64_t qb = n > 1 ? group : 1, items = cfg_.n_head / qb;
  pool_.parallel_for(n * items, [&](int64_t i0, int64_t i1, int thread) {
    float* scores = thread_scratch_.data() + scratch_stride_ * thread;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / items, h = i % items * qb;
      const int64_t kvh = h / group, pos = n_past_ + t;
      const float* q = st_.arena.buffers().qkv + t * ld + h * hd;
      ops::attend_heads(kt_, kv_, layer, kvh * hd, q, qb, hd, pos + 1, scale, scores,
                        st_.arena.buffers().attn + t * E + h * hd);
    }
  });
}

void BitNetSession::eval(std::span<const int32_t> tokens, float* logits, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return;
  if (n_past_ + n > n_ctx_) {
    throw std::out_of_range("the context of " + std::to_string(n_ctx_) +
                            " tokens is exceeded: " + std::to_string(n_past_) + " in the cache + " +
                            std::to_string(n) + " new (use a larger -c, up to the model's " +
                            std::to_string(cfg_.n_ctx_train) + ")");
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= cfg_.n_vocab) {
      throw std::invalid_argument("token id " + std::to_string(t) + " is outside the vocabulary (" +
                                  std::to_string(cfg_.n_vocab) + " tokens)");
    }
  }
  for (int64_t start = 0; start < n; start += opt_.max_batch) {
    const int64_t len = std::min(opt_.max_batch, n - start);
    const bool last = start + len == n;
    float* out = nullptr;
    if (logits && all_logits) out = logits + start * cfg_.n_vocab;
    if (logits && !all_logits && last) out = logits;
    eval_batch(tokens.data() + start, len, out, all_logits);
  }
}

void BitNetSession::eval_batch(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  const int64_t E = cfg_.n_embd, KV = cfg_.n_embd_kv(), hd = cfg_.head_dim;
  const int64_t ld_qkv = E + 2 * KV;
  const float eps = cfg_.rms_eps;
  {
    PerfScope s(mon_, PerfOp::Embed);
    for (int64_t t = 0; t < n; ++t) ops::embed_row(w_, tokens[t], st_.arena.buffers().x + t * E);
  }
  const ops::LayerBuffers& b = st_.arena.buffers();
  std::optional<ops::Fusion> fused = st_.fusion(pool_, kt_);
  {
    PerfScope s(mon_, PerfOp::RopeKv);
    for (int64_t t = 0; t < n; ++t) {
      st_.set_rope(t, n_past_ + t);
    }
  }
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const size_t d0 = static_cast<size_t>(4 * l);
    ops::layer_forward(
        cfg_, w_.layers()[static_cast<size_t>(l)], n, b, mon_, fused ? &*fused : nullptr,
        [&](const PackedLinear& w, int k, const float* in, float* out) {
          bitlinear(w, d0 + static_cast<size_t>(k), in, n, out);
        },
        [&] {
          {
            PerfScope s(mon_, PerfOp::RopeKv);
            for (int64_t t = 0; t < n; ++t) {
              ops::rope_qk_row(cfg_, st_.rope(t), st_.arena.buffers().qkv + t * ld_qkv);
            }
            kv_.store(l, n_past_, n, st_.arena.buffers().qkv + E, st_.arena.buffers().qkv + E + KV,
                      ld_qkv);
          }
          PerfScope s(mon_, PerfOp::Attention);
          attention(l, n);
        });
  }
  if (logits) {
    const int64_t first = all_logits ? 0 : n - 1;
    {
      PerfScope s(mon_, PerfOp::Norm);
      for (int64_t t = first; t < n; ++t) {
        ops::rmsnorm(st_.arena.buffers().x + t * E, w_.output_norm().data(), E, eps,
                     st_.arena.buffers().h + (t - first) * E);
      }
    }
    PerfScope s(mon_, PerfOp::LmHead);
    ops::lm_head_rows(pool_, kt_, w_, st_.arena.buffers().h, n - first, logits, cfg_.n_vocab,
                      thread_scratch_.data() + cfg_.n_head / cfg_.n_head_kv * n_ctx_ + 2 * hd,
                      scratch_stride_, opt_.quantize_activations);
  }
  n_past_ += n;
  if (mon_) mon_->end_step(n);
}

}  // namespace bitnet::model
