// KL divergence of next-token distributions (model/kl-divergence.h) on hand-made distributions
// with known answers, the premise of the lossy-head measurement (gen-dummy files that differ only
// in --embd-type hold the same weights), and `bitnet kl` as a user runs it: the built binary in a
// child process (BITNET_CLI_PATH, the pattern of test-cli.cpp) on a tiny-1m dummy.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli-runner.h"

#include "core/fp16.h"
#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "formats/tensor-codec.h"
#include "tools/dummy-model.h"
#include "tools/kl-divergence.h"

extern char** environ;

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;
using formats::GgmlType;
using formats::GgufFile;

constexpr uint32_t id(GgmlType t) {
  return static_cast<uint32_t>(t);
}

// ---- the math -----------------------------------------------------------------------------------

std::vector<float> random_logits(int64_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(KlMath, IdenticalDistributionsGiveExactlyZero) {
  for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{4112}, int64_t{128256}}) {
    SCOPED_TRACE(n);
    const std::vector<float> x = random_logits(n, 7, 4.0f);
    const PositionComparison c = compare_position(x.data(), x.data(), n, 0);
    EXPECT_EQ(c.kl, 0.0);
    EXPECT_EQ(c.nll_base, c.nll_test);
    EXPECT_EQ(c.top1_base, c.top1_test);
  }
}

TEST(KlMath, TwoTokensMatchClosedForm) {
  // P = softmax(0, 0) = (1/2, 1/2), Q = softmax(a, 0) = (s, 1 - s), s = 1 / (1 + e^-a):
  // KL(P || Q) = -log 2 - (log s + log(1 - s)) / 2 = -log 2 - a / 2 + log(1 + e^a).
  for (const float a : {0.0f, 0.25f, 1.0986123f, -3.0f, 20.0f}) {
    SCOPED_TRACE(a);
    const float base[2] = {0.0f, 0.0f}, test[2] = {a, 0.0f};
    const double ad = a;
    const double want = -std::log(2.0) - ad / 2 + std::log1p(std::exp(ad));
    const PositionComparison c = compare_position(base, test, 2, 1);
    EXPECT_NEAR(c.kl, want, 1e-15 * std::max(1.0, want));
    EXPECT_NEAR(c.nll_base, std::log(2.0), 1e-15);
    EXPECT_NEAR(c.nll_test, std::log1p(std::exp(ad)), 1e-14 * std::max(1.0, ad));
  }
  // a = log 3 (to float precision): KL = log 2 - log(3) / 2.
  const float base[2] = {0.0f, 0.0f}, test[2] = {static_cast<float>(std::log(3.0)), 0.0f};
  EXPECT_NEAR(compare_position(base, test, 2, 0).kl, std::log(2.0) - std::log(3.0) / 2, 1e-7);
}

TEST(KlMath, ShiftedGaussiansMatchContinuousKl) {
  // logits -(v - mu)^2 / (2 sigma^2) over integers v: a discretized Gaussian whose normalizer and
  // variance equal the continuous ones to far below double precision (Poisson summation, sigma =
  // 16), so KL(N(mu1, s^2) || N(mu2, s^2)) = (mu1 - mu2)^2 / (2 s^2). 2 s^2 = 512 and integer
  // squares < 2^24 make every logit exact in float; the truncated tails hold < 1e-20.
  const int64_t lo = -200, n = 401;
  auto gaussian = [&](int64_t mu) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t d = lo + i - mu;
      v[static_cast<size_t>(i)] = -static_cast<float>(d * d) / 512.0f;
    }
    return v;
  };
  const std::vector<float> p = gaussian(0);
  for (const int64_t mu : {1, 3, 10}) {
    SCOPED_TRACE(mu);
    const std::vector<float> q = gaussian(mu);
    const PositionComparison c = compare_position(p.data(), q.data(), n, static_cast<int32_t>(-lo));
    EXPECT_NEAR(c.kl, static_cast<double>(mu * mu) / 512.0, 1e-13);
    EXPECT_EQ(c.top1_base, -lo);
    EXPECT_EQ(c.top1_test, -lo + mu);
    // -log of the density at the mean: log(sigma sqrt(2 pi)).
    EXPECT_NEAR(c.nll_base, std::log(16.0 * std::sqrt(2.0 * M_PI)), 1e-12);
  }
}

