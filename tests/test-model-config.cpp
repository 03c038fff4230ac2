// ModelConfig, expected_tensors, validate_tensors, bytes_per_token and the inspect data layer
// (model-info): against the reference fixtures (hyper-parameters from reference/README.md section
// 3) and against small models built in memory with one thing wrong at a time.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "model/model-config.h"
#include "tools/model-info.h"

namespace bitnet::model {
namespace {

using formats::GgmlType;
using formats::GgufFile;
using formats::GgufWriter;

std::filesystem::path reference_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  return env && *env ? env : BITNET_REFERENCE_DIR_DEFAULT;
}

#define REQUIRE_FIXTURE(path)                                                                 \
  do {                                                                                        \
    if (!std::filesystem::exists(path))                                                       \
      GTEST_SKIP() << path << " not found; set BITNET_REFERENCE_DIR to the shared reference " \
                   << "directory";                                                            \
  } while (0)

constexpr const char* kFixtures[] = {
    "tiny-b158.f32.gguf",   "tiny-b158.f16.gguf",   "tiny-b158.i2_s.gguf",   "tiny-b158.tq2_0.gguf",
    "tiny-b158.tq1_0.gguf", "tiny-bitnet.f32.gguf", "tiny-bitnet.tq2_0.gguf"};

std::filesystem::path fixture(const std::string& name) {
  return reference_dir() / "models" / name;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += p + "\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Reference fixtures

class Fixture : public testing::TestWithParam<const char*> {};

TEST_P(Fixture, ConfigMatchesTheReferenceTableAndTensorsValidate) {
  const auto path = fixture(GetParam());
  REQUIRE_FIXTURE(path);
  const GgufFile f = GgufFile::open(path.string());
  const ModelConfig c = read_model_config(f);
  const bool b158 = std::string(GetParam()).starts_with("tiny-b158");
  EXPECT_EQ(c.arch, b158 ? Arch::BitNetB158 : Arch::BitNet);
  EXPECT_EQ(c.arch_key, b158 ? "bitnet-b1.58" : "bitnet");
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_layer, b158 ? 4 : 2);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, b158 ? 2 : 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_embd_kv(), b158 ? 128 : 256);
  EXPECT_EQ(c.n_ff, b158 ? 768 : 512);
  EXPECT_EQ(c.n_ctx_train, 512);
  EXPECT_EQ(c.rope_dim, 64);
  EXPECT_EQ(c.rope_freq_base, b158 ? 500000.0f : 10000.0f);
  EXPECT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(c.n_vocab, 4112);
  EXPECT_EQ(c.activation, b158 ? FfnActivation::Relu2 : FfnActivation::Silu);
  EXPECT_TRUE(c.tied_output);

  EXPECT_EQ(joined(validate_tensors(c, f)), "");
  // 11 tensors per layer + token_embd + output_norm, plus 7 .scale tensors per layer for bitnet.
  EXPECT_EQ(f.tensors().size(), static_cast<size_t>(c.n_layer * (b158 ? 11 : 18) + 2));
}

INSTANTIATE_TEST_SUITE_P(AllFixtures, Fixture, testing::ValuesIn(kFixtures),
                         [](const testing::TestParamInfo<const char*>& p) {
                           std::string s = p.param;
                           for (char& ch : s)
                             if (ch == '.' || ch == '-') ch = '_';
                           return s;
                         });

// The bytes a decode step reads, computed from the README's tensor list and the format sizes:
// every linear as stored, every norm, and token_embd in full (it is the tied LM head).
uint64_t expected_bytes_per_token(uint64_t (*linear_bytes)(uint64_t elements)) {
  const uint64_t E = 256, KV = 128, F = 768, L = 4, V = 4112;
  const uint64_t linears[] = {E * E, E * KV, E * KV, E * E, E * F, E * F, F * E};
  uint64_t per_layer = 0;
  for (const uint64_t n : linears) per_layer += linear_bytes(n);
  per_layer += (E + E + E + F) * 4;  // attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm (F32)
  return L * per_layer + E * 4 /* output_norm */ + E * V * 2 /* token_embd F16 */;
}

