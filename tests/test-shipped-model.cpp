// The shipped default model (models/, made by tools/train) against its trainer: the files in
// models/<name>/ were written by tools/train/agreement.py from the trainer's float64 forward of
// the exported checkpoint and from the SentencePiece library, so these tests need nothing outside
// the repository. Tolerances: ../shared/reference/README.md section 8 (tests 3 and 4).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli-runner.h"
#include "cli/default-model.h"

namespace {

namespace fs = std::filesystem;
using bitnet::test::read_all;
using bitnet::test::Result;
using bitnet::test::run_bitnet;
using bitnet::test::TempDir;
using nlohmann::json;

const fs::path kModels = BITNET_SOURCE_MODELS_DIR;

fs::path model_path() {
  return kModels / (std::string(bitnet::cli::kShippedModelName) + ".gguf");
}
fs::path data_dir() {
  return kModels / bitnet::cli::kShippedModelName;
}

json agreement() {
  return json::parse(read_all(data_dir() / "agreement.json"));
}

template <typename T>
std::vector<T> read_array(const fs::path& p) {
  const std::string bytes = read_all(p);
  std::vector<T> v(bytes.size() / sizeof(T));
  std::copy_n(bytes.data(), v.size() * sizeof(T), reinterpret_cast<char*>(v.data()));
  return v;
}

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

size_t argmax(const float* v, size_t n) {
  return static_cast<size_t>(std::max_element(v, v + n) - v);
}

// Rows of `bitnet logits` (n_vocab wide) restricted to the reference's columns.
struct EngineLogits {
  std::vector<float> full;  // [rows][n_vocab]
  std::vector<int32_t> greedy;
  size_t n_vocab = 0;
};

EngineLogits engine_logits(const std::vector<std::string>& extra) {
  TempDir dir("bitnet-shipped");
  const std::string prefix = (dir.path() / "out").string();
  std::vector<std::string> args = {"logits", "-m", model_path().string(), "-t", "1", "-o", prefix};
  args.insert(args.end(), extra.begin(), extra.end());
  const Result r = run_bitnet(args);
  EXPECT_TRUE(r.exited && r.code == 0) << r.err;
  EngineLogits e;
  const json j = json::parse(read_all(prefix + ".json"));
  e.n_vocab = j["n_vocab"].get<size_t>();
  e.greedy = j["greedy_tokens"].get<std::vector<int32_t>>();
  e.full = read_array<float>(prefix + ".f32");
  return e;
}

TEST(ShippedModel, IsTheDefaultAndItsFilesArePresent) {
  ASSERT_TRUE(fs::exists(model_path())) << model_path();
  ASSERT_TRUE(fs::exists(data_dir() / "agreement.json"));
  const json a = agreement();
  EXPECT_EQ(a["model"], model_path().filename().string());
  // Without -m, `bitnet run` uses it: its greedy text is the start of the trainer's greedy text
  // (both with the leading space trimmed), over the steps whose reference top-2 margin is >= 1.0
  // (later ones may legitimately differ, see check_quantized).
  const json& p = a["logits"]["prompts"][0];
  const auto margins = p["greedy_top2_margin"].get<std::vector<double>>();
  size_t steady = 0;
  while (steady < margins.size() && margins[steady] >= 1.0) ++steady;
  const Result r =
      run_bitnet({"run", "-p", p["text"].get<std::string>(), "-n",
                  std::to_string(std::max<size_t>(steady, 1)), "--temp", "0", "-t", "1"});
  ASSERT_TRUE(r.exited && r.code == 0) << r.err;
  EXPECT_NE(r.err.find(std::string("built-in default ") + bitnet::cli::kShippedModelName),
            std::string::npos)
      << r.err;
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \n"));
    s.erase(s.find_last_not_of(" \n") + 1);
    return s;
  };
  const std::string got = trim(r.out), want = trim(p["greedy_text"].get<std::string>());
  ASSERT_FALSE(got.empty());
  if (steady > 0) {
    EXPECT_EQ(want.substr(0, got.size()), got);
  }
}

// Test 1: the engine's tokenizer gives the library's ids for the whole held-out split.
TEST(ShippedModel, TokenizesTheHeldOutTextAsSentencePieceDoes) {
  const json a = agreement();
  const auto want = read_array<uint16_t>(data_dir() / a["heldout"]["ids"].get<std::string>());
  ASSERT_EQ(want.size(), a["heldout"]["n_tokens"].get<size_t>());
  const Result r = run_bitnet({"tokenize", "-m", model_path().string(), "-f",
                               (data_dir() / a["heldout"]["text"].get<std::string>()).string(),
                               "--no-bos", "--no-parse-special"});
  ASSERT_TRUE(r.exited && r.code == 0) << r.err;
  std::istringstream in(r.out);
  std::vector<uint32_t> got;
  for (uint32_t id = 0; in >> id;) got.push_back(id);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << "first difference at token " << i;
  }
}