TEST(KlMath, ShiftInvariantAndNonNegative) {
  const int64_t n = 4112;
  const std::vector<float> a = random_logits(n, 1, 3.0f), b = random_logits(n, 2, 3.0f);
  std::vector<float> a_shift(a);
  for (float& x : a_shift) x += 64.0f;  // values in (-14, 14) + 64: exact only to 2^-18
  const PositionComparison ab = compare_position(a.data(), b.data(), n, 5);
  EXPECT_GT(ab.kl, 0.1);
  // The shift rounds each logit by at most 2^-18 (half an ulp at 64..128), which moves KL by at
  // most 2 * 2^-18 (first order in the perturbation of log Q, weighted by P and Q).
  EXPECT_NEAR(compare_position(a.data(), a_shift.data(), n, 5).kl, 0.0, 2.0 * std::ldexp(1.0, -18));
  EXPECT_NEAR(compare_position(a_shift.data(), b.data(), n, 5).kl, ab.kl,
              2.0 * std::ldexp(1.0, -18));
}

TEST(KlMath, ArgmaxTiesToLowestId) {
  const float x[5] = {1.0f, 3.0f, -2.0f, 3.0f, 0.0f};
  EXPECT_EQ(argmax(x, 5), 1);
  EXPECT_NEAR(log_sum_exp(x, 5), std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(-2.0) + 1.0),
              1e-14);
}

TEST(KlMath, QuantileInterpolatesLinearly) {
  EXPECT_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_NEAR(quantile({4, 1, 3, 2}, 0.99), 3.97, 1e-12);  // h = 2.97
  EXPECT_EQ(quantile({4, 1, 3, 2}, 0.0), 1.0);
  EXPECT_EQ(quantile({4, 1, 3, 2}, 1.0), 4.0);
  EXPECT_EQ(quantile({7}, 0.99), 7.0);
  EXPECT_THROW(quantile({}, 0.5), std::invalid_argument);
  EXPECT_THROW(quantile({1, 2}, 1.5), std::invalid_argument);
}

TEST(KlMath, SummaryOfHandMadePositions) {
  std::vector<PositionComparison> v(4);
  const double kl[4] = {0.5, 0.0, 2.0, 0.25};
  for (size_t i = 0; i < 4; ++i) {
    v[i].kl = kl[i];
    v[i].top1_base = 7;
    v[i].top1_test = i == 2 ? 8 : 7;
    v[i].nll_base = std::log(2.0) * static_cast<double>(i);  // mean 1.5 log 2: ppl 2^1.5
    v[i].nll_test = std::log(4.0);
  }
  const KlSummary s = summarize(v);
  EXPECT_EQ(s.positions, 4);
  EXPECT_EQ(s.kl_mean, 2.75 / 4);
  EXPECT_EQ(s.kl_median, 0.375);
  EXPECT_NEAR(s.kl_p99, 0.5 + 0.97 * 1.5, 1e-12);
  EXPECT_EQ(s.kl_max, 2.0);
  EXPECT_EQ(s.kl_max_index, 2);
  EXPECT_EQ(s.top1_same, 3);
  EXPECT_EQ(s.top1_agreement, 0.75);
  EXPECT_NEAR(s.ppl_base, std::pow(2.0, 1.5), 1e-12);
  EXPECT_NEAR(s.ppl_test, 4.0, 1e-12);
  EXPECT_THROW(summarize({}), std::invalid_argument);
}

// ---- the premise of comparing --embd-type files
// ---------------------------------------------------

std::vector<uint8_t> dummy_bytes(uint32_t embd) {
  formats::GgufWriter w;
  add_dummy_model(find_dummy_preset("tiny-1m"), {id(GgmlType::I2_S), embd, 3}, w);
  return w.to_bytes();
}

