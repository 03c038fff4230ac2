// Hugging Face checkpoint conversion: tiny checkpoint directories of the three config kinds
// (2B4T packed uint8 + autobitlinear, 1bitLLM bf16 master weights, Falcon3-style Llama with
// packed weights and BitLinear's divided scale) written byte by byte, converted to GGUF with
// every ternary type, then read back with the GGUF reader and checked against the ground truth
// the test generated: exact ternary codes, the scale, norms and embeddings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "convert/hf-checkpoint.h"
#include "convert/hf-convert.h"
#include "core/fp16.h"
#include "core/thread-pool.h"
#include "fixture-hf-tokenizer.h"
#include "fixture-safetensors.h"
#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "formats/tensor-codec.h"
#include "model/model-config.h"
#include "model/model-weights.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::model {
namespace {

using formats::GgmlType;
using test::le_bytes;
using test::SafetensorsBuilder;
using ::testing::HasSubstr;

constexpr uint32_t id(GgmlType t) {
  return static_cast<uint32_t>(t);
}

enum class Kind { BitNet2B4T, OneBitLlm, Falcon3 };

struct Shape {
  int64_t n_embd = 256, n_layer = 2, n_head = 4, n_head_kv = 2, n_ff = 512, n_vocab = 32;
};

// What the test wrote, by GGUF name.
struct Truth {
  std::map<std::string, std::vector<int8_t>> codes;  // linears, [out][in]
  std::map<std::string, float> scale;                // linears
  std::map<std::string, std::vector<float>> values;  // norms and embeddings, row-major
};

uint16_t bf16_truncate(float f) {
  return static_cast<uint16_t>(f32_to_bits(f) >> 16);
}

class HfCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           (std::string("bitnet-test-hf-") +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes config.json and model.safetensors; `edit` may change the tensors before writing.
  Truth write(
      Kind kind, const Shape& s = {}, bool sub_norms = true,
      const std::function<void(std::map<std::string, std::pair<std::string, std::vector<uint8_t>>>&,
                               std::map<std::string, std::vector<int64_t>>&)>& edit = {}) {
    std::mt19937 rng(1234);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    Truth truth;
    std::map<std::string, std::pair<std::string, std::vector<uint8_t>>>
        data;  // name -> dtype, bytes
    std::map<std::string, std::vector<int64_t>> shapes;
    const bool packed = kind != Kind::OneBitLlm;
    const int64_t kv = s.n_embd / s.n_head * s.n_head_kv;

    auto floats = [&](const std::string& hf, const std::string& gguf, std::vector<int64_t> shape,
                      float base) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      std::vector<float> v(static_cast<size_t>(n));
      for (auto& x : v) x = base + nd(rng);
      truth.values[gguf] = v;
      data[hf] = {"F32", le_bytes(v)};
      shapes[hf] = shape;
    };
    auto linear = [&](const std::string& hf, const std::string& gguf, int64_t out, int64_t in,
                      uint16_t scale_bf16) {
      if (packed) {
        std::vector<int8_t> w(static_cast<size_t>(out * in));
        for (auto& x : w) x = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
        // SPEC.md: field k (bits 2k..2k+1) of packed[r][c] holds W[k*out/4 + r][c] + 1.
        const int64_t q = out / 4;
        std::vector<uint8_t> p(static_cast<size_t>(q * in), 0);
        for (int64_t r = 0; r < q; ++r) {
          for (int64_t c = 0; c < in; ++c) {
            for (int k = 0; k < 4; ++k) {
              const int code = w[static_cast<size_t>((k * q + r) * in + c)] + 1;
              p[static_cast<size_t>(r * in + c)] |= static_cast<uint8_t>(code << (2 * k));
            }
          }
        }
        data[hf + ".weight"] = {"U8", p};
        shapes[hf + ".weight"] = {q, in};
        data[hf + ".weight_scale"] = {"BF16", le_bytes(std::vector<uint16_t>{scale_bf16})};
        shapes[hf + ".weight_scale"] = {1};
        const float ws = bf16_to_fp32(scale_bf16);
        truth.codes[gguf] = w;
        truth.scale[gguf] = kind == Kind::BitNet2B4T ? ws : 1.0f / ws;
      } else {
        // bf16 master weights, ternarised here independently: scale = max(mean|W|, 1e-5),
        // W_t = clamp(round_half_even(W / scale), -1, 1).
        std::vector<uint16_t> bits(static_cast<size_t>(out * in));
        std::vector<float> w(bits.size());
        double sum = 0.0;
        for (size_t i = 0; i < bits.size(); ++i) {
          bits[i] = bf16_truncate(nd(rng) * (1.0f + static_cast<float>(i % 7)));
          w[i] = bf16_to_fp32(bits[i]);
          sum += std::fabs(static_cast<double>(w[i]));
        }
        const float scale =
            std::max(static_cast<float>(sum / static_cast<double>(w.size())), 1e-5f);
        std::vector<int8_t> codes(w.size());
        for (size_t i = 0; i < w.size(); ++i) {
          codes[i] = static_cast<int8_t>(std::clamp(std::nearbyint(w[i] / scale), -1.0f, 1.0f));
        }
        data[hf + ".weight"] = {"BF16", le_bytes(bits)};
        shapes[hf + ".weight"] = {out, in};
        truth.codes[gguf] = codes;
        truth.scale[gguf] = scale;
      }
    };

    floats("model.embed_tokens.weight", "token_embd.weight", {s.n_vocab, s.n_embd}, 0.0f);
    floats("model.norm.weight", "output_norm.weight", {s.n_embd}, 1.0f);
    if (kind != Kind::BitNet2B4T) {
      floats("lm_head.weight", "output.weight", {s.n_vocab, s.n_embd}, 0.0f);
    }
    const bool old_names = kind == Kind::OneBitLlm;
    for (int64_t l = 0; l < s.n_layer; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const std::string b = "blk." + std::to_string(l) + ".";
      floats(p + "input_layernorm.weight", b + "attn_norm.weight", {s.n_embd}, 1.0f);
      floats(p + "post_attention_layernorm.weight", b + "ffn_norm.weight", {s.n_embd}, 1.0f);
      if (sub_norms) {
        floats(
            p + (old_names ? "self_attn.inner_attn_ln.weight" : "self_attn.attn_sub_norm.weight"),
            b + "attn_sub_norm.weight", {s.n_embd}, 1.0f);
        floats(p + (old_names ? "mlp.ffn_layernorm.weight" : "mlp.ffn_sub_norm.weight"),
               b + "ffn_sub_norm.weight", {s.n_ff}, 1.0f);
      }
      // bf16 scales: 0x3fc0 = 1.5, 0x4000 = 2, 0x3f40 = 0.75, ...
      linear(p + "self_attn.q_proj", b + "attn_q.weight", s.n_embd, s.n_embd, 0x3fc0);
      linear(p + "self_attn.k_proj", b + "attn_k.weight", kv, s.n_embd, 0x4000);
      linear(p + "self_attn.v_proj", b + "attn_v.weight", kv, s.n_embd, 0x3f40);
      linear(p + "self_attn.o_proj", b + "attn_output.weight", s.n_embd, s.n_embd, 0x4040);
      linear(p + "mlp.gate_proj", b + "ffn_gate.weight", s.n_ff, s.n_embd, 0x3f80);
      linear(p + "mlp.up_proj", b + "ffn_up.weight", s.n_ff, s.n_embd, 0x4020);
      linear(p + "mlp.down_proj", b + "ffn_down.weight", s.n_embd, s.n_ff, 0x3e80);
    }
    if (edit) edit(data, shapes);
    SafetensorsBuilder st;
    for (const auto& [name, d] : data) st.add(name, d.first, shapes[name], d.second);
    st.write(dir_ / "model.safetensors");

    const std::string common = "\"hidden_size\": " + std::to_string(s.n_embd) +
                               ", \"num_hidden_layers\": " + std::to_string(s.n_layer) +
                               ", \"num_attention_heads\": " + std::to_string(s.n_head) +
                               ", \"num_key_value_heads\": " + std::to_string(s.n_head_kv) +
                               ", \"intermediate_size\": " + std::to_string(s.n_ff) +
                               ", \"vocab_size\": " + std::to_string(s.n_vocab) +
                               ", \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-05";
    std::string cfg;
    switch (kind) {
      case Kind::BitNet2B4T:
        cfg = R"({"architectures": ["BitNetForCausalLM"], "hidden_act": "relu2",
          "rope_theta": 500000.0, "tie_word_embeddings": true, "rope_scaling": null,
          "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
          "quantization_mode": "offline"}, )" +
              common + "}";
        break;
      case Kind::OneBitLlm:
        cfg = R"({"architectures": ["BitnetForCausalLM"], "hidden_act": "silu",
          "tie_word_embeddings": false, )" +
              common + "}";
        break;
      case Kind::Falcon3:
        cfg = R"({"architectures": ["LlamaForCausalLM"], "hidden_act": "silu",
          "rope_theta": 1000042.0, "head_dim": )" +
              std::to_string(s.n_embd / s.n_head) + R"(,
          "quantization_config": {"quant_method": "bitnet", "modules_to_not_convert": null}, )" +
              common + "}";
        break;
    }
    std::ofstream(dir_ / "config.json") << cfg;
    return truth;
  }

  std::filesystem::path dir_;
};

