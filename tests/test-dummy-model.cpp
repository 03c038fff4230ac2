// Dummy (random-weight) models: tiny-1m written with every linear and embedding type parses,
// matches its preset and the architecture's tensor list, holds uniform ternary codes, is
// deterministic per seed and carries a consistent synthetic tokenizer. The big presets are
// checked only as descriptions (shapes, parameter counts against the published figures).
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "formats/tensor-codec.h"
#include "model/model-config.h"
#include "tools/dummy-model.h"
#include "tools/dummy-tokenizer.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;
using formats::GgmlType;
using formats::GgufFile;

constexpr uint32_t id(GgmlType t) {
  return static_cast<uint32_t>(t);
}

std::vector<uint8_t> dummy_bytes(const std::string& preset, uint32_t linear, uint32_t embd,
                                 uint64_t seed) {
  formats::GgufWriter w;
  add_dummy_model(find_dummy_preset(preset), {linear, embd, seed}, w);
  return w.to_bytes();
}

struct TypeCase {
  uint32_t linear;
  uint32_t embd;
};

class TinyDummy : public ::testing::TestWithParam<TypeCase> {};

TEST_P(TinyDummy, ParsesAndMatchesPreset) {
  const TypeCase tc = GetParam();
  const DummyPreset& preset = find_dummy_preset("tiny-1m");
  const std::vector<uint8_t> bytes = dummy_bytes("tiny-1m", tc.linear, tc.embd, 7);
  EXPECT_EQ(bytes.size(), dummy_file_bytes(preset, {tc.linear, tc.embd, 7}));
  const GgufFile f = GgufFile::from_memory(bytes, "tiny-1m");

  const ModelConfig c = read_model_config(f);
  const ModelConfig& want = preset.config;
  EXPECT_EQ(c.arch, Arch::BitNetB158);
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.n_ff, 512);
  EXPECT_EQ(c.n_vocab, 4112);
  EXPECT_EQ(c.n_ctx_train, want.n_ctx_train);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_dim, 64);
  EXPECT_EQ(c.rope_freq_base, 500000.0f);
  EXPECT_EQ(c.rms_eps, 1e-5f);
  EXPECT_TRUE(c.tied_output);
  EXPECT_TRUE(validate_tensors(c, f).empty());
  for (const std::string& p : validate_tensors(c, f)) ADD_FAILURE() << p;

  EXPECT_EQ(f.get_string("general.name"), "bitnet-cxx dummy tiny-1m (random weights)");
  EXPECT_TRUE(f.get_bool("bitnet-cxx.dummy"));
  EXPECT_EQ(f.get_u32("general.file_type"), tc.linear == id(GgmlType::I2_S)    ? 40u
                                            : tc.linear == id(GgmlType::TQ2_0) ? 37u
                                            : tc.linear == id(GgmlType::TQ1_0) ? 36u
                                                                               : 1u);
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").type, tc.linear);
  EXPECT_EQ(f.tensor("blk.1.ffn_down.weight").type, tc.linear);
  EXPECT_EQ(f.tensor("token_embd.weight").type, tc.embd);
  EXPECT_EQ(f.tensor("output_norm.weight").type, id(GgmlType::F32));
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
}

