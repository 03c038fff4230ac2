#include "model/bitnet-b158-ops.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"

namespace bitnet::model::ops {
namespace {

size_t row_bytes(uint32_t type, int64_t n) {
  return formats::ggml_tensor_bytes(type, &n, 1);
}

}  // namespace

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

std::vector<double> rope_inv_freq(const ModelConfig& cfg) {
  std::vector<double> inv_freq;
  for (int64_t i = 0; i < cfg.rope_dim / 2; ++i) {
    inv_freq.push_back(std::pow(static_cast<double>(cfg.rope_freq_base),
                                -2.0 * static_cast<double>(i) / static_cast<double>(cfg.rope_dim)));
  }
  return inv_freq;
}

void rope_angles(const std::vector<double>& inv_freq, int64_t pos, double* cs) {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double angle = static_cast<double>(pos) * inv_freq[i];
    cs[2 * i] = std::cos(angle);
    cs[2 * i + 1] = std::sin(angle);
  }
}

void rope_neox(float* v, int64_t rope_dim, const double* cs) {
  const int64_t half = rope_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double c = cs[2 * i], s = cs[2 * i + 1];
    const double x0 = v[i], x1 = v[i + half];
    v[i] = static_cast<float>(x0 * c - x1 * s);
    v[i + half] = static_cast<float>(x0 * s + x1 * c);
  }
}

void rope_norm(float* v, int64_t rope_dim, const double* cs) {
  for (int64_t i = 0; i < rope_dim / 2; ++i) {
    const double c = cs[2 * i], s = cs[2 * i + 1];
    const double x0 = v[2 * i], x1 = v[2 * i + 1];
    v[2 * i] = static_cast<float>(x0 * c - x1 * s);
    v[2 * i + 1] = static_cast<float>(x0 * s + x1 * c);
  }
}

void rope_qk_row(const ModelConfig& cfg, const double* cs, float* qkv_row) {
  const int64_t hd = cfg.head_dim;
  const auto rope = cfg.rope_style == RopeStyle::Neox ? rope_neox : rope_norm;
  for (int64_t h = 0; h < cfg.n_head; ++h) rope(qkv_row + h * hd, cfg.rope_dim, cs);
  float* k = qkv_row + cfg.n_embd;
  for (int64_t h = 0; h < cfg.n_head_kv; ++h) rope(k + h * hd, cfg.rope_dim, cs);
}

void sub_norm(const float* x, const std::vector<float>& w, int64_t n, float eps, float* out) {
  if (w.empty()) {
    if (out != x) std::copy(x, x + n, out);
    return;
  }
  rmsnorm(x, w.data(), n, eps, out);
}

