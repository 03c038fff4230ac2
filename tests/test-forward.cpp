// Conformance of the forward pass with ../shared/reference (README section 8), three layers:
//   1. BitLinear vectors: int8 codes and outputs of all 28 ternary linears of tiny-b158, exact.
//   2. The graph with activation quantization switched off, against llama.cpp's F32 run: 1e-3.
//   3. End to end against the float64 oracle: greedy tokens identical, top-1 identical where the
//      oracle's margin is >= 1, RMS <= 0.2 and max <= 1.0 over prompt and generated rows.
// Plus: every encoding of the same weights gives bit-identical logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/session.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string reference_dir() {
  if (const char* d = std::getenv("BITNET_REFERENCE_DIR"); d && *d) return d;
  return BITNET_REFERENCE_DIR_DEFAULT;
}
bool have_reference() {
  return fs::exists(reference_dir() + "/golden/tiny-b158/exact.p1.json");
}

#define REQUIRE_REFERENCE() \
  if (!have_reference())    \
  GTEST_SKIP() << "reference data not found at " << reference_dir() << " (set BITNET_REFERENCE_DIR)"

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}
std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
std::vector<float> read_f32(const std::string& path) {
  const auto b = read_bytes(path);
  std::vector<float> out(b.size() / 4);
  std::memcpy(out.data(), b.data(), out.size() * 4);
  return out;
}

struct Golden {
  std::vector<int32_t> prompt, greedy;
  std::vector<double> prompt_margin, greedy_margin;
  std::vector<float> prompt_logits, gen_logits;  // [n_prompt][V], [16][V]
};

Golden load_golden(const std::string& model, const std::string& impl, const std::string& prompt) {
  const std::string base = reference_dir() + "/golden/" + model + "/" + impl + "." + prompt;
  const json j = read_json(base + ".json");
  Golden g;
  g.prompt = j.at("prompt_tokens").get<std::vector<int32_t>>();
  g.greedy = j.at("greedy_tokens").get<std::vector<int32_t>>();
  if (j.contains("prompt_top2_margin")) {
    g.prompt_margin = j.at("prompt_top2_margin").get<std::vector<double>>();
    g.greedy_margin = j.at("greedy_top2_margin").get<std::vector<double>>();
  }
  g.prompt_logits = read_f32(base + ".prompt.f32");
  g.gen_logits = read_f32(base + ".gen.f32");
  return g;
}

// Logits of our engine for the oracle's sequence: every prompt row, then 16 gen rows (row 0 = the
// last prompt row; row k >= 1 after feeding greedy token k-1, one token per step).
struct Logits {
  std::vector<float> prompt, gen;
};
Logits run_model(const ModelWeights& w, const SessionOptions& so, const Golden& g) {
  ThreadPool pool(2);
  Session s(w, so, pool);
  const int s_slot = s.add_sequence();
  const int64_t V = s.n_vocab();
  Logits r;
  r.prompt.resize(g.prompt.size() * static_cast<size_t>(V));
  s.eval(s_slot, g.prompt, r.prompt.data(), true);
  r.gen.resize(16 * static_cast<size_t>(V));
  std::copy(r.prompt.end() - V, r.prompt.end(), r.gen.begin());
  for (int k = 1; k < 16; ++k) {
    const int32_t tok = g.greedy[static_cast<size_t>(k - 1)];
    s.eval(s_slot, std::span<const int32_t>(&tok, 1), r.gen.data() + k * V, false);
  }
  return r;
}

int64_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

std::unique_ptr<ModelWeights> load_model(const std::string& file) {
  LoadOptions o;
  o.cache = CacheMode::Off;
  return ModelWeights::load(reference_dir() + "/models/" + file, o);
}

// ------------------------------------------------------------------- 1. BitLinear vectors

