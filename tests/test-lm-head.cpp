// The LM head on real model files (random-weight dummies) with Q6_K, Q8_0 and F16 output matrices:
// the quantized path gives, for every row and vocabulary entry, exactly the block dot of that row
// quantized alone (whatever the row count, thread count and vocabulary tiling); the validation
// path exactly the float dot of the dequantized row; and the two differ by no more than the int8
// activation rounding allows.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"
#include "model/lm-head.h"
#include "model/model-weights.h"
#include "tools/dummy-model.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;
using formats::GgmlType;

std::unique_ptr<ModelWeights> dummy(const std::string& preset, GgmlType embd,
                                    bool int8_head = false) {
  const fs::path path =
      fs::temp_directory_path() / ("bitnet-test-lm-head-" + preset + "-" +
                                   formats::ggml_type_name(static_cast<uint32_t>(embd)) + "-" +
                                   std::to_string(::getpid()) + ".gguf");
  DummyOptions o;
  o.embd_type = static_cast<uint32_t>(embd);
  o.seed = 7;
  write_dummy_model(find_dummy_preset(preset), o, path.string());
  LoadOptions lo;
  lo.cache = CacheMode::Off;
  lo.int8_head = int8_head;
  auto w = ModelWeights::load(path.string(), lo);
  fs::remove(path);  // the mapping stays valid
  return w;
}

// Normed-looking rows: unit RMS with one large channel, as final hidden states have.
std::vector<float> hidden_rows(int64_t rows, int64_t e, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * e));
  for (auto& v : x) v = nd(rng);
  for (int64_t r = 0; r < rows; ++r) x[static_cast<size_t>(r * e + 3 * r + 5)] = 12.0f;
  return x;
}

struct Logits {
  std::vector<float> quantized, validation;
};

// Both paths through lm_head_rows; the scratch starts 4 bytes past a 64-byte boundary with rows
// n_embd + 5 floats apart, so the head must align and size its quantized rows itself.
Logits run_head(const ModelWeights& w, const std::vector<float>& x, int64_t rows, int threads) {
  const int64_t e = w.config().n_embd, v = w.config().n_vocab;
  ThreadPool pool(threads);
  const int64_t stride = e + 5;
  std::vector<float> scratch(static_cast<size_t>(stride * threads + 32));
  float* s = scratch.data() + 1;
  Logits out;
  out.quantized.assign(static_cast<size_t>(rows * v), std::nanf(""));
  out.validation = out.quantized;
  const kernels::KernelTable& kt = kernels::active_kernels();
  // The int8 head's rows: ldq wider than n_embd, as the session's buffer for the widest linear.
  const int64_t ldq = e + 64;
  std::vector<int8_t> q8(static_cast<size_t>(rows * ldq));
  std::vector<float> q8_scale(static_cast<size_t>(rows));
  std::vector<int32_t> q8_sum(static_cast<size_t>(rows));
  ops::Q8Scratch q8s{q8.data(), q8_scale.data(), q8_sum.data(), nullptr, ldq};
  ops::lm_head_rows(pool, kt, w, x.data(), rows, out.quantized.data(), v, s, stride, true, q8s);
  ops::lm_head_rows(pool, kt, w, x.data(), rows, out.validation.data(), v, s, stride, false, q8s);
  return out;
}