TEST_P(TinyDummy, LinearsHoldUniformTernaryCodes) {
  const TypeCase tc = GetParam();
  const std::vector<uint8_t> bytes = dummy_bytes("tiny-1m", tc.linear, tc.embd, 3);
  const GgufFile f = GgufFile::from_memory(bytes);
  for (const char* name : {"blk.0.ffn_up.weight", "blk.1.attn_k.weight"}) {
    const formats::GgufTensorInfo& t = f.tensor(name);
    const int64_t k = t.dims[0], n = t.dims[1];
    std::vector<int8_t> w(static_cast<size_t>(n * k));
    std::vector<float> scale(static_cast<size_t>(n));
    formats::decode_ternary(t.type, t.data, t.size, n, k, name, w.data(), scale.data());
    std::array<int64_t, 3> count{};
    for (int8_t v : w) {
      ASSERT_GE(v, -1);
      ASSERT_LE(v, 1);
      ++count[static_cast<size_t>(v + 1)];
    }
    // Each count is Binomial(N, 1/3): 6 standard deviations is a bound a correct generator
    // exceeds with probability ~1e-9; a biased one (e.g. 25/50/25) is off by hundreds of sigma.
    const double total = static_cast<double>(w.size());
    const double sd = std::sqrt(total * (1.0 / 3.0) * (2.0 / 3.0));
    for (int64_t c : count) EXPECT_NEAR(static_cast<double>(c), total / 3.0, 6.0 * sd) << name;
    // One scale per tensor, (0.5 .. 1.5) / sqrt(2/3 K), fp16-representable.
    for (float s : scale) EXPECT_EQ(s, scale[0]);
    const double unit = 1.0 / std::sqrt(2.0 / 3.0 * static_cast<double>(k));
    EXPECT_GE(scale[0], 0.5 * unit * 0.999);
    EXPECT_LE(scale[0], 1.5 * unit * 1.001);
  }
}

TEST_P(TinyDummy, NormsAndEmbeddingHavePlannedStatistics) {
  const TypeCase tc = GetParam();
  const std::vector<uint8_t> bytes = dummy_bytes("tiny-1m", tc.linear, tc.embd, 5);
  const GgufFile f = GgufFile::from_memory(bytes);
  const formats::GgufTensorInfo& norm = f.tensor("blk.0.ffn_sub_norm.weight");
  std::vector<float> v(static_cast<size_t>(norm.dims[0]));
  formats::dequantize_row(norm.type, norm.data, v.data(), norm.dims[0]);
  for (float x : v) EXPECT_NEAR(x, 1.0f, 0.05f * 3.5f);  // 1 + 0.05 N, N bounded by sqrt(12)

  const formats::GgufTensorInfo& e = f.tensor("token_embd.weight");
  const int64_t ne0 = e.dims[0], rows = e.dims[1];
  const size_t row_bytes = e.size / static_cast<size_t>(rows);
  std::vector<float> row(static_cast<size_t>(ne0));
  double sum = 0, sum2 = 0;
  for (int64_t r = 0; r < rows; ++r) {
    formats::dequantize_row(e.type, e.data + static_cast<size_t>(r) * row_bytes, row.data(), ne0);
    for (float x : row) sum += x, sum2 += static_cast<double>(x) * x;
  }
  const double n = static_cast<double>(ne0 * rows);
  const double sigma = 1.0 / std::sqrt(static_cast<double>(ne0));
  EXPECT_NEAR(sum / n, 0.0, 0.01 * sigma);
  EXPECT_NEAR(std::sqrt(sum2 / n), sigma, 0.03 * sigma);  // Q6_K/Q8_0 rounding adds < 1%
}

TEST_P(TinyDummy, DeterministicPerSeed) {
  const TypeCase tc = GetParam();
  const auto a = dummy_bytes("tiny-1m", tc.linear, tc.embd, 11);
  EXPECT_EQ(a, dummy_bytes("tiny-1m", tc.linear, tc.embd, 11));
  const auto b = dummy_bytes("tiny-1m", tc.linear, tc.embd, 12);
  ASSERT_EQ(a.size(), b.size());  // the seed is a fixed-size key: same layout
  const GgufFile fa = GgufFile::from_memory(a), fb = GgufFile::from_memory(b);
  for (const auto& t : fa.tensors()) {
    const auto& u = fb.tensor(t.name);
    EXPECT_FALSE(std::equal(t.data, t.data + t.size, u.data)) << t.name;
  }
}