void expect_valid(const ModelConfig& c, const formats::GgufFile& f) {
  const std::vector<std::string> problems = validate_tensors(c, f);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

// Converts, reads back and compares everything with the truth.
void check_conversion(const HfCheckpoint& ck, const Truth& truth, uint32_t ternary_type,
                      uint32_t embd_type, Arch arch, bool tied) {
  SCOPED_TRACE(formats::ggml_type_name(ternary_type) + " / " + formats::ggml_type_name(embd_type));
  formats::GgufWriter w;
  HfConvertOptions opt;
  opt.ternary_type = ternary_type;
  opt.embedding_type = embd_type;
  std::vector<std::string> progress;
  opt.progress = [&](size_t i, size_t n, const std::string& name) {
    EXPECT_EQ(i, progress.size());
    EXPECT_EQ(n, ck.tensors().size());
    progress.push_back(name);
  };
  add_hf_checkpoint(ck, opt, w);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const formats::GgufFile f = formats::GgufFile::from_memory(bytes, "converted.gguf");
  EXPECT_EQ(progress.size(), ck.tensors().size());

  const ModelConfig c = read_model_config(f);
  EXPECT_EQ(c.arch, arch);
  EXPECT_EQ(c.activation, arch == Arch::BitNetB158 ? FfnActivation::Relu2 : FfnActivation::Silu);
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.n_ff, 512);
  EXPECT_EQ(c.n_vocab, 32);
  EXPECT_EQ(c.n_ctx_train, 128);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(c.tied_output, tied);
  expect_valid(c, f);
  EXPECT_EQ(f.tensors().size(), truth.codes.size() + truth.values.size());

  for (const auto& [name, codes] : truth.codes) {
    const formats::GgufTensorInfo& t = f.tensor(name);
    EXPECT_EQ(t.type, ternary_type) << name;
    const int64_t k = t.dims[0], n = t.dims[1];
    std::vector<int8_t> got(static_cast<size_t>(n * k));
    std::vector<float> row_scale(static_cast<size_t>(n));
    formats::decode_ternary(t.type, t.data, t.size, n, k, name, got.data(), row_scale.data());
    EXPECT_EQ(got, codes) << name;
    // TQ types store d as fp16; I2_S keeps the f32.
    const float want = ternary_type == id(GgmlType::I2_S)
                           ? truth.scale.at(name)
                           : fp16_to_fp32(fp32_to_fp16(truth.scale.at(name)));
    for (float s : row_scale) ASSERT_EQ(s, want) << name;
  }
  for (const auto& [name, v] : truth.values) {
    const formats::GgufTensorInfo& t = f.tensor(name);
    const bool embd = name == "token_embd.weight" || name == "output.weight";
    EXPECT_EQ(t.type, embd ? embd_type : id(GgmlType::F32)) << name;
    std::vector<float> got(v.size());
    const int64_t ne0 = t.dims[0];
    const size_t row_bytes = formats::ggml_tensor_bytes(t.type, &ne0, 1);
    for (int64_t r = 0; r < t.dims[1]; ++r) {
      formats::dequantize_row(t.type, t.data + static_cast<size_t>(r) * row_bytes,
                              got.data() + r * ne0, ne0);
    }
    for (size_t i = 0; i < v.size(); ++i) {
      if (t.type == id(GgmlType::F32)) {
        ASSERT_EQ(got[i], v[i]) << name << " [" << i << "]";
      } else if (t.type == id(GgmlType::F16)) {
        ASSERT_EQ(got[i], fp16_to_fp32(fp32_to_fp16(v[i]))) << name << " [" << i << "]";
      } else {
        // Q8_0: half a step of amax / 127 of its 32-block; Q6_K: at most 1/62 of the 256-block's
        // amax (tensor-codec.h). The embeddings are N(0, 0.02): bound by the tensor's amax.
        float amax = 0.0f;
        for (float x : v) amax = std::max(amax, std::fabs(x));
        const float tol = t.type == id(GgmlType::Q8_0) ? amax / 254.0f * 1.001f : amax / 62.0f;
        ASSERT_NEAR(got[i], v[i], tol) << name << " [" << i << "]";
      }
    }
  }
}