TEST(Conformance, BitLinearVectorsExact) {
  REQUIRE_REFERENCE();
  const json meta = read_json(reference_dir() + "/bitlinear/tiny-b158.p1.json");
  const auto bin = read_bytes(reference_dir() + "/bitlinear/tiny-b158.p1.bin");
  auto f32 = [&](const json& a) {
    return reinterpret_cast<const float*>(bin.data() + a.at("offset").get<size_t>());
  };
  auto i8 = [&](const json& a) {
    return reinterpret_cast<const int8_t*>(bin.data() + a.at("offset").get<size_t>());
  };
  for (const char* file : {"tiny-b158.i2_s.gguf", "tiny-b158.f32.gguf"}) {
    const auto w = load_model(file);
    for (kernels::Isa isa : kernels::available_isas()) {
      const kernels::KernelTable& kt = *kernels::kernels_for(isa);
      int checked_codes = 0, ties = 0;
      for (const json& e : meta.at("entries")) {
        const int64_t layer = e.at("layer").get<int64_t>();
        const std::string input = e.at("input").get<std::string>();
        const auto& shape = e.at("x").at("shape");
        const int64_t rows = shape[0].get<int64_t>(), k = shape[1].get<int64_t>();
        const float* x = f32(e.at("x"));
        const int8_t* q_ref = i8(e.at("q"));
        const float* absmax = f32(e.at("absmax"));
        // Our quantizer: every code equal except at the listed near-ties.
        std::vector<int8_t> q(static_cast<size_t>(rows * k));
        std::vector<float> s(static_cast<size_t>(rows));
        std::vector<int32_t> sum(static_cast<size_t>(rows));
        kt.quantize(x, k, rows, k, q.data(), k, s.data(), sum.data());
        std::vector<bool> tie(q.size(), false);
        for (const auto& t : e.at("near_ties"))
          tie[static_cast<size_t>(t[0].get<int64_t>() * k + t[1].get<int64_t>())] = true;
        for (size_t i = 0; i < q.size(); ++i) {
          if (tie[i]) {
            ++ties;
            continue;
          }
          ASSERT_EQ(q[i], q_ref[i])
              << kernels::isa_name(isa) << " L" << layer << " " << input << " element " << i;
          ++checked_codes;
        }
        // Outputs from the reference codes through our packed (fused) matrices.
        std::vector<int32_t> ref_sum(static_cast<size_t>(rows));
        std::vector<float> ref_s(static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows; ++r) {
          int32_t t = 0;
          for (int64_t j = 0; j < k; ++j) t += q_ref[r * k + j];
          ref_sum[static_cast<size_t>(r)] = t;
          ref_s[static_cast<size_t>(r)] = 127.0f / std::max(absmax[r], 1e-5f);
        }
        const LayerWeights& L = w->layers()[static_cast<size_t>(layer)];
        const PackedLinear& p = input == "attn_in"       ? L.qkv
                                : input == "attn_out_in" ? L.attn_out
                                : input == "ffn_in"      ? L.gate_up
                                                         : L.down;
        std::vector<float> y(static_cast<size_t>(rows * p.view.n));
        ThreadPool pool(1);
        kernels::ternary_matmul(pool, kt, p.view, {q_ref, k, ref_s.data(), ref_sum.data(), rows},
                                y.data(), p.view.n);
        int64_t col0 = 0;
        for (const json& out : e.at("outputs")) {
          const float* y_ref = f32(out.at("y"));
          const int64_t n_out = out.at("y").at("shape")[1].get<int64_t>();
          double ymax = 0;
          for (int64_t i = 0; i < rows * n_out; ++i)
            ymax = std::max(ymax, std::fabs(static_cast<double>(y_ref[i])));
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < n_out; ++c) {
              ASSERT_NEAR(y[static_cast<size_t>(r * p.view.n + col0 + c)], y_ref[r * n_out + c],
                          1e-6 * ymax)
                  << file << " " << out.at("weight").get<std::string>() << " row " << r << " col "
                  << c;
            }
          }
          col0 += n_out;
        }
        EXPECT_EQ(col0, p.view.n);
      }
      EXPECT_GT(checked_codes, 60000);
      EXPECT_EQ(ties, 7);
    }
  }
}

// -------------------------------------------------- 2. graph without activation quantization

void expect_graph_matches_llamacpp(const std::string& model, const std::string& file) {
  const auto w = load_model(file);
  SessionOptions so;
  so.quantize_activations = false;
  so.kv = KvType::F32;
  for (const char* prompt : {"p1", "p2"}) {
    const Golden g = load_golden(model, "llamacpp-f32", prompt);
    const Logits r = run_model(*w, so, g);
    double max_diff = 0;
    for (size_t i = 0; i < r.prompt.size(); ++i)
      max_diff = std::max(max_diff, std::fabs(double(r.prompt[i]) - g.prompt_logits[i]));
    for (size_t i = 0; i < r.gen.size(); ++i)
      max_diff = std::max(max_diff, std::fabs(double(r.gen[i]) - g.gen_logits[i]));
    EXPECT_LE(max_diff, 1e-3) << file << " " << prompt;
  }
}

TEST(Conformance, GraphWithoutActivationQuantizationB158) {
  REQUIRE_REFERENCE();
  expect_graph_matches_llamacpp("tiny-b158", "tiny-b158.f32.gguf");
}
TEST(Conformance, GraphWithoutActivationQuantizationBitnet) {
  REQUIRE_REFERENCE();
  expect_graph_matches_llamacpp("tiny-bitnet", "tiny-bitnet.f32.gguf");
}

// ------------------------------------------------------------------------ 3. end to end