std::string case_name(const ::testing::TestParamInfo<TypeCase>& info) {
  return formats::ggml_type_name(info.param.linear) + "_" +
         formats::ggml_type_name(info.param.embd);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, TinyDummy,
                         ::testing::Values(TypeCase{id(GgmlType::I2_S), id(GgmlType::F16)},
                                           TypeCase{id(GgmlType::TQ2_0), id(GgmlType::F16)},
                                           TypeCase{id(GgmlType::TQ1_0), id(GgmlType::F16)},
                                           TypeCase{id(GgmlType::F16), id(GgmlType::F16)},
                                           TypeCase{id(GgmlType::I2_S), id(GgmlType::Q8_0)},
                                           TypeCase{id(GgmlType::I2_S), id(GgmlType::Q6_K)},
                                           TypeCase{id(GgmlType::TQ1_0), id(GgmlType::Q6_K)}),
                         case_name);

TEST(DummyModel, SameWeightsWhateverTheStorageType) {
  auto codes = [](uint32_t type) {
    const auto bytes = dummy_bytes("tiny-1m", type, id(GgmlType::F16), 9);
    const GgufFile f = GgufFile::from_memory(bytes);
    const auto& t = f.tensor("blk.1.attn_output.weight");
    std::vector<int8_t> w(static_cast<size_t>(t.n_elements()));
    std::vector<float> s(static_cast<size_t>(t.dims[1]));
    formats::decode_ternary(t.type, t.data, t.size, t.dims[1], t.dims[0], t.name, w.data(),
                            s.data());
    return std::make_pair(w, s[0]);
  };
  const auto ref = codes(id(GgmlType::I2_S));
  for (uint32_t type : {id(GgmlType::TQ2_0), id(GgmlType::TQ1_0), id(GgmlType::F16)}) {
    const auto other = codes(type);
    EXPECT_EQ(other.first, ref.first) << formats::ggml_type_name(type);
    EXPECT_EQ(other.second, ref.second) << formats::ggml_type_name(type);
  }
}

TEST(DummyModel, WritesFileThatOpens) {
  const fs::path path =
      fs::temp_directory_path() / ("test-dummy-model-" + std::to_string(::getpid()) + ".gguf");
  const DummyPreset& p = find_dummy_preset("tiny-1m");
  size_t calls = 0, last_total = 0;
  write_dummy_model(p, {}, path.string(), [&](size_t done, size_t total, uint64_t) {
    EXPECT_EQ(done, ++calls);
    last_total = total;
  });
  EXPECT_EQ(calls, dummy_tensors(p.config).size());
  EXPECT_EQ(last_total, calls);
  {
    const GgufFile f = GgufFile::open(path.string());
    EXPECT_EQ(f.file_size(), dummy_file_bytes(p, {}));
    EXPECT_TRUE(validate_tensors(read_model_config(f), f).empty());
  }
  fs::remove(path);
}

// ---- tokenizer ----------------------------------------------------------------------------------