TEST(BytesPerToken, I2sFixtureEqualsTheSumOfItsWeights) {
  const auto path = fixture("tiny-b158.i2_s.gguf");
  REQUIRE_FIXTURE(path);
  const GgufFile f = GgufFile::open(path.string());
  // I2_S: 2 bits per weight plus a 32-byte trailer per tensor.
  const uint64_t expected = expected_bytes_per_token([](uint64_t n) { return n / 4 + 32; });
  EXPECT_EQ(expected, 2918272u);
  EXPECT_EQ(bytes_per_token(read_model_config(f), f), expected);
}

TEST(BytesPerToken, Tq2FixtureEqualsTheSumOfItsWeights) {
  const auto path = fixture("tiny-b158.tq2_0.gguf");
  REQUIRE_FIXTURE(path);
  const GgufFile f = GgufFile::open(path.string());
  // TQ2_0: 66 bytes per block of 256 weights.
  const uint64_t expected = expected_bytes_per_token([](uint64_t n) { return n / 256 * 66; });
  EXPECT_EQ(bytes_per_token(read_model_config(f), f), expected);
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.n_embd, b.n_embd);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.n_head, b.n_head);
  EXPECT_EQ(a.n_head_kv, b.n_head_kv);
  EXPECT_EQ(a.n_ff, b.n_ff);
  EXPECT_EQ(a.n_vocab, b.n_vocab);
  EXPECT_EQ(a.n_ctx_train, b.n_ctx_train);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.rope_dim, b.rope_dim);
  EXPECT_EQ(a.rope_freq_base, b.rope_freq_base);
  EXPECT_EQ(a.rms_eps, b.rms_eps);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.tied_output, b.tied_output);
}

ModelConfig round_trip(const ModelConfig& c) {
  GgufWriter w;
  write_model_config(c, w);
  const std::vector<uint8_t> bytes = w.to_bytes();
  return read_model_config(GgufFile::from_memory(bytes, "round-trip.gguf"));
}

TEST(WriteModelConfig, ValuesOutsideUint32AreRefusedNotWrapped) {
  ModelConfig c;
  c.arch = Arch::BitNetB158;
  c.n_ctx_train = int64_t{1} << 32;
  GgufWriter w;
  try {
    write_model_config(c, w);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("context_length = 4294967296"), std::string::npos)
        << e.what();
  }
  c.n_ctx_train = 4096;
  c.n_vocab = -1;
  EXPECT_THROW(write_model_config(c, w), std::invalid_argument);
}

TEST(WriteModelConfig, FixtureConfigsRoundTrip) {
  for (const char* name : {"tiny-b158.i2_s.gguf", "tiny-bitnet.f32.gguf"}) {
    const auto path = fixture(name);
    REQUIRE_FIXTURE(path);
    SCOPED_TRACE(name);
    const ModelConfig c = read_model_config(GgufFile::open(path.string()));
    expect_same_config(round_trip(c), c);
  }
}

// Scaled RoPE would silently give wrong positions: such files are refused by name.
TEST(ReadModelConfig, ScaledRopeIsRefused) {
  const auto path = fixture("tiny-b158.i2_s.gguf");
  REQUIRE_FIXTURE(path);
  const ModelConfig c = read_model_config(GgufFile::open(path.string()));
  auto read_with = [&](const std::string& type, float factor) {
    GgufWriter w;
    write_model_config(c, w);
    w.set("bitnet-b1.58.rope.scaling.type", type);
    w.set("bitnet-b1.58.rope.scaling.factor", factor);
    const std::vector<uint8_t> bytes = w.to_bytes();
    return read_model_config(GgufFile::from_memory(bytes, "scaled.gguf"));
  };
  EXPECT_NO_THROW(read_with("none", 1.0f));
  EXPECT_NO_THROW(read_with("linear", 1.0f));  // factor 1: plain RoPE (tiny-bitnet has it)
  EXPECT_THROW(read_with("yarn", 1.0f), std::invalid_argument);
  try {
    read_with("linear", 4.0f);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("scaled RoPE (bitnet-b1.58.rope.scaling.type linear"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("scaled.gguf"), std::string::npos) << e.what();
  }
}