void check_head(const ModelWeights& w, int64_t rows, int threads) {
  const int64_t e = w.config().n_embd, v = w.config().n_vocab;
  const formats::GgufTensorInfo& out = *w.output().info;
  const bool q6 = out.type == static_cast<uint32_t>(GgmlType::Q6_K);
  const bool q8 = out.type == static_cast<uint32_t>(GgmlType::Q8_0);
  const std::string tag = formats::ggml_type_name(out.type) + " rows=" + std::to_string(rows) +
                          " threads=" + std::to_string(threads);
  const std::vector<float> x = hidden_rows(rows, e, static_cast<uint64_t>(rows * 10 + threads));
  const Logits got = run_head(w, x, rows, threads);
  const kernels::KernelTable& kt = kernels::active_kernels();
  int64_t eb = e;
  const size_t rb = formats::ggml_tensor_bytes(out.type, &eb, 1);
  const int64_t block = q6 ? kernels::kQ6KBlock : kernels::kQ80Block;
  std::vector<float> deq(static_cast<size_t>(e));
  std::vector<int8_t> q(static_cast<size_t>(e));
  std::vector<float> d(static_cast<size_t>(e / kernels::kQ80Block));
  std::vector<int16_t> bsum(static_cast<size_t>(e / kernels::kQ8SumSpan));
  constexpr double kEps = std::numeric_limits<float>::epsilon();
  int differ = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * e;
    kernels::BlockQ8Rows a;
    if (q6 || q8) {
      kt.quantize_blocks(xr, e, block, q.data(), d.data(), q6 ? bsum.data() : nullptr);
      a.q = q.data();
      a.d = d.data();
      a.bsum = bsum.data();
      a.m = 1;
      a.k = e;
    }
    for (int64_t i = 0; i < v; ++i) {
      const size_t at = static_cast<size_t>(r * v + i);
      const uint8_t* row = out.data + static_cast<size_t>(i) * rb;
      formats::dequantize_row(out.type, row, deq.data(), e);
      const float want_validation = kt.dot_f32(deq.data(), xr, e);
      if (out.type == static_cast<uint32_t>(GgmlType::F16)) {
        // No quantized form: both paths are the float path.
        ASSERT_EQ(got.quantized[at], got.validation[at]) << tag;
        continue;
      }
      ASSERT_EQ(got.validation[at], want_validation)
          << tag << " validation at [" << r << "][" << i << "]";
      float want_q;
      (q6 ? kt.dot_q6_k : kt.dot_q8_0)(row, rb, 1, a, &want_q, 1);
      ASSERT_EQ(got.quantized[at], want_q) << tag << " quantized at [" << r << "][" << i << "]";
      // |x - d q| <= d (1/2 + 2^-15) per element (see test-output-dot.cpp), plus each path's
      // float error: k eps sum |w x| for the float dot, k eps S for the block dot (kernel-types.h;
      // S <= sum |d_w sc| 95 (|x| + d) for Q6_K, its d_w and sub-block scales read from the block,
      // and sum |w| (|x| + d) for Q8_0, as |d q| <= |x| + d).
      double rounding = 0, s = 0, fl = 0;
      for (int64_t j = 0; j < e; ++j) {
        const double dj = d[static_cast<size_t>(j / block)];
        const double wj = std::fabs(deq[static_cast<size_t>(j)]), xj = std::fabs(xr[j]);
        rounding += wj * dj * (0.5 + std::ldexp(1.0, -15));
        fl += wj * xj;
        if (q6) {
          const uint8_t* blk = row + static_cast<size_t>(j / block) * 210;
          uint16_t dh;
          std::memcpy(&dh, blk + 208, 2);
          const int sc = static_cast<int8_t>(blk[192 + j % block / 16]);
          s += std::fabs(static_cast<double>(fp16_to_fp32(dh)) * sc) * 95 * (xj + dj);
        } else {
          s += wj * (xj + dj);
        }
      }
      const double bound = rounding + static_cast<double>(e) * kEps * (s + fl);
      ASSERT_NEAR(got.quantized[at], want_validation, bound)
          << tag << " at [" << r << "][" << i << "]";
      differ += got.quantized[at] != want_validation;
    }
  }
  if (q6 || q8) {
    EXPECT_GT(differ, 0) << tag << ": the quantized path never differs from the float one";
  }
}

TEST(LmHead, TinyModelQ6KQ80AndF16) {
  for (GgmlType embd : {GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::F16}) {
    const auto w = dummy("tiny-1m", embd);
    // n_embd 256: three quantized rows fit a thread's scratch, so 4 and 7 rows take passes.
    for (int64_t rows : {1, 3, 4, 7}) {
      for (int threads : {1, 2}) check_head(*w, rows, threads);
    }
  }
}