std::vector<float> dequantize(const formats::GgufTensorInfo& t) {
  const int64_t ne0 = t.dims[0], rows = t.dims[1];
  const size_t row_bytes = t.size / static_cast<size_t>(rows);
  std::vector<float> out(static_cast<size_t>(ne0 * rows));
  for (int64_t r = 0; r < rows; ++r) {
    formats::dequantize_row(t.type, t.data + static_cast<size_t>(r) * row_bytes,
                            out.data() + r * ne0, ne0);
  }
  return out;
}

// The quantization step of element i of a Q8_0 or Q6_K tensor (its block's, or sub-block's, scale).
double step_of(const formats::GgufTensorInfo& t, size_t i) {
  if (t.type == id(GgmlType::Q8_0)) {  // blocks of 32: fp16 d, int8 q[32]
    const uint8_t* b = t.data + (i / 32) * 34;
    uint16_t d;
    std::memcpy(&d, b, 2);
    return std::fabs(fp16_to_fp32(d));
  }
  // Q6_K, blocks of 256: ql[128], qh[64], int8 scales[16] (one per 16 elements), fp16 d.
  const uint8_t* b = t.data + (i / 256) * 210;
  uint16_t d;
  std::memcpy(&d, b + 208, 2);
  const int8_t sc = static_cast<int8_t>(b[192 + (i % 256) / 16]);
  return std::fabs(fp16_to_fp32(d) * sc);
}

// Same preset and seed, another --embd-type: every other tensor is byte-identical, and the
// embedding (the tied LM head) is the same master values rounded another way. F16 is within
// 2^-11 relative (+ 2^-25 absolute, subnormals) of the master; Q8_0 rounds to its block step
// (d = absmax / 127 stored as fp16, so up to 128 q * 2^-11 d more), Q6_K to half its sub-block
// step d * scale, or up to a whole step where the clamp of the codes to [-32, 31] bites (measured:
// Q8_0 0.53, Q6_K 0.50 steps). Independent values (another seed) differ by about sigma, 50 to 100
// steps: far outside these bounds.
TEST(KlPremise, EmbdTypesOfOnePresetAndSeedHoldTheSameWeights) {
  const std::vector<uint8_t> f16_bytes = dummy_bytes(id(GgmlType::F16));
  const GgufFile f16 = GgufFile::from_memory(f16_bytes, "f16");
  const std::vector<float> ref = dequantize(f16.tensor("token_embd.weight"));
  for (const uint32_t embd : {id(GgmlType::Q8_0), id(GgmlType::Q6_K)}) {
    SCOPED_TRACE(formats::ggml_type_name(embd));
    const std::vector<uint8_t> bytes = dummy_bytes(embd);
    const GgufFile f = GgufFile::from_memory(bytes, "q");
    ASSERT_EQ(f.tensors().size(), f16.tensors().size());
    for (const auto& t : f.tensors()) {
      if (t.name == "token_embd.weight") continue;
      const auto& u = f16.tensor(t.name);
      ASSERT_EQ(t.size, u.size) << t.name;
      EXPECT_TRUE(std::equal(t.data, t.data + t.size, u.data)) << t.name;
    }
    const auto& e = f.tensor("token_embd.weight");
    ASSERT_EQ(e.type, embd);
    const std::vector<float> got = dequantize(e);
    ASSERT_EQ(got.size(), ref.size());
    const double steps = embd == id(GgmlType::Q8_0) ? 0.5 + 128 * std::ldexp(1.0, -11) : 1.0;
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double bound = steps * step_of(e, i) * (1 + std::ldexp(1.0, -10)) +
                           std::ldexp(std::fabs(ref[i]), -11) + std::ldexp(1.0, -25);
      if (std::fabs(static_cast<double>(got[i]) - ref[i]) > bound && bad++ < 5) {
        ADD_FAILURE() << "element " << i << ": " << got[i] << " vs F16 " << ref[i] << " (bound "
                      << bound << ")";
      }
    }
    EXPECT_EQ(bad, 0u);
  }
}

// ---- bitnet kl ----------------------------------------------------------------------------------

#ifdef BITNET_CLI_PATH

using test::read_all;
using test::Result;
using test::run_bitnet;
using test::TempDir;