// Test 4 of section 8: activation-quantized logits (decode path: prompt, then 16 greedy steps)
// against the float64 forward with the same int8 semantics.
void check_quantized(const std::string& kv) {
  const json a = agreement();
  const auto cols = a["logits"]["columns"].get<std::vector<size_t>>();
  const auto ref = read_array<float>(data_dir() / a["logits"]["file"].get<std::string>());
  size_t row0 = 0;
  for (const json& p : a["logits"]["prompts"]) {
    SCOPED_TRACE(p["text"].get<std::string>() + ", kv " + kv);
    const auto tokens = p["tokens"].get<std::vector<int32_t>>();
    const auto greedy = p["greedy_tokens"].get<std::vector<int32_t>>();
    const auto gmargin = p["greedy_top2_margin"].get<std::vector<double>>();
    const auto ref_argmax = p["argmax"].get<std::vector<size_t>>();
    const auto margin = p["top2_margin"].get<std::vector<double>>();
    const size_t rows = p["rows"].get<size_t>();
    const EngineLogits e = engine_logits(
        {"--tokens", join(tokens), "--greedy", std::to_string(greedy.size()), "--kv", kv});
    // Greedy tokens identical up to the first step whose reference margin is below 1.0 (beyond
    // it, rounding differences may legitimately pick the other token).
    size_t must = 0;
    while (must < greedy.size() && gmargin[must] >= 1.0) ++must;
    size_t same = 0;
    while (same < greedy.size() && same < e.greedy.size() && e.greedy[same] == greedy[same]) {
      ++same;
    }
    EXPECT_GE(same, must) << "greedy tokens differ at step " << same;
    const size_t valid = std::min(rows, tokens.size() + same);  // rows of the shared sequence
    ASSERT_GE(e.full.size(), valid * e.n_vocab);
    double max_d = 0, sum_sq = 0;
    for (size_t r = 0; r < valid; ++r) {
      const float* row = e.full.data() + r * e.n_vocab;
      for (size_t c = 0; c < cols.size(); ++c) {
        const double d = row[cols[c]] - ref[(row0 + r) * cols.size() + c];
        max_d = std::max(max_d, std::fabs(d));
        sum_sq += d * d;
      }
      if (margin[r] >= 1.0) {
        EXPECT_EQ(argmax(row, e.n_vocab), ref_argmax[r]) << "row " << r;
      }
    }
    const double rms = std::sqrt(sum_sq / static_cast<double>(valid * cols.size()));
    EXPECT_LE(rms, 0.20);
    EXPECT_LE(max_d, 1.0);
    std::printf("%s kv %s: %zu rows, max |d| %.3g, rms %.3g, greedy %zu/%zu\n",
                p["text"].get<std::string>().c_str(), kv.c_str(), valid, max_d, rms, same,
                greedy.size());
    row0 += rows;
  }
}

TEST(ShippedModel, QuantizedLogitsMatchTheTrainerWithF32Cache) {
  check_quantized("f32");
}

TEST(ShippedModel, QuantizedLogitsMatchTheTrainerWithF16Cache) {
  check_quantized("f16");
}

// Test 3 of section 8: the graph without activation quantization, F32 KV cache, max |d| <= 1e-3.
TEST(ShippedModel, UnquantizedGraphMatchesTheTrainerToFloat32Precision) {
  const json a = agreement();
  const auto cols = a["logits"]["columns"].get<std::vector<size_t>>();
  const auto ref =
      read_array<float>(data_dir() / a["logits"]["file_no_act_quant"].get<std::string>());
  size_t row0 = 0;
  for (const json& p : a["logits"]["prompts"]) {
    SCOPED_TRACE(p["text"].get<std::string>());
    std::vector<int32_t> seq = p["tokens"].get<std::vector<int32_t>>();
    const auto greedy = p["greedy_tokens"].get<std::vector<int32_t>>();
    seq.insert(seq.end(), greedy.begin(), greedy.end() - 1);
    const size_t rows = p["rows"].get<size_t>();
    ASSERT_EQ(seq.size(), rows);
    const EngineLogits e = engine_logits({"--tokens", join(seq), "--no-act-quant", "--kv", "f32"});
    ASSERT_EQ(e.full.size(), rows * e.n_vocab);
    const auto ref_argmax = p["argmax_no_act_quant"].get<std::vector<size_t>>();
    const auto margin = p["top2_margin_no_act_quant"].get<std::vector<double>>();
    double max_d = 0;
    for (size_t r = 0; r < rows; ++r) {
      const float* row = e.full.data() + r * e.n_vocab;
      for (size_t c = 0; c < cols.size(); ++c) {
        max_d =
            std::max(max_d, std::fabs(double{row[cols[c]]} - ref[(row0 + r) * cols.size() + c]));
      }
      if (margin[r] >= 2e-3) {
        EXPECT_EQ(argmax(row, e.n_vocab), ref_argmax[r]) << "row " << r;
      }
    }
    EXPECT_LE(max_d, 1e-3);
    row0 += rows;
  }
}

// Held-out perplexity, llama-perplexity's procedure, within 0.5% of the trainer's float64 value.
TEST(ShippedModel, HeldOutPerplexityMatchesTheTrainer) {
  const json a = agreement();
  const json& ppl = a["perplexity"];
  const Result r = run_bitnet({"perplexity", "-m", model_path().string(), "-f",
                               (data_dir() / a["heldout"]["text"].get<std::string>()).string(),
                               "-c", std::to_string(ppl["n_ctx"].get<int>()), "-t", "1"});
  ASSERT_TRUE(r.exited && r.code == 0) << r.err;
  const size_t at = r.out.find("perplexity: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const double got = std::stod(r.out.substr(at + 12));
  const double want = ppl["value"].get<double>();
  EXPECT_NEAR(got / want, 1.0, 0.005) << "engine " << got << ", trainer " << want;
}

}  // namespace