void check_tokenizer(const GgufFile& f, const DummyPreset& p) {
  SCOPED_TRACE(p.name);
  const auto& tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
  const auto& types = f.get_array<int32_t>("tokenizer.ggml.token_type");
  const int64_t n = p.config.n_vocab;
  ASSERT_EQ(static_cast<int64_t>(tokens.size()), n);
  ASSERT_EQ(static_cast<int64_t>(types.size()), n);
  EXPECT_EQ(std::set<std::string>(tokens.begin(), tokens.end()).size(), tokens.size());
  const bool spm = p.tokenizer.kind == DummyTokenizerKind::SpmBytes;
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), spm ? "llama" : "gpt2");
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
  auto control = [&](const char* key) {
    const uint32_t i = f.get_u32(key);
    EXPECT_LT(static_cast<int64_t>(i), n) << key;
    if (static_cast<int64_t>(i) < n) {
      EXPECT_EQ(types[i], static_cast<int32_t>(TokenType::Control));
    }
    return i < tokens.size() ? tokens[i] : std::string();
  };
  const std::string bos = control("tokenizer.ggml.bos_token_id");
  const std::string eos = control("tokenizer.ggml.eos_token_id");
  if (f.has("tokenizer.ggml.eot_token_id")) {
    EXPECT_EQ(control("tokenizer.ggml.eot_token_id"), "<|eot_id|>");
  }
  // Every byte has exactly one token.
  std::set<std::string> bytes;
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    bytes.insert(spm ? std::string(buf) : gpt2_byte_token(static_cast<uint8_t>(b)));
  }
  int found = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!bytes.count(tokens[i])) continue;
    ++found;
    EXPECT_EQ(types[i], static_cast<int32_t>(spm ? TokenType::Byte : TokenType::Normal));
  }
  EXPECT_EQ(found, 256);
  if (spm) {
    const uint32_t unk = f.get_u32("tokenizer.ggml.unknown_token_id");
    EXPECT_EQ(tokens[unk], "<unk>");
    EXPECT_EQ(types[unk], static_cast<int32_t>(TokenType::Unknown));
    EXPECT_EQ(f.get_array<float>("tokenizer.ggml.scores").size(), tokens.size());
    EXPECT_EQ(bos, "<s>");
    EXPECT_EQ(eos, "</s>");
  } else {
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "llama-bpe");
    EXPECT_TRUE(f.has("tokenizer.ggml.merges"));
  }
}

TEST(DummyTokenizer, EveryPresetIsConsistent) {
  for (const DummyPreset& p : dummy_presets()) {
    formats::GgufWriter w;
    write_dummy_tokenizer(p.tokenizer, w);
    const auto bytes = w.to_bytes();
    check_tokenizer(GgufFile::from_memory(bytes, p.name), p);
  }
}

TEST(DummyTokenizer, RealSpecialIds) {
  formats::GgufWriter w;
  write_dummy_tokenizer(find_dummy_preset("2b4t").tokenizer, w);
  const auto bytes = w.to_bytes();
  const GgufFile f = GgufFile::from_memory(bytes);
  const auto& tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
  EXPECT_EQ(f.get_u32("tokenizer.ggml.bos_token_id"), 128000u);
  EXPECT_EQ(f.get_u32("tokenizer.ggml.eos_token_id"), 128001u);
  EXPECT_EQ(f.get_u32("tokenizer.ggml.eot_token_id"), 128009u);
  EXPECT_EQ(tokens[128000], "<|begin_of_text|>");
  EXPECT_EQ(tokens[128006], "<|start_header_id|>");
  EXPECT_EQ(tokens[128255], "<|reserved_special_token_250|>");
  // Llama-3 ids 0..255 are the byte-level tokens in byte order of GPT-2's table: "!" is 0, and
  // " " (byte 32) is "Ġ" (U+0120) at id 220.
  EXPECT_EQ(tokens[0], "!");
  EXPECT_EQ(tokens[220], "\xC4\xA0");
  EXPECT_EQ(gpt2_byte_token(32), "\xC4\xA0");

  const DummyPreset& tiny = find_dummy_preset("tiny-1m");
  EXPECT_EQ(tiny.tokenizer.bos_id, 4096);  // the reference fixture vocabulary's ids
  EXPECT_EQ(tiny.tokenizer.eos_id, 4097);
  EXPECT_EQ(tiny.tokenizer.eot_id, 4105);
  const DummyPreset& large = find_dummy_preset("bitnet-large");
  EXPECT_EQ(large.tokenizer.unk_id, 0);
  EXPECT_EQ(large.tokenizer.bos_id, 1);
  EXPECT_EQ(large.tokenizer.eos_id, 2);
}

fs::path reference_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  return env && *env ? env : BITNET_REFERENCE_DIR_DEFAULT;
}