const uint32_t kTernaryTypes[] = {id(GgmlType::I2_S), id(GgmlType::TQ2_0), id(GgmlType::TQ1_0)};

TEST_F(HfCheckpointTest, BitNet2B4TPackedAutoBitLinear) {
  const Truth truth = write(Kind::BitNet2B4T);
  const HfCheckpoint ck = HfCheckpoint::open(dir_.string());
  EXPECT_EQ(ck.hf_architecture(), "BitNetForCausalLM");
  EXPECT_FALSE(ck.scale_divides());
  EXPECT_EQ(ck.config().rope_freq_base, 500000.0f);
  EXPECT_EQ(truth.scale.at("blk.0.attn_q.weight"), 1.5f);
  for (uint32_t tt : kTernaryTypes) {
    check_conversion(ck, truth, tt, id(GgmlType::F16), Arch::BitNetB158, true);
  }
  check_conversion(ck, truth, id(GgmlType::I2_S), id(GgmlType::Q6_K), Arch::BitNetB158, true);
  check_conversion(ck, truth, id(GgmlType::I2_S), id(GgmlType::Q8_0), Arch::BitNetB158, true);
  check_conversion(ck, truth, id(GgmlType::I2_S), id(GgmlType::F32), Arch::BitNetB158, true);
}