TEST(WriteModelConfig, NonDefaultValuesRoundTrip) {
  ModelConfig c;
  c.arch = Arch::BitNet;
  c.activation = FfnActivation::Silu;
  c.n_embd = 384;
  c.n_layer = 3;
  c.n_head = 6;
  c.n_head_kv = 3;
  c.head_dim = 64;
  c.rope_dim = 32;  // partial rotary
  c.n_ff = 1000;
  c.n_vocab = 32002;
  c.n_ctx_train = 2048;
  c.rope_freq_base = 123456.5f;
  c.rms_eps = 1e-6f;
  const ModelConfig r = round_trip(c);
  expect_same_config(r, c);
  EXPECT_EQ(r.arch_key, "bitnet");
}

TEST(ArchFromName, KnownAndUnknownNames) {
  EXPECT_EQ(arch_from_name("bitnet-b1.58"), Arch::BitNetB158);
  EXPECT_EQ(arch_from_name("bitnet-25"), Arch::BitNetB158);
  EXPECT_EQ(arch_from_name("bitnet"), Arch::BitNet);
  EXPECT_EQ(arch_from_name("llama"),
            Arch::Llama);  // ternary llama files (llama.cpp TQ conversions)
  EXPECT_FALSE(arch_from_name("qwen2").has_value());
  EXPECT_FALSE(arch_from_name("").has_value());
}

// ---------------------------------------------------------------------------------------------
// Models built in memory: E 64, 1 layer, 2 heads (head_dim 32), 1 KV head, F 128, vocab 32.

struct SynthTensor {
  std::string name;
  uint32_t type;
  std::vector<int64_t> dims;
};

ModelConfig small_config(Arch arch = Arch::BitNetB158) {
  ModelConfig c;
  c.arch = arch;
  c.activation = arch == Arch::BitNetB158 ? FfnActivation::Relu2 : FfnActivation::Silu;
  c.n_embd = 64;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_head_kv = 1;
  c.head_dim = 32;
  c.rope_dim = 32;
  c.n_ff = 128;
  c.n_vocab = 32;
  c.n_ctx_train = 64;
  return c;
}

struct Synthetic {
  ModelConfig config = small_config();
  std::vector<SynthTensor> tensors;
  std::vector<std::string> drop_keys;                    // removed after write_model_config
  std::function<void(GgufWriter&)> edit = [](auto&) {};  // run after the config keys

  Synthetic() {
    for (const TensorSpec& s : expected_tensors(config)) {
      if (!s.optional) tensors.push_back({s.name, uint32_t(GgmlType::F32), s.dims});
    }
  }
  SynthTensor& tensor(const std::string& name) {
    for (SynthTensor& t : tensors)
      if (t.name == name) return t;
    throw std::logic_error("no tensor " + name);
  }
  void remove(const std::string& name) {
    std::erase_if(tensors, [&](const SynthTensor& t) { return t.name == name; });
  }

  std::vector<uint8_t> bytes() const {
    GgufWriter config_keys;
    write_model_config(config, config_keys);
    GgufWriter w;
    for (const auto& kv : config_keys.kvs()) {
      bool drop = false;
      for (const std::string& k : drop_keys) drop = drop || kv.key == k;
      if (!drop) w.set(kv.key, kv.value);
    }
    edit(w);
    for (const SynthTensor& t : tensors) {
      w.add_tensor(t.name, t.type, t.dims,
                   [](std::span<uint8_t> out) { std::memset(out.data(), 0, out.size()); });
    }
    return w.to_bytes();
  }
};

constexpr const char* kName = "synthetic.gguf";