// Independent check of the byte and special token layout: the reference tokenizer files hold the
// real Llama-3 strings (ids 0..4095, specials renumbered from 4096) and LLaMA-2's SentencePiece
// vocabulary (<unk> <s> </s> then <0x00>..<0xFF>).
TEST(DummyTokenizer, MatchesReferenceVocabularies) {
  struct Case {
    const char* file;
    const char* preset;
    std::vector<std::pair<size_t, size_t>> ranges;  // [first, last] ids that must agree
  };
  const Case cases[] = {{"tokenizer/llama3-bpe-4112.gguf", "tiny-1m", {{0, 255}, {4096, 4111}}},
                        {"tokenizer/llama2-spm.gguf", "bitnet-large", {{0, 258}}}};
  for (const Case& c : cases) {
    const fs::path path = reference_dir() / c.file;
    if (!fs::exists(path)) GTEST_SKIP() << path << " not found; set BITNET_REFERENCE_DIR";
    const GgufFile ref = GgufFile::open(path.string());
    formats::GgufWriter w;
    write_dummy_tokenizer(find_dummy_preset(c.preset).tokenizer, w);
    const auto bytes = w.to_bytes();
    const GgufFile mine = GgufFile::from_memory(bytes);
    const auto& rt = ref.get_array<std::string>("tokenizer.ggml.tokens");
    const auto& mt = mine.get_array<std::string>("tokenizer.ggml.tokens");
    const auto& ry = ref.get_array<int32_t>("tokenizer.ggml.token_type");
    const auto& my = mine.get_array<int32_t>("tokenizer.ggml.token_type");
    for (const auto& [first, last] : c.ranges) {
      ASSERT_LT(last, rt.size()) << c.file;
      for (size_t i = first; i <= last; ++i) {
        EXPECT_EQ(mt[i], rt[i]) << c.file << " id " << i;
        EXPECT_EQ(my[i], ry[i]) << c.file << " id " << i;
      }
    }
    // tiny-1m keeps the fixture's renumbered special ids; LLaMA-2's are the real ones.
    for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.pre"}) {
      if (ref.has(key)) {
        EXPECT_EQ(mine.get_string(key), ref.get_string(key)) << c.file << " " << key;
      }
    }
    for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                            "tokenizer.ggml.eot_token_id", "tokenizer.ggml.unknown_token_id"}) {
      if (ref.has(key)) {
        EXPECT_EQ(mine.get_u32(key), ref.get_u32(key)) << c.file << " " << key;
      }
    }
  }
}

TEST(DummyTokenizer, RejectsInconsistentSpecs) {
  formats::GgufWriter w;
  DummyTokenizerSpec s = find_dummy_preset("tiny-1m").tokenizer;
  s.n_vocab = 4100;  // <|eot_id|> 4105 no longer fits
  EXPECT_THROW(write_dummy_tokenizer(s, w), std::invalid_argument);
  s = find_dummy_preset("tiny-1m").tokenizer;
  s.eos_id = 5;  // a byte token, not a control token
  EXPECT_THROW(write_dummy_tokenizer(s, w), std::invalid_argument);
  s = find_dummy_preset("tiny-1m").tokenizer;
  s.n_vocab = 200;  // no room for the byte tokens (and the specials)
  s.control.clear();
  s.bos_id = s.eos_id = s.eot_id = -1;
  EXPECT_THROW(write_dummy_tokenizer(s, w), std::invalid_argument);
}

// ---- presets as descriptions --------------------------------------------------------------------