TEST_F(HfCheckpointTest, OneBitLlmBf16MasterWeights) {
  const Truth truth = write(Kind::OneBitLlm);
  const HfCheckpoint ck = HfCheckpoint::open(dir_.string());
  EXPECT_EQ(ck.hf_architecture(), "BitnetForCausalLM");
  EXPECT_EQ(ck.config().rope_freq_base, 10000.0f);
  // The ternarisation produced all three values.
  const auto& codes = truth.codes.at("blk.1.ffn_down.weight");
  for (int v : {-1, 0, 1}) EXPECT_NE(std::count(codes.begin(), codes.end(), v), 0) << v;
  for (uint32_t tt : kTernaryTypes) {
    check_conversion(ck, truth, tt, id(GgmlType::F32), Arch::BitNet, false);
  }
}

TEST_F(HfCheckpointTest, Falcon3LlamaPackedBitLinearDivides) {
  const Truth truth = write(Kind::Falcon3);
  const HfCheckpoint ck = HfCheckpoint::open(dir_.string());
  EXPECT_EQ(ck.hf_architecture(), "LlamaForCausalLM");
  EXPECT_TRUE(ck.scale_divides());
  EXPECT_EQ(truth.scale.at("blk.0.attn_k.weight"), 0.5f);  // 1 / weight_scale 2
  for (uint32_t tt : kTernaryTypes) {
    check_conversion(ck, truth, tt, id(GgmlType::F16), Arch::BitNet, false);
  }
}

