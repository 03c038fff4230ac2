// Arch "llama" with ternary linears (llama.cpp's TQ conversions of Llama3-8B-1.58 and the like):
// NORM rope on Q/K rows that the converter permuted, SiLU FFN, sub-norms only when present.
// tiny-bitnet re-encoded as such a file (keys renamed, .scale folded into the weights, Q/K rows
// permuted as llama.cpp's convert_hf_to_gguf does) must compute the same function.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "model/session.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;

std::string reference_dir() {
  const char* d = std::getenv("BITNET_REFERENCE_DIR");
  return d && *d ? d : BITNET_REFERENCE_DIR_DEFAULT;
}

// Rows of one head, rotate-half order -> interleaved pairs: new row 2i + j = old row j * d/2 + i.
std::vector<float> permute_rows(const float* w, int64_t rows, int64_t k, int64_t n_head) {
  const int64_t d = rows / n_head, half = d / 2;
  std::vector<float> out(static_cast<size_t>(rows * k));
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t dst = h * d + 2 * i + j, src = h * d + j * half + i;
        std::copy(w + src * k, w + (src + 1) * k, out.begin() + dst * k);
      }
    }
  }
  return out;
}

// tiny-bitnet.f32 as an arch "llama" file; drop_sub_norms removes attn_sub_norm and ffn_sub_norm.
std::string make_llama_file(const fs::path& dir, bool drop_sub_norms) {
  const auto src = formats::GgufFile::open(reference_dir() + "/models/tiny-bitnet.f32.gguf");
  formats::GgufWriter w;
  for (const auto& kv : src.kvs()) {
    std::string key = kv.key;
    if (key.rfind("bitnet.", 0) == 0) key = "llama." + key.substr(7);
    w.set(key, kv.value);
  }
  w.set("general.architecture", "llama");
  const int64_t n_head = 4, n_head_kv = 4;
  std::vector<std::vector<float>> keep;
  for (const auto& t : src.tensors()) {
    if (t.name.find(".scale") != std::string::npos) continue;
    if (drop_sub_norms && t.name.find("_sub_norm") != std::string::npos) continue;
    const std::vector<int64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
    const float* data = reinterpret_cast<const float*>(t.data);
    std::vector<float> v(data, data + t.n_elements());
    const std::string base = t.name.substr(0, t.name.size() - std::string(".weight").size());
    if (const auto* s = src.find_tensor(base + ".scale")) {
      float scale;
      std::memcpy(&scale, s->data, 4);
      for (float& x : v) x *= scale;
    }
    if (t.name.find("attn_q.weight") != std::string::npos)
      v = permute_rows(v.data(), dims[1], dims[0], n_head);
    if (t.name.find("attn_k.weight") != std::string::npos)
      v = permute_rows(v.data(), dims[1], dims[0], n_head_kv);
    keep.push_back(std::move(v));
    w.add_tensor(t.name, t.type, dims,
                 std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(keep.back().data()),
                                          keep.back().size() * 4));
  }
  const std::string path = (dir / (drop_sub_norms ? "llama-nosub.gguf" : "llama.gguf")).string();
  w.write(path);
  return path;
}

struct Tmp {
  fs::path path;
  Tmp() {
    char tmpl[] = "/tmp/bitnet-llama-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~Tmp() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<float> prompt_logits(const std::string& path, const std::vector<int32_t>& toks,
                                 bool act_quant) {
  LoadOptions lo;
  lo.cache = CacheMode::Off;
  const auto w = ModelWeights::load(path, lo);
  ThreadPool pool(2);
  SessionOptions so;
  so.kv = KvType::F32;
  so.quantize_activations = act_quant;
  Session s(*w, so, pool);
  const int s_slot = s.add_sequence();
  std::vector<float> out(toks.size() * static_cast<size_t>(s.n_vocab()));
  s.eval(s_slot, toks, out.data(), true);
  return out;
}

std::vector<int32_t> p2_tokens() {
  std::ifstream in(reference_dir() + "/golden/tiny-bitnet/exact.p2.json");
  return nlohmann::json::parse(in).at("prompt_tokens").get<std::vector<int32_t>>();
}

TEST(LlamaArch, PermutedNormRopeComputesTheSameFunction) {
  if (!fs::exists(reference_dir() + "/models/tiny-bitnet.f32.gguf"))
    GTEST_SKIP() << "no reference data";
  Tmp tmp;
  const std::string llama = make_llama_file(tmp.path, false);
  const auto f = formats::GgufFile::open(llama);
  const ModelConfig c = read_model_config(f);
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.rope_style, RopeStyle::Norm);
  EXPECT_TRUE(c.sub_norms);
  EXPECT_TRUE(validate_tensors(c, f).empty());
  const auto toks = p2_tokens();
  // Validation mode: only the order of a few float sums differs.
  const auto a = prompt_logits(reference_dir() + "/models/tiny-bitnet.f32.gguf", toks, false);
  const auto b = prompt_logits(llama, toks, false);
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    max_diff = std::max(max_diff, std::fabs(double(a[i]) - b[i]));
  EXPECT_LE(max_diff, 1e-3);
  // With activation quantization: the reference's end-to-end bounds against the float64 oracle.
  const auto q = prompt_logits(llama, toks, true);
  std::ifstream in(reference_dir() + "/golden/tiny-bitnet/exact.p2.prompt.f32", std::ios::binary);
  std::vector<float> ref(q.size());
  in.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * 4));
  double sq = 0, mx = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    const double d = double(q[i]) - ref[i];
    sq += d * d;
    mx = std::max(mx, std::fabs(d));
  }
  EXPECT_LE(std::sqrt(sq / static_cast<double>(q.size())), 0.20);
  EXPECT_LE(mx, 1.0);
}

TEST(LlamaArch, WithoutSubNormsLoadsAndRuns) {
  if (!fs::exists(reference_dir() + "/models/tiny-bitnet.f32.gguf"))
    GTEST_SKIP() << "no reference data";
  Tmp tmp;
  const std::string path = make_llama_file(tmp.path, true);
  const auto f = formats::GgufFile::open(path);
  const ModelConfig c = read_model_config(f);
  EXPECT_FALSE(c.sub_norms);
  EXPECT_TRUE(validate_tensors(c, f).empty());
  const auto toks = p2_tokens();
  const auto with = prompt_logits(make_llama_file(tmp.path, false), toks, true);
  const auto without = prompt_logits(path, toks, true);
  bool finite = true, differs = false;
  for (size_t i = 0; i < without.size(); ++i) {
    finite = finite && std::isfinite(without[i]);
    differs = differs || without[i] != with[i];
  }
  EXPECT_TRUE(finite);
  EXPECT_TRUE(differs) << "dropping the sub-norms must change the function";
}

}  // namespace
}  // namespace bitnet::model