TEST(DummyPresets, ShapesOfTheRealModels) {
  const ModelConfig& c = find_dummy_preset("2b4t").config;
  EXPECT_EQ(c.arch, Arch::BitNetB158);
  EXPECT_EQ(c.n_embd, 2560);
  EXPECT_EQ(c.n_layer, 30);
  EXPECT_EQ(c.n_head, 20);
  EXPECT_EQ(c.n_head_kv, 5);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.n_ff, 6912);
  EXPECT_EQ(c.n_vocab, 128256);
  EXPECT_EQ(c.n_ctx_train, 4096);
  EXPECT_EQ(c.rope_freq_base, 500000.0f);
  EXPECT_EQ(c.rms_eps, 1e-5f);
  EXPECT_TRUE(c.tied_output);
  // 30 * (2560 * (2560 + 640 + 640 + 2560) + 3 * 2560 * 6912), ~2.08 B (SPEC.md).
  EXPECT_EQ(ternary_parameter_count(c), int64_t{30} * (2560 * 6400 + 3 * 2560 * 6912));
  EXPECT_NEAR(static_cast<double>(ternary_parameter_count(c)), 2.08e9, 0.01e9);

  const ModelConfig& large = find_dummy_preset("bitnet-large").config;
  EXPECT_EQ(large.arch, Arch::BitNet);
  EXPECT_EQ(large.n_embd, 1536);
  EXPECT_EQ(large.n_layer, 24);
  EXPECT_EQ(large.n_head_kv, 16);
  EXPECT_EQ(large.n_ff, 4096);
  EXPECT_EQ(large.n_vocab, 32002);
  // 0.7B in total: 24 * (4 * 1536^2 + 3 * 1536 * 4096) ternary + 32002 * 1536 embedding.
  EXPECT_NEAR(static_cast<double>(total_parameter_count(large)), 0.73e9, 0.01e9);

  const ModelConfig& b3 = find_dummy_preset("bitnet-3b").config;
  EXPECT_EQ(b3.head_dim, 100);
  EXPECT_NEAR(static_cast<double>(total_parameter_count(b3)), 3.32e9, 0.01e9);  // model card

  const ModelConfig& l3 = find_dummy_preset("llama3-8b-1.58").config;
  EXPECT_FALSE(l3.tied_output);
  EXPECT_EQ(l3.n_embd_kv(), 1024);
  EXPECT_NEAR(static_cast<double>(total_parameter_count(l3)), 8.03e9, 0.01e9);  // Llama-3 8B

  const ModelConfig& fa = find_dummy_preset("falcon3-10b-1.58").config;
  EXPECT_FALSE(fa.tied_output);
  EXPECT_EQ(fa.head_dim, 256);
  EXPECT_EQ(fa.n_vocab, 131072);
  EXPECT_EQ(fa.rope_freq_base, 1000042.0f);
  EXPECT_NEAR(static_cast<double>(total_parameter_count(fa)), 10.3e9, 0.05e9);  // Falcon3-10B

  const ModelConfig& tiny = find_dummy_preset("tiny-1m").config;
  EXPECT_EQ(ternary_parameter_count(tiny), 2 * (256 * (256 + 128 + 128 + 256) + 3 * 256 * 512));

  // The benchmark matrix's medium model: about 100 M parameters in all.
  const ModelConfig& med = find_dummy_preset("medium-100m").config;
  EXPECT_EQ(med.arch, Arch::BitNetB158);
  EXPECT_EQ(med.n_embd, 768);
  EXPECT_EQ(med.n_layer, 12);
  EXPECT_EQ(med.n_head, 12);
  EXPECT_EQ(med.n_head_kv, 4);
  EXPECT_EQ(med.head_dim, 64);
  EXPECT_EQ(med.n_ff, 2048);
  EXPECT_EQ(med.n_vocab, 32000);
  EXPECT_TRUE(med.tied_output);
  // 12 * (768 * (768 + 256 + 256 + 768) + 3 * 768 * 2048) ternary, 32000 * 768 embedding,
  // 12 * (3 * 768 + 2048) + 768 norm weights.
  EXPECT_EQ(ternary_parameter_count(med), int64_t{12} * (768 * 2048 + 3 * 768 * 2048));
  EXPECT_EQ(total_parameter_count(med),
            ternary_parameter_count(med) + 32000 * 768 + 12 * (3 * 768 + 2048) + 768);
  EXPECT_NEAR(static_cast<double>(total_parameter_count(med)), 100e6, 1e6);
}