// Expects HfCheckpoint::open to throw std::invalid_argument mentioning every fragment.
void expect_open_error(const std::filesystem::path& dir, std::vector<std::string> fragments) {
  try {
    (void)HfCheckpoint::open(dir.string());
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    for (const std::string& f : fragments) EXPECT_THAT(e.what(), HasSubstr(f)) << e.what();
  }
}

TEST_F(HfCheckpointTest, LlamaWithoutSubNormsBecomesArchLlamaWithPermutedQK) {
  const Truth truth = write(Kind::Falcon3, {}, false);
  const HfCheckpoint ck = HfCheckpoint::open(dir_.string());
  formats::GgufWriter w;
  HfConvertOptions opt;
  opt.ternary_type = static_cast<uint32_t>(GgmlType::I2_S);
  add_hf_checkpoint(ck, opt, w);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const formats::GgufFile f = formats::GgufFile::from_memory(bytes, "llama.gguf");
  const ModelConfig c = read_model_config(f);
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_FALSE(c.sub_norms);
  EXPECT_EQ(c.rope_style, RopeStyle::Norm);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  expect_valid(c, f);
  // attn_q rows are the original rows permuted per head (row 2i + j = row j * d/2 + i); attn_v
  // is unchanged.
  const formats::GgufTensorInfo& q = f.tensor("blk.0.attn_q.weight");
  const int64_t in = q.dims[0], rows = q.dims[1], d = c.head_dim;
  std::vector<int8_t> got(static_cast<size_t>(rows * in));
  std::vector<float> scale(static_cast<size_t>(rows));
  formats::decode_ternary(q.type, q.data, q.size, rows, in, q.name, got.data(), scale.data());
  const auto& want = truth.codes.at("blk.0.attn_q.weight");
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t h = r / d, wi = r % d, src = h * d + (wi % 2) * (d / 2) + wi / 2;
    for (int64_t k = 0; k < in; ++k) {
      ASSERT_EQ(got[static_cast<size_t>(r * in + k)], want[static_cast<size_t>(src * in + k)])
          << "row " << r << " col " << k;
    }
  }
  const formats::GgufTensorInfo& v = f.tensor("blk.0.attn_v.weight");
  std::vector<int8_t> vgot(static_cast<size_t>(v.dims[0] * v.dims[1]));
  std::vector<float> vscale(static_cast<size_t>(v.dims[1]));
  formats::decode_ternary(v.type, v.data, v.size, v.dims[1], v.dims[0], v.name, vgot.data(),
                          vscale.data());
  EXPECT_EQ(vgot, truth.codes.at("blk.0.attn_v.weight"));
}

TEST_F(HfCheckpointTest, ShapeAndExtraTensorErrors) {
  write(Kind::BitNet2B4T, {}, true, [](auto& data, auto& shapes) {
    data["model.layers.0.self_attn.q_proj.bias"] = {"F32", std::vector<uint8_t>(256 * 4)};
    shapes["model.layers.0.self_attn.q_proj.bias"] = {256};
  });
  expect_open_error(dir_, {"model.layers.0.self_attn.q_proj.bias", "no place"});

  write(Kind::BitNet2B4T, {}, true, [](auto& data, auto& shapes) {
    data["model.layers.1.mlp.up_proj.weight"] = {"U8", std::vector<uint8_t>(512 * 256)};
    shapes["model.layers.1.mlp.up_proj.weight"] = {512, 256};
  });
  expect_open_error(
      dir_, {"model.layers.1.mlp.up_proj.weight", "expected shape [128, 256]", "found [512, 256]"});

  write(Kind::BitNet2B4T, {}, true,
        [](auto& data, auto&) { data.erase("model.layers.1.mlp.down_proj.weight_scale"); });
  EXPECT_THROW((void)HfCheckpoint::open(dir_.string()), formats::SafetensorsError);
}