std::string config_error(const Synthetic& s) {
  const std::vector<uint8_t> b = s.bytes();
  const GgufFile f = GgufFile::from_memory(b, kName);
  try {
    read_model_config(f);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<std::string> problems(const Synthetic& s) {
  const std::vector<uint8_t> b = s.bytes();
  const GgufFile f = GgufFile::from_memory(b, kName);
  return validate_tensors(read_model_config(f), f);
}

TEST(SyntheticModel, CompleteModelIsValid) {
  const Synthetic s;
  EXPECT_EQ(joined(problems(s)), "");
}

TEST(SyntheticModel, BitnetScaleTensorsAndUntiedOutputAreValid) {
  Synthetic s;
  s.config = small_config(Arch::BitNet);
  s.tensors.clear();
  for (const TensorSpec& t : expected_tensors(s.config))
    s.tensors.push_back({t.name, uint32_t(GgmlType::F32), t.dims});
  const std::vector<uint8_t> b = s.bytes();
  const GgufFile f = GgufFile::from_memory(b, kName);
  const ModelConfig c = read_model_config(f);
  EXPECT_EQ(c.arch, Arch::BitNet);
  EXPECT_FALSE(c.tied_output);
  EXPECT_EQ(joined(validate_tensors(c, f)), "");
  // Untied: output.weight is read, token_embd (one row per token) is not.
  uint64_t expected = 0;
  for (const auto& t : f.tensors())
    if (t.name != "token_embd.weight") expected += t.size;
  EXPECT_EQ(bytes_per_token(c, f), expected);
}

TEST(SyntheticModel, UnknownArchitectureListsTheKnownOnes) {
  Synthetic s;
  s.edit = [](GgufWriter& w) { w.set("general.architecture", "qwen2"); };
  const std::string e = config_error(s);
  EXPECT_NE(e.find(kName), std::string::npos) << e;
  EXPECT_NE(e.find("'qwen2'"), std::string::npos) << e;
  EXPECT_NE(e.find("bitnet-b1.58, bitnet-25, bitnet, llama"), std::string::npos) << e;
}

TEST(SyntheticModel, MissingKeysAreNamed) {
  for (const char* key : {"general.architecture", "bitnet-b1.58.embedding_length",
                          "bitnet-b1.58.block_count", "bitnet-b1.58.attention.head_count",
                          "bitnet-b1.58.feed_forward_length", "bitnet-b1.58.context_length"}) {
    Synthetic s;
    s.drop_keys = {key};
    const std::string e = config_error(s);
    EXPECT_NE(e.find(std::string("'") + key + "' is missing"), std::string::npos) << e;
    EXPECT_NE(e.find(kName), std::string::npos) << e;
  }
}

TEST(SyntheticModel, OptionalKeysTakeTheirDefaults) {
  Synthetic s;
  s.drop_keys = {"bitnet-b1.58.attention.head_count_kv", "bitnet-b1.58.rope.dimension_count",
                 "bitnet-b1.58.rope.freq_base", "bitnet-b1.58.attention.layer_norm_rms_epsilon"};
  s.tensor("blk.0.attn_k.weight").dims = {64, 64};  // n_head_kv defaults to n_head (MHA)
  s.tensor("blk.0.attn_v.weight").dims = {64, 64};
  const std::vector<uint8_t> b = s.bytes();
  const GgufFile f = GgufFile::from_memory(b, kName);
  const ModelConfig c = read_model_config(f);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.rope_dim, 32);
  EXPECT_EQ(c.rope_freq_base, 10000.0f);
  EXPECT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(joined(validate_tensors(c, f)), "");
}

TEST(SyntheticModel, VocabularyFromEmbeddingThenTokenizer) {
  Synthetic s;
  s.drop_keys = {"bitnet-b1.58.vocab_size"};
  s.tensor("token_embd.weight").dims = {64, 40};
  {
    const std::vector<uint8_t> b = s.bytes();
    EXPECT_EQ(read_model_config(GgufFile::from_memory(b, kName)).n_vocab, 40);
  }
  s.tensors.clear();
  s.edit = [](GgufWriter& w) {
    w.set("tokenizer.ggml.tokens", formats::GgufValue(std::vector<std::string>(50, "x")));
  };
  {
    const std::vector<uint8_t> b = s.bytes();
    EXPECT_EQ(read_model_config(GgufFile::from_memory(b, kName)).n_vocab, 50);
  }
  s.edit = [](GgufWriter&) {};
  EXPECT_NE(config_error(s).find("cannot tell the vocabulary size"), std::string::npos);
}

TEST(SyntheticModel, InconsistentHeadCounts) {
  Synthetic s;
  s.edit = [](GgufWriter& w) { w.set("bitnet-b1.58.embedding_length", uint32_t{65}); };
  std::string e = config_error(s);
  EXPECT_NE(e.find("embedding_length 65 is not a multiple of attention.head_count 2"),
            std::string::npos)
      << e;
  s.edit = [](GgufWriter& w) {
    w.set("bitnet-b1.58.attention.head_count", uint32_t{4});
    w.set("bitnet-b1.58.attention.head_count_kv", uint32_t{3});
  };
  e = config_error(s);
  EXPECT_NE(e.find("head_count 4 is not a multiple of attention.head_count_kv 3"),
            std::string::npos)
      << e;
  s.edit = [](GgufWriter& w) { w.set("bitnet-b1.58.block_count", uint32_t{0}); };
  e = config_error(s);
  EXPECT_NE(e.find("'bitnet-b1.58.block_count': expected a positive value, found 0"),
            std::string::npos)
      << e;
  s.edit = [](GgufWriter& w) { w.set("bitnet-b1.58.embedding_length", "sixty-four"); };
  e = config_error(s);
  EXPECT_NE(e.find("embedding_length': expected an integer, found STRING"), std::string::npos) << e;
}

TEST(SyntheticModel, MissingTensor) {
  Synthetic s;
  s.remove("blk.0.attn_q.weight");
  EXPECT_EQ(joined(problems(s)), "tensor 'blk.0.attn_q.weight' is missing\n");
}

TEST(SyntheticModel, WrongShape) {
  Synthetic s;
  s.tensor("blk.0.ffn_up.weight").dims = {128, 64};
  EXPECT_EQ(joined(problems(s)),
            "tensor 'blk.0.ffn_up.weight': expected shape [64, 128], found [128, 64]\n");
}

TEST(SyntheticModel, WrongTypes) {
  Synthetic s;
  s.tensor("blk.0.attn_k.weight").type = uint32_t(GgmlType::Q4_0);
  s.tensor("blk.0.ffn_norm.weight").type = uint32_t(GgmlType::Q8_0);
  s.tensor("token_embd.weight").type = uint32_t(GgmlType::Q4_0);
  const std::vector<std::string> p = problems(s);
  ASSERT_EQ(p.size(), 3u) << joined(p);
  EXPECT_EQ(p[0],
            "tensor 'token_embd.weight': type Q4_0 is not supported there (expected F32, F16, "
            "BF16, Q8_0 or Q6_K)");
  EXPECT_EQ(p[1],
            "tensor 'blk.0.attn_k.weight': type Q4_0 is not supported there (expected F32, F16, "
            "BF16, I2_S, TQ1_0 or TQ2_0)");
  EXPECT_EQ(p[2],
            "tensor 'blk.0.ffn_norm.weight': type Q8_0 is not supported there (expected F32, "
            "F16 or BF16)");
}

TEST(SyntheticModel, ExtraTensor) {
  Synthetic s;
  s.tensors.push_back({"blk.0.attn_q.bias", uint32_t(GgmlType::F32), {64}});
  EXPECT_EQ(joined(problems(s)),
            "tensor 'blk.0.attn_q.bias' is not part of architecture bitnet-b1.58\n");
}

TEST(SyntheticModel, VocabularyAndEmbeddingDisagree) {
  Synthetic s;  // vocab_size 32
  s.tensor("token_embd.weight").dims = {64, 40};
  EXPECT_EQ(joined(problems(s)),
            "tensor 'token_embd.weight': expected shape [64, 32], found [64, 40]\n");
}

// ---------------------------------------------------------------------------------------------
// model-info: what `bitnet inspect` reports

TEST(ModelInfo, I2sFixture) {
  const auto path = fixture("tiny-b158.i2_s.gguf");
  REQUIRE_FIXTURE(path);
  const GgufFile f = GgufFile::open(path.string());
  const ModelInfo info = gather_model_info(f);
  EXPECT_TRUE(info.valid()) << joined(info.problems);
  EXPECT_EQ(info.gguf_version, 3u);
  EXPECT_EQ(info.file_size, 3090944u);  // reference README table
  EXPECT_EQ(info.file_type, 40u);
  EXPECT_EQ(file_type_name(40), "mostly I2_S");
  EXPECT_EQ(info.arch_name, "bitnet-b1.58");
  ASSERT_TRUE(info.config.has_value());
  EXPECT_EQ(info.tensors.size(), 46u);
  EXPECT_EQ(info.tokenizer.model, "gpt2");
  EXPECT_EQ(info.tokenizer.pre, "llama-bpe");
  EXPECT_EQ(info.tokenizer.n_tokens, 4112);
  EXPECT_EQ(info.tokenizer.n_merges, 6397);
  EXPECT_EQ(info.tokenizer.add_bos, true);
  EXPECT_EQ(info.tokenizer.add_eos, false);
  ASSERT_EQ(info.tokenizer.special.size(), 3u);
  const auto& sp = info.tokenizer.special;
  EXPECT_EQ(sp[0].role, "bos");
  EXPECT_EQ(sp[0].id, 4096);
  EXPECT_EQ(sp[0].text, "<|begin_of_text|>");
  EXPECT_EQ(sp[1].role, "eos");
  EXPECT_EQ(sp[1].id, 4097);
  EXPECT_EQ(sp[1].text, "<|end_of_text|>");
  EXPECT_EQ(sp[2].role, "eot");
  EXPECT_EQ(sp[2].id, 4105);
  EXPECT_EQ(sp[2].text, "<|eot_id|>");
  // 4 layers of q, o (256x256), k, v (256x128), gate, up (256x768), down (768x256).
  const uint64_t ternary = 4 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 768);
  EXPECT_EQ(info.n_ternary_parameters, ternary);
  EXPECT_EQ(info.n_parameters, ternary + 256 * 4112 + 4 * (3 * 256 + 768) + 256);
  ASSERT_EQ(info.by_type.size(), 3u);
  EXPECT_EQ(info.by_type[0].type, uint32_t(GgmlType::F32));
  EXPECT_EQ(info.by_type[0].n_tensors, 17);
  EXPECT_EQ(info.by_type[1].type, uint32_t(GgmlType::F16));
  EXPECT_EQ(info.by_type[1].bytes, 256u * 4112 * 2);
  EXPECT_EQ(info.by_type[2].type, uint32_t(GgmlType::I2_S));
  EXPECT_EQ(info.by_type[2].n_tensors, 28);
  EXPECT_EQ(info.bytes_per_token, info.tensor_bytes);  // tied: every tensor is read

  const nlohmann::ordered_json j = model_info_json(info);
  EXPECT_EQ(j["tensors"].size(), 46u);
  EXPECT_EQ(j["totals"]["tensors"], 46);
  EXPECT_EQ(j["config"]["n_head_kv"], 2);
  EXPECT_EQ(j["config"]["rms_eps"], 1e-5);  // the float's shortest decimal, not 9.99999974e-06
  EXPECT_EQ(j["tokenizer"]["special"]["eot"]["text"], "<|eot_id|>");
  EXPECT_EQ(j["totals"]["by_type"]["I2_S"]["tensors"], 28);
  EXPECT_EQ(j["valid"], true);
}