void ffn_act_row(FfnActivation act, const float* __restrict gate, const float* __restrict up,
                 int64_t n_ff, float* __restrict out) {
  if (act == FfnActivation::Relu2) {
    for (int64_t i = 0; i < n_ff; ++i) {
      // relu(g) = g > 0 ? g : +0 (NaN -> 0) as a bit mask: GCC will not if-convert the float
      // select, and a branch on the gate's sign mispredicts half the time.
      const float g = gate[i];
      const uint32_t mask = 0u - static_cast<uint32_t>(g > 0.0f);
      const float r = std::bit_cast<float>(std::bit_cast<uint32_t>(g) & mask);
      out[i] = r * r * up[i];
    }
  } else {
    for (int64_t i = 0; i < n_ff; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  }
}

void embed_row(const ModelWeights& w, int32_t token, float* x) {
  const formats::GgufTensorInfo& embd = *w.token_embd().info;
  const int64_t E = w.config().n_embd;
  formats::dequantize_row(embd.type,
                          embd.data + static_cast<size_t>(token) * row_bytes(embd.type, E), x, E);
}

void bitlinear_q8(ThreadPool& pool, const kernels::KernelTable& kt, const PackedLinear& w,
                  const float* in, int64_t n, Q8Scratch& q8, float* out) {
  const int64_t K = w.view.k, N = w.view.n;
  kernels::quantize_rows(pool, kt, in, K, n, K, q8.q, K, q8.scale, q8.sum);
  const kernels::QuantizedRows a{q8.q, K, q8.scale, q8.sum, n};
  kernels::ternary_matmul(pool, kt, w.view, a, out, N);
}

void bitlinear_q8_rows(ThreadPool& pool, const kernels::KernelTable& kt, const PackedLinear& w,
                       int64_t r0, int64_t r1, const float* in, int64_t n, Q8Scratch& q8,
                       float* out) {
  const int64_t K = w.view.k;
  kernels::TernaryMatrixView part = w.view;
  part.n = r1 - r0;
  part.data += static_cast<size_t>(r0 / kernels::kGroupRows) * w.view.group_bytes;
  part.row_scale += r0;
  kernels::quantize_rows(pool, kt, in, K, n, K, q8.q, K, q8.scale, q8.sum);
  const kernels::QuantizedRows a{q8.q, K, q8.scale, q8.sum, n};
  kernels::ternary_matmul(pool, kt, part, a, out + r0, w.view.n);
}

void norm_quant_rows(ThreadPool& pool, const kernels::KernelTable& kt, float* x, const float* add,
                     const float* w, int64_t n, int64_t k, float eps, Q8Scratch& q8) {
  pool.parallel_for(n, [&](int64_t t0, int64_t t1, int thread) {
    float* y = q8.row + thread * q8.max_k;
    for (int64_t t = t0; t < t1; ++t) {
      float* xr = x + t * k;
      if (add) {
        const float* ar = add + t * k;
        for (int64_t i = 0; i < k; ++i) xr[i] += ar[i];
      }
      const float* in = xr;
      if (w) {
        rmsnorm(xr, w, k, eps, y);
        in = y;
      }
      kt.quantize(in, k, 1, k, q8.q + t * k, k, q8.scale + t, q8.sum + t);
    }
  });
}

void act_norm_quant_rows(ThreadPool& pool, const kernels::KernelTable& kt, FfnActivation act,
                         const float* gate_up, const std::vector<float>& sub_w, int64_t n,
                         int64_t n_ff, float eps, Q8Scratch& q8) {
  pool.parallel_for(n, [&](int64_t t0, int64_t t1, int thread) {
    float* y = q8.row + thread * q8.max_k;
    for (int64_t t = t0; t < t1; ++t) {
      const float* g = gate_up + t * 2 * n_ff;
      ffn_act_row(act, g, g + n_ff, n_ff, y);
      sub_norm(y, sub_w, n_ff, eps, y);
      kt.quantize(y, n_ff, 1, n_ff, q8.q + t * n_ff, n_ff, q8.scale + t, q8.sum + t);
    }
  });
}

void matmul_q8(ThreadPool& pool, const kernels::KernelTable& kt, const PackedLinear& w, int64_t n,
               const Q8Scratch& q8, float* out) {
  const int64_t K = w.view.k;
  const kernels::QuantizedRows a{q8.q, K, q8.scale, q8.sum, n};
  kernels::ternary_matmul(pool, kt, w.view, a, out, w.view.n);
}

DenseLinears::DenseLinears(const ModelWeights& weights) {
  for (const PackedLinear* p : weights.linears()) {
    w.emplace_back(static_cast<size_t>(p->view.n * p->view.k));
    kernels::unpack_ternary(p->view, w.back().data());
  }
}

void bitlinear_dense(ThreadPool& pool, const PackedLinear& w, const int8_t* W, const float* in,
                     int64_t n, float* out) {
  const int64_t K = w.view.k, N = w.view.n;
  pool.parallel_for(N, [&](int64_t r0, int64_t r1, int) {
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t r = r0; r < r1; ++r) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += W[r * K + k] * static_cast<double>(in[t * K + k]);
        out[t * N + r] = static_cast<float>(acc * w.view.row_scale[r]);
      }
    }
  });
}

void attend_heads(const kernels::KernelTable& kt, const KvCache& kv, int64_t layer, int64_t kv_off,
                  const float* q, int64_t nq, int64_t hd, int64_t n_pos, float scale, float* scores,
                  float* out) {
  const bool f16 = kv.type() == KvType::F16;
  const int64_t page = kv.pool().page_size(), stride = kv.row_dim();
  // The kernels take runs of positions that are consecutive in one page.
  auto runs = [&](auto&& fn) {
    for (int64_t j0 = 0; j0 < n_pos; j0 = (j0 / page + 1) * page) {
      fn(j0, std::min(n_pos, (j0 / page + 1) * page) - j0);
    }
  };
  runs([&](int64_t j0, int64_t len) {
    if (f16) {
      kt.attn_scores_f16(kv.k_f16(layer, j0) + kv_off, stride, len, q, hd, nq, hd, scores + j0,
                         n_pos);
    } else {
      kt.attn_scores_f32(kv.k_f32(layer, j0) + kv_off, stride, len, q, hd, nq, hd, scores + j0,
                         n_pos);
    }
  });
  for (int64_t i = 0; i < nq; ++i) {
    float* s = scores + i * n_pos;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n_pos; ++j) {
      s[j] *= scale;
      mx = std::max(mx, s[j]);
    }
    double sum = 0;
    for (int64_t j = 0; j < n_pos; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < n_pos; ++j) s[j] *= inv;
  }
  std::fill(out, out + nq * hd, 0.0f);
  runs([&](int64_t j0, int64_t len) {
    if (f16) {
      kt.attn_values_f16(scores + j0, n_pos, nq, kv.v_f16(layer, j0) + kv_off, stride, len, hd, out,
                         hd);
    } else {
      kt.attn_values_f32(scores + j0, n_pos, nq, kv.v_f32(layer, j0) + kv_off, stride, len, hd, out,
                         hd);
    }
  });
}

void attend_head(const kernels::KernelTable& kt, const KvCache& kv, int64_t layer, int64_t kv_off,
                 const float* q, int64_t hd, int64_t n_pos, float scale, float* scores,
                 float* out) {
  attend_heads(kt, kv, layer, kv_off, q, 1, hd, n_pos, scale, scores, out);
}

}  // namespace bitnet::model::ops