// tiny-1m dummies written once for the suite: the model, a copy with a Q8_0 head, one with a
// larger vocabulary and one whose token strings differ.
class KlCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    const DummyPreset& p = find_dummy_preset("tiny-1m");
    write_dummy_model(p, {}, model().string());
    write_dummy_model(p, {id(GgmlType::I2_S), id(GgmlType::Q8_0), 0}, q8_model().string());
    DummyPreset bigger = p;
    bigger.config.n_vocab = bigger.tokenizer.n_vocab = 4224;
    write_dummy_model(bigger, {}, (dir_->path() / "vocab-4224.gguf").string());
    DummyPreset renamed = p;
    renamed.tokenizer.control[2].text = "<|renamed|>";  // id 4098
    write_dummy_model(renamed, {}, (dir_->path() / "renamed.gguf").string());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path model() { return dir_->path() / "tiny.gguf"; }
  static fs::path q8_model() { return dir_->path() / "tiny-q8_0.gguf"; }
  static fs::path path(const char* name) { return dir_->path() / name; }

  static nlohmann::json run_json(std::vector<std::string> args) {
    args.insert(args.begin(), "kl");
    args.push_back("--json");
    const Result r = run_bitnet(args);
    EXPECT_TRUE(r.exited);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json();
  }

  static TempDir* dir_;
};

TempDir* KlCli::dir_ = nullptr;