TEST_F(HfCheckpointTest, PackedCodeThreeIsAnError) {
  write(Kind::BitNet2B4T, {}, true,
        [](auto& data, auto&) { data["model.layers.0.mlp.gate_proj.weight"].second[5] = 0xff; });
  const HfCheckpoint ck = HfCheckpoint::open(dir_.string());
  formats::GgufWriter w;
  add_hf_checkpoint(ck, {}, w);
  try {
    (void)w.to_bytes();
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.layers.0.mlp.gate_proj.weight"));
    EXPECT_THAT(e.what(), HasSubstr("is 3"));
  }
}

TEST_F(HfCheckpointTest, TqNeedsMultipleOf256) {
  Shape s;
  s.n_embd = 128;
  s.n_head = 2;
  s.n_head_kv = 1;
  s.n_ff = 256;
  write(Kind::BitNet2B4T, s);
  const HfCheckpoint ck = HfCheckpoint::open(dir_.string());
  formats::GgufWriter w;
  HfConvertOptions opt;
  opt.ternary_type = id(GgmlType::TQ2_0);
  try {
    add_hf_checkpoint(ck, opt, w);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("blk.0.attn_q.weight: TQ2_0 needs ne0 to be a multiple of 256"));
    EXPECT_THAT(e.what(), HasSubstr("ne0 = 128"));
  }
  opt.ternary_type = id(GgmlType::I2_S);
  formats::GgufWriter ok;
  add_hf_checkpoint(ck, opt, ok);
  const std::vector<uint8_t> bytes = ok.to_bytes();
  const formats::GgufFile f = formats::GgufFile::from_memory(bytes, "small.gguf");
  expect_valid(read_model_config(f), f);
}

TEST_F(HfCheckpointTest, ConfigErrors) {
  write(Kind::BitNet2B4T);
  std::ofstream(dir_ / "config.json") << R"({"architectures": ["GPT2LMHeadModel"]})";
  expect_open_error(dir_, {"config.json", "GPT2LMHeadModel", "not supported"});
  std::ofstream(dir_ / "config.json") << R"({"architectures": ["LlamaForCausalLM"]})";
  expect_open_error(dir_, {"without a bitnet quantization_config"});
  std::ofstream(dir_ / "config.json")
      << R"({"architectures": ["BitNetForCausalLM"], "hidden_act": "gelu"})";
  expect_open_error(dir_, {"hidden_act", "gelu"});
  std::ofstream(dir_ / "config.json") << R"({"architectures": ["BitNetForCausalLM"]})";
  expect_open_error(dir_, {"hidden_size", "missing"});
  std::ofstream(dir_ / "config.json") << "{ nope";
  expect_open_error(dir_, {"config.json", "not valid JSON"});
}

// Logits of every position for a few tokens.
std::vector<float> run_tokens(const ModelWeights& w) {
  ThreadPool pool(1);
  SessionOptions so;
  so.n_ctx = 16;
  Session session(w, so, pool);
  const int session_slot = session.add_sequence();
  const std::vector<int32_t> tokens = {4096, 9, 1917, 4105, 3};
  std::vector<float> logits(tokens.size() * static_cast<size_t>(w.config().n_vocab));
  session.eval(session_slot, tokens, logits.data(), true);
  return logits;
}