void expect_end_to_end(const std::string& model, const std::string& file, KvType kv) {
  const auto w = load_model(file);
  SessionOptions so;
  so.kv = kv;
  for (const char* prompt : {"p1", "p2"}) {
    const Golden g = load_golden(model, "exact", prompt);
    const Logits r = run_model(*w, so, g);
    const int64_t V = w->config().n_vocab;
    double max_diff = 0, sq = 0;
    size_t count = 0;
    auto compare = [&](const std::vector<float>& ours, const std::vector<float>& ref,
                       const std::vector<double>& margin, const char* what) {
      const size_t rows = ours.size() / static_cast<size_t>(V);
      for (size_t row = 0; row < rows; ++row) {
        for (int64_t v = 0; v < V; ++v) {
          const double d = double(ours[row * V + v]) - ref[row * V + v];
          max_diff = std::max(max_diff, std::fabs(d));
          sq += d * d;
          ++count;
        }
        if (margin[row] >= 1.0) {
          EXPECT_EQ(argmax(&ours[row * V], V), argmax(&ref[row * V], V))
              << file << " " << prompt << " " << what << " row " << row << " (oracle margin "
              << margin[row] << ")";
        }
      }
    };
    compare(r.prompt, g.prompt_logits, g.prompt_margin, "prompt");
    compare(r.gen, g.gen_logits, g.greedy_margin, "gen");
    for (int k = 0; k < 16; ++k) {
      EXPECT_EQ(argmax(&r.gen[static_cast<size_t>(k * V)], V), g.greedy[static_cast<size_t>(k)])
          << file << " " << prompt << " greedy step " << k;
    }
    const double rms = std::sqrt(sq / static_cast<double>(count));
    EXPECT_LE(rms, 0.20) << file << " " << prompt;
    EXPECT_LE(max_diff, 1.0) << file << " " << prompt;
    std::printf("[ info ] %s %s kv %s: max |d| %.4f, rms %.4f\n", file.c_str(), prompt,
                kv == KvType::F16 ? "f16" : "f32", max_diff, rms);
  }
}

TEST(Conformance, EndToEndEveryEncodingB158) {
  REQUIRE_REFERENCE();
  for (const char* f : {"tiny-b158.f32.gguf", "tiny-b158.f16.gguf", "tiny-b158.i2_s.gguf",
                        "tiny-b158.tq2_0.gguf", "tiny-b158.tq1_0.gguf"}) {
    expect_end_to_end("tiny-b158", f, KvType::F16);
  }
  expect_end_to_end("tiny-b158", "tiny-b158.i2_s.gguf", KvType::F32);
}

TEST(Conformance, EndToEndBitnet) {
  REQUIRE_REFERENCE();
  for (const char* f : {"tiny-bitnet.f32.gguf", "tiny-bitnet.tq2_0.gguf"}) {
    expect_end_to_end("tiny-bitnet", f, KvType::F16);
  }
}

TEST(Conformance, SameWeightsInEveryEncodingGiveIdenticalLogits) {
  REQUIRE_REFERENCE();
  const Golden g = load_golden("tiny-b158", "exact", "p2");
  const Logits ref = run_model(*load_model("tiny-b158.f32.gguf"), {}, g);
  for (const char* f : {"tiny-b158.f16.gguf", "tiny-b158.i2_s.gguf", "tiny-b158.tq2_0.gguf",
                        "tiny-b158.tq1_0.gguf"}) {
    const Logits r = run_model(*load_model(f), {}, g);
    EXPECT_EQ(r.prompt, ref.prompt) << f;
    EXPECT_EQ(r.gen, ref.gen) << f;
  }
}

TEST(Session, ContextOverflowAndBadTokensAreClearErrors) {
  REQUIRE_REFERENCE();
  const auto w = load_model("tiny-b158.i2_s.gguf");
  ThreadPool pool(1);
  SessionOptions so;
  so.n_ctx = 8;
  Session s(*w, so, pool);
  const int s_slot = s.add_sequence();
  std::vector<int32_t> toks(9, 1);
  EXPECT_THROW(s.eval(s_slot, toks, nullptr, false), std::out_of_range);
  EXPECT_EQ(s.n_past(s_slot), 0);
  const int32_t bad = 4112;
  EXPECT_THROW(s.eval(s_slot, std::span<const int32_t>(&bad, 1), nullptr, false),
               std::invalid_argument);
  std::vector<float> logits(4112);
  s.eval(s_slot, std::span<const int32_t>(toks.data(), 8), logits.data(), false);
  EXPECT_EQ(s.n_past(s_slot), 8);
  EXPECT_THROW(s.eval(s_slot, std::span<const int32_t>(toks.data(), 1), nullptr, false),
               std::out_of_range);
}

TEST(Session, BatchSplittingDoesNotChangeLogits) {
  REQUIRE_REFERENCE();
  const auto w = load_model("tiny-b158.tq1_0.gguf");
  const Golden g = load_golden("tiny-b158", "exact", "p2");
  SessionOptions whole, split;
  split.max_batch_tokens = 7;
  const Logits a = run_model(*w, whole, g), b = run_model(*w, split, g);
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.gen, b.gen);
}

}  // namespace
}  // namespace bitnet::model