// The int8 head (LoadOptions::int8_head) from each output type: the quantized path is exactly the
// scalar reference kernel on the file's rows quantized by Int8Matrix and the row quantized by the
// reference quantizer, for any row and thread count; the validation path stays the file's float
// dot; and the int8 logits stay within both operands' rounding of the float ones.
void check_int8_head(GgmlType embd) {
  const auto w = dummy("tiny-1m", embd, true);
  const auto plain = dummy("tiny-1m", embd, false);
  ASSERT_NE(w->int8_head(), nullptr);
  ASSERT_EQ(plain->int8_head(), nullptr);
  EXPECT_EQ(lm_head_name(*w),
            "int8 (from " + formats::ggml_type_name(static_cast<uint32_t>(embd)) + ")");
  const int64_t e = w->config().n_embd, v = w->config().n_vocab;
  const formats::GgufTensorInfo& out = *w->output().info;
  int64_t eb = e;
  const size_t rb = formats::ggml_tensor_bytes(out.type, &eb, 1);
  kernels::Int8Matrix mat(v, e);
  std::vector<std::vector<float>> deq(static_cast<size_t>(v), std::vector<float>(e));
  for (int64_t i = 0; i < v; ++i) {
    formats::dequantize_row(out.type, out.data + static_cast<size_t>(i) * rb,
                            deq[static_cast<size_t>(i)].data(), e);
    mat.set_row(i, deq[static_cast<size_t>(i)].data());
  }
  const kernels::Int8MatrixView& h = *w->int8_head();
  ASSERT_EQ(std::memcmp(h.data, mat.view().data, static_cast<size_t>(h.groups()) * h.group_bytes),
            0);
  const kernels::KernelTable& ref = *kernels::kernels_for(kernels::Isa::Scalar);
  for (int64_t rows : {1, 3, 6}) {
    for (int threads : {1, 2}) {
      const std::string tag = formats::ggml_type_name(out.type) +
                              " int8 rows=" + std::to_string(rows) +
                              " threads=" + std::to_string(threads);
      const std::vector<float> x = hidden_rows(rows, e, static_cast<uint64_t>(rows + threads));
      const Logits got = run_head(*w, x, rows, threads);
      const Logits base = run_head(*plain, x, rows, threads);
      ASSERT_EQ(got.validation, base.validation) << tag;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int8_t> q(static_cast<size_t>(e));
        float scale;
        int32_t sum;
        ref.quantize(x.data() + r * e, e, 1, e, q.data(), e, &scale, &sum);
        std::vector<float> want(static_cast<size_t>(v));
        ref.matmul_i8(h, kernels::QuantizedRows{q.data(), e, &scale, &sum, 1}, want.data(), v, 0,
                      h.groups());
        const float xmax = 127.0f / scale;
        for (int64_t i = 0; i < v; ++i) {
          const size_t at = static_cast<size_t>(r * v + i);
          ASSERT_EQ(got.quantized[at], want[static_cast<size_t>(i)])
              << tag << " at " << r << ", " << i;
          double exact = 0, bound = 0;
          const auto& wr = deq[static_cast<size_t>(i)];
          const double ws = h.row_scale[i];
          for (int64_t j = 0; j < e; ++j) {
            const double xj = x[static_cast<size_t>(r * e + j)];
            exact += static_cast<double>(wr[static_cast<size_t>(j)]) * xj;
            bound += 0.5 * ws * std::fabs(xj) +
                     0.5 * (xmax / 127) * std::fabs(wr[static_cast<size_t>(j)]) +
                     0.25 * ws * (xmax / 127);
          }
          ASSERT_NEAR(got.quantized[at], exact, bound * 1.001 + 1e-5)
              << tag << " at " << r << ", " << i;
        }
      }
    }
  }
}

TEST(LmHead, Int8HeadFromQ6KQ80AndF16) {
  for (GgmlType embd : {GgmlType::F16, GgmlType::Q6_K, GgmlType::Q8_0}) check_int8_head(embd);
}

TEST(LmHead, VocabularyTilesOnALargerModel) {
  // Vocabulary 32000 of n_embd 768: 630-byte Q6_K rows, tiles of 1664 rows, 2-3 per share of the
  // vocabulary at 2 threads (8 shares of 4000 rows).
  const auto w = dummy("medium-100m", GgmlType::Q6_K);
  check_head(*w, 5, 2);
}

}  // namespace
}  // namespace bitnet::model