TEST_F(KlCli, SameModelAndSettingsGiveExactlyZero) {
  const std::string m = model().string();
  for (const auto& extra : std::vector<std::vector<std::string>>{
           {}, {"--base", m}, {"--kv", "f32", "--base-kv", "f32"}, {"-c", "16"}}) {
    std::vector<std::string> args = {"-m", m, "--random-tokens", "64", "--seed", "3", "-t", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    const nlohmann::json j = run_json(args);
    ASSERT_FALSE(j.is_null());
    const int64_t windows = extra.size() == 2 && extra[0] == "-c" ? 4 : 1;
    EXPECT_EQ(j["positions"], 64 - windows);
    EXPECT_EQ(j["per_position"].size(), static_cast<size_t>(64 - windows));
    EXPECT_EQ(j["kl"]["mean"], 0.0);
    EXPECT_EQ(j["kl"]["max"], 0.0);
    EXPECT_EQ(j["top1_agreement"], 1.0);
    EXPECT_EQ(j["perplexity"]["diff"], 0.0);
    EXPECT_EQ(j["perplexity"]["base"], j["perplexity"]["test"]);
  }
}

TEST_F(KlCli, F16CacheAgainstF32IsSmallAndPositive) {
  // Unrelated models (another seed) measure KL about 1.0 here; an F16 cache measured 2e-4 (the
  // int8 activation codes it flips dominate: without activation quantization, 6e-8).
  const nlohmann::json j = run_json(
      {"-m", model().string(), "--base-kv", "f32", "--random-tokens", "64", "--seed", "3"});
  ASSERT_FALSE(j.is_null());
  EXPECT_EQ(j["base"]["kv"], "f32");
  EXPECT_EQ(j["test"]["kv"], "f16");
  EXPECT_GT(j["kl"]["mean"].get<double>(), 0.0);
  EXPECT_LT(j["kl"]["max"].get<double>(), 1e-2);
  EXPECT_LE(j["kl"]["median"].get<double>(), j["kl"]["p99"].get<double>());
  EXPECT_LE(j["kl"]["p99"].get<double>(), j["kl"]["max"].get<double>());
  EXPECT_GE(j["top1_agreement"].get<double>(), 0.9);
  for (const auto& row : j["per_position"]) EXPECT_GE(row["kl"].get<double>(), 0.0);

  const nlohmann::json exact = run_json({"-m", model().string(), "--base-kv", "f32",
                                         "--random-tokens", "64", "--seed", "3", "--no-act-quant"});
  ASSERT_FALSE(exact.is_null());
  EXPECT_GT(exact["kl"]["mean"].get<double>(), 0.0);
  EXPECT_LT(exact["kl"]["max"].get<double>(), 1e-5);
}

TEST_F(KlCli, QuantizedHeadAgainstF16Head) {
  const nlohmann::json j = run_json({"-m", q8_model().string(), "--base", model().string(),
                                     "--random-tokens", "64", "--seed", "3"});
  ASSERT_FALSE(j.is_null());
  EXPECT_GT(j["kl"]["mean"].get<double>(), 0.0);
  EXPECT_LT(j["kl"]["max"].get<double>(), 1e-2);
}

TEST_F(KlCli, TextInputAndTextReport) {
  const fs::path text = path("text.txt");
  std::ofstream(text) << "The quick brown fox jumps over the lazy dog.";
  const Result r = run_bitnet(
      {"kl", "-m", model().string(), "--base-kv", "f32", "-f", text.string(), "--per-position"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  // Byte-level dummy tokenizer: 44 bytes plus BOS, 44 scored positions.
  EXPECT_NE(r.out.find("45 tokens, windows of 45, 44 positions scored"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("KL(base || test), nats: mean "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("top-1 agreement: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("perplexity: base "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("   pos    next"), std::string::npos) << r.out;
}

TEST_F(KlCli, HelpExits0) {
  const Result r = run_bitnet({"kl", "--help"});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("usage: bitnet kl -m MODEL"), std::string::npos) << r.out;
  const Result h = run_bitnet({"help"});
  EXPECT_NE(h.out.find("  kl -m MODEL [--base MODEL]"), std::string::npos) << h.out;
}

TEST_F(KlCli, BadInputsFailWithClearErrors) {
  const std::string m = model().string();
  const std::string absent = path("absent.gguf").string();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  // Exit codes (cli-common.h): 2 bad usage, 3 a model or input file that cannot be used.
  const std::vector<Case> cases = {
      {{"-m", path("vocab-4224.gguf").string(), "--base", m, "--random-tokens", "8"},
       3,
       "vocabularies differ: --base " + m + " has 4112 tokens, -m " +
           path("vocab-4224.gguf").string() + " has 4224"},
      {{"-m", path("renamed.gguf").string(), "--base", m, "--random-tokens", "8"},
       3,
       "vocabularies differ: token 4098 is '<|reserved_special_token_0|>' in --base " + m},
      {{"-m", m, "--base", absent, "--random-tokens", "8"}, 3, "--base: " + absent},
      {{"-m", absent, "--base", m, "--random-tokens", "8"}, 3, "-m: " + absent},
      {{"-m", m, "--tokens", "5"}, 2, "--tokens: 1 token(s); at least 2 are needed"},
      {{"-m", m, "--tokens", "5,4112"}, 2, "token 4112 at 1 is outside the vocabulary of 4112"},
      {{"-m", m, "-p", ""}, 3, "-p: 1 token(s)"},
      {{"-m", m, "-f", absent}, 3, "-f " + absent + ": cannot open"},
      {{"-m", m, "--random-tokens", "1"}, 2, "--random-tokens: expected an integer in 2.."},
      {{"-m", m}, 2, "give exactly one of -f TEXT_FILE, -p TEXT"},
      {{"-m", m, "-p", "a", "--random-tokens", "4"}, 2, "give exactly one of"},
      {{"-m", m, "--tokens", "1,2", "--seed", "4"}, 2, "--seed applies only to --random-tokens"},
      {{"-m", m, "--kv", "q8", "--tokens", "1,2"}, 2, "--kv: expected f16 or f32, found 'q8'"},
      {{"-m", m, "--base-kv", "f8", "--tokens", "1,2"}, 2, "--base-kv: expected f16 or f32"},
      {{"-m", m, "--tokens", "1,2", "-c", "1"}, 2, "-c: a window needs at least 2 tokens"},
      {{"--random-tokens", "4"}, 2, "-m MODEL is required"},
      {{"-m", m, "--tokens", "1,2", "--bogus"}, 2, "unknown option '--bogus'"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"kl"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    SCOPED_TRACE(testing::PrintToString(args));
    const Result r = run_bitnet(args);
    ASSERT_TRUE(r.exited) << "killed by a signal";
    EXPECT_EQ(r.code, c.code) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

#else

TEST(KlCli, NeedsTheBitnetProgram) {
  GTEST_SKIP() << "this configuration does not build the bitnet program (BITNET_BUILD_CLI=OFF)";
}

#endif  // BITNET_CLI_PATH

}  // namespace
}  // namespace bitnet::model