// ModelWeights::load(HF directory): converted into the cache directory once, identical to the
// explicitly converted GGUF, reused while current, converted again when config.json changes.
TEST_F(HfCheckpointTest, DirectoryLoadsThroughACachedConversion) {
  if (!std::filesystem::exists(test::reference_tokenizer_dir() / "llama3-bpe-4112.gguf")) {
    GTEST_SKIP() << "reference data not found at " << test::reference_tokenizer_dir().string();
  }
  Shape s;
  s.n_vocab = 4112;
  write(Kind::BitNet2B4T, s);
  test::write_llama3_tokenizer(dir_, test::MergeForm::Pairs);
  const std::filesystem::path cache = dir_.string() + "-cache";
  const std::filesystem::path explicit_gguf = dir_.string() + "-explicit.gguf";
  std::filesystem::remove_all(cache);
  LoadOptions o;
  o.cache_dir = cache.string();
  o.layout = kernels::TernaryLayout::T2;

  const auto direct = load_weights(dir_.string(), o);
  const LoadReport& rep = direct->report();
  EXPECT_TRUE(rep.hf_converted);
  EXPECT_EQ(std::filesystem::path(rep.hf_gguf).parent_path(), cache);
  EXPECT_THAT(std::filesystem::path(rep.hf_gguf).filename().string(),
              ::testing::StartsWith(dir_.filename().string() + "."));
  EXPECT_EQ(direct->file().path(), rep.hf_gguf);

  {
    const HfCheckpoint ck = HfCheckpoint::open(dir_.string());
    formats::GgufWriter w;
    ASSERT_TRUE(add_hf_checkpoint(ck, {}, w).tokenizer.has_value());
    w.write(explicit_gguf.string());
  }
  const auto converted = ModelWeights::load(explicit_gguf.string(), o);
  EXPECT_TRUE(converted->report().hf_gguf.empty());
  EXPECT_EQ(run_tokens(*direct), run_tokens(*converted));

  // The tokenizer travelled with it.
  const Tokenizer tok = Tokenizer::from_gguf(direct->file());
  EXPECT_EQ(tok.bos(), 4096);
  EXPECT_EQ(tok.eot(), 4105);
  for (const auto& v : test::read_tokenizer_vectors("llama3-bpe-4112")) {
    EXPECT_EQ(tok.encode(v.text, false, false), v.ids) << "'" << v.text << "'";
  }

  const auto mtime = std::filesystem::last_write_time(rep.hf_gguf);
  const auto again = load_weights(dir_.string(), o);
  EXPECT_FALSE(again->report().hf_converted);
  EXPECT_EQ(again->report().hf_gguf, rep.hf_gguf);
  EXPECT_EQ(std::filesystem::last_write_time(rep.hf_gguf), mtime);

  const auto config = dir_ / "config.json";
  std::filesystem::last_write_time(
      config, std::filesystem::last_write_time(config) + std::chrono::seconds(5));
  const auto touched = load_weights(dir_.string(), o);
  EXPECT_TRUE(touched->report().hf_converted);
  EXPECT_EQ(touched->report().hf_gguf, rep.hf_gguf);  // replaced in place
  EXPECT_NE(std::filesystem::last_write_time(rep.hf_gguf), mtime);
  EXPECT_EQ(run_tokens(*touched), run_tokens(*converted));
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(cache)) ++files;
  EXPECT_EQ(files, 1u);  // no temporary or stale conversion left behind

  std::filesystem::remove_all(cache);
  std::filesystem::remove(explicit_gguf);
}

// A checkpoint holding NaN or infinity in a tensor the loader checks by value (a norm, the
// embedding) fails when it is converted, naming the value, and leaves no conversion behind.
TEST_F(HfCheckpointTest, NonFiniteValuesFailTheConversion) {
  write(Kind::OneBitLlm, {}, true, [](auto& data, auto&) {
    auto& norm = data["model.norm.weight"].second;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(norm.data() + 4 * 3, &nan, 4);
  });
  const std::filesystem::path cache = dir_.string() + "-cache";
  std::filesystem::remove_all(cache);
  try {
    hf_dir_to_cached_gguf(dir_.string(), cache.string());
    ADD_FAILURE() << "a NaN norm was converted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr(dir_.string()));
    EXPECT_THAT(e.what(), HasSubstr("tensor 'output_norm.weight': element 3 is NaN"));
  }
  size_t files = 0;
  if (std::filesystem::exists(cache)) {
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(cache)) ++files;
  }
  EXPECT_EQ(files, 0u);
  std::filesystem::remove_all(cache);
}

}  // namespace
}  // namespace bitnet::model
