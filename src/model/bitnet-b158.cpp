#include "model/bitnet-b158.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"

namespace bitnet::model {
namespace {

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

// NEOX rotation of one head: pairs (i, i + rope_dim / 2).
void rope_neox(float* v, int64_t rope_dim, const std::vector<double>& inv_freq, int64_t pos) {
  const int64_t half = rope_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * inv_freq[static_cast<size_t>(i)];
    const double c = std::cos(angle), s = std::sin(angle);
    const double x0 = v[i], x1 = v[i + half];
    v[i] = static_cast<float>(x0 * c - x1 * s);
    v[i + half] = static_cast<float>(x0 * s + x1 * c);
  }
}

size_t row_bytes(uint32_t type, int64_t n) {
  return formats::ggml_tensor_bytes(type, &n, 1);
}

}  // namespace

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
  const int64_t B = opt_.max_batch, E = cfg_.n_embd, F = cfg_.n_ff;
  const int64_t qkv = E + 2 * cfg_.n_embd_kv();
  x_ = AlignedBuffer<float>(static_cast<size_t>(B * E));
  h_ = AlignedBuffer<float>(static_cast<size_t>(B * E));
  qkv_ = AlignedBuffer<float>(static_cast<size_t>(B * qkv));
  attn_ = AlignedBuffer<float>(static_cast<size_t>(B * E));
  tmp_ = AlignedBuffer<float>(static_cast<size_t>(B * std::max(E, F)));
  gate_up_ = AlignedBuffer<float>(static_cast<size_t>(B * 2 * F));
  act_ = AlignedBuffer<float>(static_cast<size_t>(B * F));
  q8_ = AlignedBuffer<int8_t>(static_cast<size_t>(B * std::max(E, F)));
  q8_scale_ = AlignedBuffer<float>(static_cast<size_t>(B));
  q8_sum_ = AlignedBuffer<int32_t>(static_cast<size_t>(B));
  scratch_stride_ = (n_ctx_ + 2 * cfg_.head_dim + E + 15) / 16 * 16;
  thread_scratch_ = AlignedBuffer<float>(static_cast<size_t>(scratch_stride_ * pool.size()));
  for (int64_t i = 0; i < cfg_.rope_dim / 2; ++i) {
    inv_freq_.push_back(
        std::pow(static_cast<double>(cfg_.rope_freq_base),
                 -2.0 * static_cast<double>(i) / static_cast<double>(cfg_.rope_dim)));
  }
  if (!opt_.quantize_activations) {
    for (const PackedLinear* p : w_.linears()) {
      dense_.emplace_back(static_cast<size_t>(p->view.n * p->view.k));
      kernels::unpack_ternary(p->view, dense_.back().data());
    }
  }
}

void BitNetSession::bitlinear(const PackedLinear& w, size_t dense_index, const float* in, int64_t n,
                              float* out) {
  const int64_t K = w.view.k, N = w.view.n;
  if (opt_.quantize_activations) {
    kernels::quantize_rows(pool_, kt_, in, K, n, K, q8_.data(), K, q8_scale_.data(),
                           q8_sum_.data());
    const kernels::QuantizedRows a{q8_.data(), K, q8_scale_.data(), q8_sum_.data(), n};
    kernels::ternary_matmul(pool_, kt_, w.view, a, out, N);
    return;
  }
  const int8_t* W = dense_[dense_index].data();
  pool_.parallel_for(N, [&](int64_t r0, int64_t r1, int) {
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t r = r0; r < r1; ++r) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += W[r * K + k] * static_cast<double>(in[t * K + k]);
        out[t * N + r] = static_cast<float>(acc * w.view.row_scale[r]);
      }
    }
  });
}

void BitNetSession::attention(int64_t layer, int64_t n) {
  const int64_t E = cfg_.n_embd, KV = cfg_.n_embd_kv(), hd = cfg_.head_dim;
  const int64_t ld = E + 2 * KV;
  const int64_t group = cfg_.n_head / cfg_.n_head_kv;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  pool_.parallel_for(n * cfg_.n_head, [&](int64_t i0, int64_t i1, int thread) {
    float* scores = thread_scratch_.data() + scratch_stride_ * thread;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / cfg_.n_head, h = i % cfg_.n_head;
      const int64_t kvh = h / group, pos = n_past_ + t;
      const float* q = qkv_.data() + t * ld + h * hd;
      const bool f16 = kv_.type() == KvType::F16;
      float mx = -INFINITY;
      for (int64_t j = 0; j <= pos; ++j) {
        const float dot = f16 ? kt_.dot_f16(kv_.k_f16(layer, j) + kvh * hd, q, hd)
                              : kt_.dot_f32(kv_.k_f32(layer, j) + kvh * hd, q, hd);
        scores[j] = dot * scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j <= pos; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      float* out = attn_.data() + t * E + h * hd;
      std::fill(out, out + hd, 0.0f);
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j <= pos; ++j) {
        const float p = scores[j] * inv;
        if (f16) {
          kt_.axpy_f16(p, kv_.v_f16(layer, j) + kvh * hd, out, hd);
        } else {
          const float* vr = kv_.v_f32(layer, j) + kvh * hd;
          for (int64_t d = 0; d < hd; ++d) out[d] += p * vr[d];
        }
      }
    }
  });
}