TEST(ModelInfo, VocabOnlyTokenizerFileStillReportsItsTokenizer) {
  const auto path = reference_dir() / "tokenizer" / "llama3-bpe.gguf";
  REQUIRE_FIXTURE(path);
  const GgufFile f = GgufFile::open(path.string());
  const ModelInfo info = gather_model_info(f);
  EXPECT_EQ(info.arch_name, "llama");
  // Arch llama is run (ternary llama files), so this vocabulary-only file reads as a llama model
  // without tensors: invalid in one line (not one per missing tensor), with the tokenizer still
  // reported.
  EXPECT_TRUE(info.arch_supported);
  EXPECT_FALSE(info.valid());
  ASSERT_FALSE(info.problems.empty());
  EXPECT_NE(joined(info.problems).find("holds no tensors (a vocabulary-only GGUF?)"),
            std::string::npos)
      << joined(info.problems);
  EXPECT_EQ(joined(info.problems).find("is missing"), std::string::npos) << joined(info.problems);
  EXPECT_EQ(info.tokenizer.n_tokens, 128256);  // reference README section 1
  EXPECT_EQ(info.tokenizer.n_merges, 280147);
  EXPECT_FALSE(info.tokenizer.add_bos.has_value());
  ASSERT_GE(info.tokenizer.special.size(), 2u);
  EXPECT_EQ(info.tokenizer.special[0].id, 128000);
  EXPECT_EQ(info.tokenizer.special[0].text, "<|begin_of_text|>");
  EXPECT_TRUE(info.tensors.empty());
  // The llama hyper-parameters read fine; with no tensors, nothing is read per token.
  ASSERT_TRUE(info.config.has_value());
  EXPECT_EQ(info.config->arch, Arch::Llama);
  EXPECT_EQ(info.bytes_per_token.value_or(1), 0u);
  EXPECT_FALSE(model_info_json(info)["config"].is_null());
}