TEST(DummyPresets, UntiedPresetsCarryOutputWeight) {
  for (const DummyPreset& p : dummy_presets()) {
    bool has_output = false;
    for (const TensorSpec& s : dummy_tensors(p.config)) {
      has_output = has_output || s.name == "output.weight";
      EXPECT_EQ(s.name.find(".scale"), std::string::npos) << s.name;
    }
    EXPECT_EQ(has_output, !p.config.tied_output) << p.name;
  }
}

TEST(DummyPresets, KernelAndBlockConstraints) {
  const uint32_t all_linear[] = {id(GgmlType::I2_S), id(GgmlType::TQ2_0), id(GgmlType::TQ1_0),
                                 id(GgmlType::F16)};
  for (const DummyPreset& p : dummy_presets()) {
    for (const TensorSpec& s : dummy_tensors(p.config))
      if (s.ternary) {
        EXPECT_EQ(s.dims[0] % 16, 0) << p.name << " " << s.name;
      }
    EXPECT_NO_THROW(check_dummy_options(p, {id(GgmlType::I2_S), id(GgmlType::F16), 0})) << p.name;
    EXPECT_NO_THROW(check_dummy_options(p, {id(GgmlType::F16), id(GgmlType::Q8_0), 0})) << p.name;
    for (uint32_t t : all_linear) {
      const bool tq = t == id(GgmlType::TQ2_0) || t == id(GgmlType::TQ1_0);
      // Only bitnet-3b (3200 and 8640 are not multiples of 256) refuses the TQ types and Q6_K.
      if (p.name == "bitnet-3b" && tq) {
        EXPECT_THROW(check_dummy_options(p, {t, id(GgmlType::F16), 0}), std::invalid_argument);
      } else {
        EXPECT_NO_THROW(check_dummy_options(p, {t, id(GgmlType::F16), 0})) << p.name;
      }
    }
    if (p.name == "bitnet-3b") {
      EXPECT_THROW(check_dummy_options(p, {id(GgmlType::I2_S), id(GgmlType::Q6_K), 0}),
                   std::invalid_argument);
    } else {
      EXPECT_NO_THROW(check_dummy_options(p, {id(GgmlType::I2_S), id(GgmlType::Q6_K), 0}));
    }
  }
}

TEST(DummyPresets, SizesFollowFromTheShapes) {
  const DummyPreset& p = find_dummy_preset("2b4t");
  // I2_S: 2 bits per ternary weight + 32 bytes per tensor; F16 embedding 2 bytes per value.
  const uint64_t bytes = dummy_tensor_bytes(p, {});
  const uint64_t ternary = static_cast<uint64_t>(ternary_parameter_count(p.config)) / 4;
  const uint64_t embd = uint64_t{2} * 2560 * 128256;
  EXPECT_GT(bytes, ternary + embd);
  EXPECT_LT(bytes, ternary + embd + 2'000'000);        // norms (F32) and per-tensor padding
  EXPECT_NEAR(static_cast<double>(embd), 657e6, 1e6);  // SPEC.md
  EXPECT_GT(dummy_file_bytes(p, {}), bytes);
}

TEST(DummyPresets, NamesAndTypeParsing) {
  EXPECT_THROW(find_dummy_preset("2b"), std::invalid_argument);
  try {
    find_dummy_preset("nope");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("tiny-1m"), std::string::npos);
  }
  EXPECT_EQ(parse_dummy_linear_type("tq1_0"), id(GgmlType::TQ1_0));
  EXPECT_EQ(parse_dummy_embd_type("q6_k"), id(GgmlType::Q6_K));
  EXPECT_THROW(parse_dummy_linear_type("q8_0"), std::invalid_argument);
  EXPECT_THROW(parse_dummy_embd_type("i2_s"), std::invalid_argument);
}

}  // namespace
}  // namespace bitnet::model