void BitNetSession::lm_head(const float* xn, float* logits) {
  const formats::GgufTensorInfo& out = *w_.output().info;
  const int64_t E = cfg_.n_embd;
  const size_t rb = row_bytes(out.type, E);
  const bool f32 = out.type == static_cast<uint32_t>(formats::GgmlType::F32);
  const bool f16 = out.type == static_cast<uint32_t>(formats::GgmlType::F16);
  pool_.parallel_for(cfg_.n_vocab, [&](int64_t v0, int64_t v1, int thread) {
    float* row = thread_scratch_.data() + scratch_stride_ * thread + n_ctx_ + 2 * cfg_.head_dim;
    for (int64_t v = v0; v < v1; ++v) {
      const uint8_t* src = out.data + static_cast<size_t>(v) * rb;
      if (f32) {
        logits[v] = kt_.dot_f32(reinterpret_cast<const float*>(src), xn, E);
      } else if (f16) {
        logits[v] = kt_.dot_f16(reinterpret_cast<const uint16_t*>(src), xn, E);
      } else {  // quantized embeddings (Q8_0, Q6_K): dequantize the row, then the F32 dot
        formats::dequantize_row(out.type, src, row, E);
        logits[v] = kt_.dot_f32(row, xn, E);
      }
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
  const int64_t E = cfg_.n_embd, KV = cfg_.n_embd_kv(), F = cfg_.n_ff, hd = cfg_.head_dim;
  const int64_t ld_qkv = E + 2 * KV;
  const float eps = cfg_.rms_eps;
  const formats::GgufTensorInfo& embd = *w_.token_embd().info;
  const size_t embd_row = row_bytes(embd.type, E);
  for (int64_t t = 0; t < n; ++t) {
    formats::dequantize_row(embd.type, embd.data + static_cast<size_t>(tokens[t]) * embd_row,
                            x_.data() + t * E, E);
  }
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const LayerWeights& L = w_.layers()[static_cast<size_t>(l)];
    const size_t d0 = static_cast<size_t>(4 * l);
    for (int64_t t = 0; t < n; ++t) {
      rmsnorm(x_.data() + t * E, L.attn_norm.data(), E, eps, h_.data() + t * E);
    }
    bitlinear(L.qkv, d0, h_.data(), n, qkv_.data());
    for (int64_t t = 0; t < n; ++t) {
      float* row = qkv_.data() + t * ld_qkv;
      for (int64_t h = 0; h < cfg_.n_head; ++h)
        rope_neox(row + h * hd, cfg_.rope_dim, inv_freq_, n_past_ + t);
      for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
        rope_neox(row + E + h * hd, cfg_.rope_dim, inv_freq_, n_past_ + t);
      }
    }
    kv_.store(l, n_past_, n, qkv_.data() + E, qkv_.data() + E + KV, ld_qkv);
    attention(l, n);
    for (int64_t t = 0; t < n; ++t) {
      rmsnorm(attn_.data() + t * E, L.attn_sub_norm.data(), E, eps, h_.data() + t * E);
    }
    bitlinear(L.attn_out, d0 + 1, h_.data(), n, tmp_.data());
    for (int64_t i = 0; i < n * E; ++i) x_[static_cast<size_t>(i)] += tmp_[static_cast<size_t>(i)];

    for (int64_t t = 0; t < n; ++t) {
      rmsnorm(x_.data() + t * E, L.ffn_norm.data(), E, eps, h_.data() + t * E);
    }
    bitlinear(L.gate_up, d0 + 2, h_.data(), n, gate_up_.data());
    for (int64_t t = 0; t < n; ++t) {
      const float* g = gate_up_.data() + t * 2 * F;
      const float* u = g + F;
      float* a = act_.data() + t * F;
      if (cfg_.activation == FfnActivation::Relu2) {
        for (int64_t i = 0; i < F; ++i) {
          const float r = g[i] > 0.0f ? g[i] : 0.0f;
          a[i] = r * r * u[i];
        }
      } else {
        for (int64_t i = 0; i < F; ++i) a[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      }
      rmsnorm(a, L.ffn_sub_norm.data(), F, eps, a);
    }
    bitlinear(L.down, d0 + 3, act_.data(), n, tmp_.data());
    for (int64_t i = 0; i < n * E; ++i) x_[static_cast<size_t>(i)] += tmp_[static_cast<size_t>(i)];
  }
  if (logits) {
    for (int64_t t = all_logits ? 0 : n - 1; t < n; ++t) {
      rmsnorm(x_.data() + t * E, w_.output_norm().data(), E, eps, h_.data());
      lm_head(h_.data(), logits + (all_logits ? t : 0) * cfg_.n_vocab);
    }
  }
  n_past_ += n;
}

}  // namespace bitnet::model