TEST(ModelInfo, ConfigErrorOfAKnownArchitectureIsAProblem) {
  Synthetic s;
  s.drop_keys = {"bitnet-b1.58.block_count"};
  const std::vector<uint8_t> b = s.bytes();
  const ModelInfo info = gather_model_info(GgufFile::from_memory(b, kName));
  EXPECT_TRUE(info.arch_supported);
  EXPECT_FALSE(info.config.has_value());
  ASSERT_EQ(info.problems.size(), 1u);
  EXPECT_NE(info.problems[0].find("'bitnet-b1.58.block_count' is missing"), std::string::npos);
  EXPECT_EQ(info.tensors.size(), s.tensors.size());  // tensors are listed all the same
}

TEST(ModelInfo, TokenizerProblems) {
  Synthetic s;
  s.edit = [](GgufWriter& w) {
    w.set("tokenizer.ggml.tokens", formats::GgufValue(std::vector<std::string>{"a", "b", "c"}));
    w.set("tokenizer.ggml.bos_token_id", uint32_t{1});
    w.set("tokenizer.ggml.eos_token_id", uint32_t{7});
    w.set("tokenizer.ggml.add_bos_token", uint32_t{1});
  };
  const std::vector<uint8_t> b = s.bytes();
  const ModelInfo info = gather_model_info(GgufFile::from_memory(b, kName));
  // The summary's own findings, then the loader's verdict on the same tokenizer (which needs
  // tokenizer.ggml.model, absent here): inspect reports what the engine would refuse.
  EXPECT_EQ(joined(info.problems),
            "tokenizer.ggml.eos_token_id 7 is outside the 3 tokens\n"
            "metadata key 'tokenizer.ggml.add_bos_token': expected BOOL, found UINT32\n"
            "tokenizer: tokenizer key 'tokenizer.ggml.model': missing\n");
  ASSERT_EQ(info.tokenizer.special.size(), 2u);
  EXPECT_EQ(info.tokenizer.special[0].text, "b");
  EXPECT_FALSE(info.tokenizer.special[1].text.has_value());
}

TEST(ModelInfo, ValidationProblemsAreReported) {
  Synthetic s;
  s.remove("output_norm.weight");
  const std::vector<uint8_t> b = s.bytes();
  const ModelInfo info = gather_model_info(GgufFile::from_memory(b, kName));
  EXPECT_EQ(joined(info.problems),
            "tensor 'output_norm.weight' is missing\n"
            "tokenizer: tokenizer key 'tokenizer.ggml.model': missing\n");
  EXPECT_EQ(model_info_json(info)["valid"], false);
}

}  // namespace
}  // namespace bitnet::model
