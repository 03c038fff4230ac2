// The bitnet program as a user runs it: exit codes, output and error messages of `bitnet inspect`,
// `bitnet help` and an unknown command. Runs the built binary (BITNET_CLI_PATH) in a child process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli-runner.h"

#include "formats/ggml-types.h"
#include "formats/gguf.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;

fs::path reference_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  return env && *env ? env : BITNET_REFERENCE_DIR_DEFAULT;
}

#define REQUIRE_FIXTURE(path)                                                                 \
  do {                                                                                        \
    if (!fs::exists(path))                                                                    \
      GTEST_SKIP() << path << " not found; set BITNET_REFERENCE_DIR to the shared reference " \
                   << "directory";                                                            \
  } while (0)

using bitnet::test::read_all;
using bitnet::test::Result;
using bitnet::test::run_bitnet;
using bitnet::test::TempDir;

constexpr const char* kFixtures[] = {
    "tiny-b158.f32.gguf",   "tiny-b158.f16.gguf",   "tiny-b158.i2_s.gguf",   "tiny-b158.tq2_0.gguf",
    "tiny-b158.tq1_0.gguf", "tiny-bitnet.f32.gguf", "tiny-bitnet.tq2_0.gguf"};

TEST(Inspect, EveryFixtureIsValid) {
  for (const char* name : kFixtures) {
    SCOPED_TRACE(name);
    const fs::path path = reference_dir() / "models" / name;
    REQUIRE_FIXTURE(path);
    const Result r = run_bitnet({"inspect", path.string()});
    ASSERT_TRUE(r.exited);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    const std::string arch = std::string(name).starts_with("tiny-b158") ? "bitnet-b1.58" : "bitnet";
    EXPECT_NE(r.out.find("architecture: " + arch + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("verdict:      valid\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("blk.0.ffn_down.weight"), std::string::npos);
    EXPECT_EQ(r.err, "");
  }
}

TEST(Inspect, JsonParsesAndCountsTensors) {
  const fs::path path = reference_dir() / "models" / "tiny-bitnet.tq2_0.gguf";
  REQUIRE_FIXTURE(path);
  const Result r = run_bitnet({"inspect", path.string(), "--json"});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  // 2 layers x (11 tensors + 7 .scale) + token_embd + output_norm.
  EXPECT_EQ(j["totals"]["tensors"], 38);
  EXPECT_EQ(j["tensors"].size(), 38u);
  EXPECT_EQ(j["architecture"], "bitnet");
  EXPECT_EQ(j["config"]["n_layer"], 2);
  EXPECT_EQ(j["config"]["activation"], "silu");
  EXPECT_EQ(j["tokenizer"]["tokens"], 4112);
  EXPECT_EQ(j["valid"], true);
  EXPECT_TRUE(j["problems"].empty());
}

TEST(Inspect, VocabOnlyFilePrintsTokenizerAndExits3) {
  const fs::path path = reference_dir() / "tokenizer" / "llama3-bpe-4112.gguf";
  REQUIRE_FIXTURE(path);
  const Result r = run_bitnet({"inspect", path.string()});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.out.find("holds no tensors (a vocabulary-only GGUF?)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4112 tokens, 6397 merges"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eot 4105 \"<|eot_id|>\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verdict:      INVALID"), std::string::npos) << r.out;
}

TEST(Inspect, TruncatedFileFailsWithItsName) {
  const fs::path src = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(src);
  const std::string bytes = read_all(src);
  const TempDir dir;
  // Cut inside the header (metadata), then inside the tensor data.
  for (const size_t keep : {size_t{1000}, bytes.size() - 100}) {
    SCOPED_TRACE(keep);
    const fs::path cut = dir.path() / ("cut-" + std::to_string(keep) + ".gguf");
    std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
    for (const bool json : {false, true}) {
      std::vector<std::string> args = {"inspect", cut.string()};
      if (json) args.push_back("--json");
      const Result r = run_bitnet(args);
      ASSERT_TRUE(r.exited) << "killed by a signal";
      EXPECT_EQ(r.code, 3);
      EXPECT_NE(r.err.find(cut.string()), std::string::npos) << r.err;
      EXPECT_EQ(r.out, "");
    }
  }
}

TEST(Inspect, MissingFileFailsWithItsName) {
  const TempDir dir;
  const std::string path = (dir.path() / "absent.gguf").string();
  const Result r = run_bitnet({"inspect", path});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
}

TEST(Inspect, UsageErrorsExit2) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"inspect"}, {"inspect", "a.gguf", "--bogus"}, {"inspect", "a.gguf", "b.gguf"}}) {
    const Result r = run_bitnet(args);
    ASSERT_TRUE(r.exited);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("bitnet inspect: "), std::string::npos) << r.err;
  }
}

TEST(Cli, HelpListsInspect) {
  const Result r = run_bitnet({"help"});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("  inspect MODEL [--json] | inspect --plan MODEL"), std::string::npos)
      << r.out;
}

TEST(Cli, UnknownCommandExits2) {
  const Result r = run_bitnet({"no-such-command"});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'no-such-command'"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace

namespace bitnet {
namespace {

// A copy of tiny-b158.i2_s.gguf with one change, written to `dir`; `edit` may change a key's value
// (set it again on the writer), drop a tensor (return false) or replace its dims.
using KvEdit = std::function<void(formats::GgufWriter&)>;
using TensorEdit = std::function<bool(const formats::GgufTensorInfo&, std::vector<int64_t>& dims)>;

std::string edited_fixture(const fs::path& dir, const std::string& name, const KvEdit& kv_edit,
                           const TensorEdit& tensor_edit) {
  const auto src =
      formats::GgufFile::open((reference_dir() / "models" / "tiny-b158.i2_s.gguf").string());
  formats::GgufWriter w;
  for (const auto& kv : src.kvs()) w.set(kv.key, kv.value);
  if (kv_edit) kv_edit(w);
  std::vector<std::vector<uint8_t>> keep;
  for (const auto& t : src.tensors()) {
    std::vector<int64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
    if (tensor_edit && !tensor_edit(t, dims)) continue;
    const size_t bytes =
        formats::ggml_tensor_bytes(t.type, dims.data(), static_cast<int>(dims.size()));
    keep.emplace_back(bytes, uint8_t{0});
    std::memcpy(keep.back().data(), t.data, std::min(bytes, t.size));
    w.add_tensor(t.name, t.type, dims, std::span<const uint8_t>(keep.back()));
  }
  const std::string path = (dir / name).string();
  w.write(path);
  return path;
}

void expect_clear_failure(const std::vector<std::string>& args, const std::string& must_mention) {
  const Result r = run_bitnet(args);
  ASSERT_TRUE(r.exited) << "crashed: " << r.err;
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
}

TEST(RunBadInput, EachIsAClearErrorAndANonZeroExit) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  TempDir tmp;
  const std::string unknown_arch =
      edited_fixture(tmp.path(), "arch.gguf",
                     [](formats::GgufWriter& w) { w.set("general.architecture", "gpt9"); }, {});
  expect_clear_failure({"run", "-m", unknown_arch, "-p", "hi", "-n", "2"},
                       "unknown architecture 'gpt9'");

  const std::string missing = edited_fixture(
      tmp.path(), "missing.gguf", {}, [](const formats::GgufTensorInfo& t, std::vector<int64_t>&) {
        return t.name != "blk.1.ffn_down.weight";
      });
  expect_clear_failure({"run", "-m", missing, "-p", "hi", "-n", "2"},
                       "blk.1.ffn_down.weight' is missing");

  const std::string shape = edited_fixture(
      tmp.path(), "shape.gguf", {}, [](const formats::GgufTensorInfo& t, std::vector<int64_t>& d) {
        if (t.name == "blk.0.attn_norm.weight") d = {128};
        return true;
      });
  expect_clear_failure({"run", "-m", shape, "-p", "hi", "-n", "2"}, "blk.0.attn_norm.weight");

  const std::string vocab = edited_fixture(
      tmp.path(), "vocab.gguf",
      [](formats::GgufWriter& w) { w.set("bitnet-b1.58.vocab_size", uint32_t{5000}); }, {});
  expect_clear_failure({"run", "-m", vocab, "-p", "hi", "-n", "2"}, "token_embd.weight");

  expect_clear_failure({"run", "-m", fixture.string(), "-c", "4", "-p",
                        "The quick brown fox jumps over the lazy dog.", "-n", "2"},
                       "-c 4 leaves no room to generate");
  expect_clear_failure(
      {"logits", "-m", fixture.string(), "--tokens", "1,99999", "-o", (tmp.path() / "x").string()},
      "outside the vocabulary");
  expect_clear_failure({"run", "-m", (tmp.path() / "nope.gguf").string(), "-p", "hi"}, "nope.gguf");
}

TEST(Run, GreedyContinuationOfTheReferencePrompt) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const Result r =
      run_bitnet({"run", "-m", fixture.string(), "-p",
                  "The quick brown fox jumps over the lazy dog.", "-n", "16", "--temp", "0"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  std::string want;
  for (int i = 0; i < 16; ++i) want += " List";  // the reference's greedy text
  EXPECT_EQ(r.out, want + "\n");  // only the generated text: the prompt is not echoed
  EXPECT_NE(r.err.find("generation: 16 tokens"), std::string::npos) << r.err;

  // --display-prompt echoes it first; the prompt can also come from a file (-f), with -e escapes.
  const TempDir tmp;
  const fs::path prompt = tmp.path() / "prompt.txt";
  std::ofstream(prompt) << "The quick brown fox jumps over the lazy dog.";
  const Result shown = run_bitnet({"run", "-m", fixture.string(), "-f", prompt.string(), "-n", "16",
                                   "--temp", "0", "--display-prompt"});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_EQ(shown.out, "The quick brown fox jumps over the lazy dog." + want + "\n");
  const Result escaped = run_bitnet({"run", "-m", fixture.string(), "-e", "-p", "The quick\\tbrown",
                                     "-n", "2", "--temp", "0", "--display-prompt"});
  ASSERT_EQ(escaped.code, 0) << escaped.err;
  EXPECT_EQ(escaped.out.rfind("The quick\tbrown", 0), 0u) << escaped.out;
}

TEST(Run, IgnoreEosRunsToTheLimit) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  // A stop string ends generation early, --ignore-eos never does anything but let it run.
  const Result r = run_bitnet({"run", "-m", fixture.string(), "-p", "The quick brown fox", "-n",
                               "40", "--temp", "1.5", "-s", "7", "--ignore-eos"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("generation: 40 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stopped: max tokens"), std::string::npos) << r.err;
}

TEST(Run, Int8HeadIsOptInAndSaysSo) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const Result plain = run_bitnet({"run", "-m", fixture.string(), "-p", "The quick brown fox", "-n",
                                   "8", "--temp", "0", "--ignore-eos"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_NE(plain.err.find("lm head F16"), std::string::npos) << plain.err;
  const Result i8 = run_bitnet({"run", "-m", fixture.string(), "-p", "The quick brown fox", "-n",
                                "8", "--temp", "0", "--ignore-eos", "--int8-head"});
  ASSERT_EQ(i8.code, 0) << i8.err;
  EXPECT_NE(i8.err.find("lm head int8 (from F16)"), std::string::npos) << i8.err;
  EXPECT_NE(i8.err.find("generation: 8 tokens"), std::string::npos) << i8.err;
  // bench names it with its results; kl compares it with the file's head.
  const Result b = run_bitnet({"bench", "-m", fixture.string(), "-p", "8", "-n", "4", "-r", "1",
                               "--int8-head", "--no-limits"});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.out.find("lm head int8 (from F16)"), std::string::npos) << b.out;
  const Result kl = run_bitnet(
      {"kl", "-m", fixture.string(), "--int8-head", "--random-tokens", "40", "-c", "20"});
  ASSERT_EQ(kl.code, 0) << kl.err;
  EXPECT_NE(kl.out.find("base: " + fixture.string() + " (kv f16, lm head F16)"), std::string::npos)
      << kl.out;
  EXPECT_NE(kl.out.find("lm head int8 (from F16))"), std::string::npos) << kl.out;
  // Without int8 activations there is nothing for it to multiply: a usage error, not ignored.
  const Result both = run_bitnet(
      {"kl", "-m", fixture.string(), "--int8-head", "--no-act-quant", "--random-tokens", "8"});
  EXPECT_EQ(both.code, 2) << both.err;
  EXPECT_NE(both.err.find("--int8-head"), std::string::npos) << both.err;
}

TEST(Run, ProfileWritesEveryOperationOfTheForwardPass) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  TempDir tmp;
  const fs::path out = tmp.path() / "profile.json";
  const Result r = run_bitnet({"run", "-m", fixture.string(), "-p", "The quick brown fox", "-n",
                               "8", "--temp", "0", "--profile", out.string(), "--profile-series"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(read_all(out));
  EXPECT_EQ(j["steps"], 8);  // the prompt, then 7 decode steps (the 8th token is not evaluated)
  for (const char* op : {"embed", "norm", "matmul_qkv", "matmul_attn_out", "matmul_gate_up",
                         "matmul_down", "rope_kv", "attention", "ffn_act", "residual", "lm_head",
                         "sampling", "tokenize", "detokenize"}) {
    ASSERT_TRUE(j["ops"].contains(op)) << op;
    EXPECT_GT(j["ops"][op]["calls"].get<int64_t>(), 0) << op;
    EXPECT_EQ(j["series"][op].size(), 8u) << op;
  }
  EXPECT_EQ(j["ops"]["sampling"]["calls"], 8);
  double share = 0;
  for (const auto& [name, op] : j["ops"].items()) share += op["share"].get<double>();
  EXPECT_NEAR(share, 1.0, 1e-4);

  expect_clear_failure({"run", "-m", fixture.string(), "-p", "hi", "--profile-series"},
                       "--profile");
  expect_clear_failure(
      {"run", "-m", fixture.string(), "-p", "hi", "--profile", (tmp.path() / "no/such").string()},
      "no/such");
}

TEST(Inspect, PlanPrintsFusionsOperationsAndTheArena) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  Result r = run_bitnet({"inspect", "--plan", fixture.string(), "-b", "8"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("execution plan: 8 rows per step"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fusions applied: qkv gate_up norm_quant act_norm_quant"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("activation arena:"), std::string::npos) << r.out;
  r = run_bitnet({"inspect", "--plan", fixture.string(), "--no-fuse"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("fusions applied: qkv gate_up (norm_quant and act_norm_quant switched off)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("act+ffn_sub_norm "), std::string::npos) << r.out;
  expect_clear_failure({"inspect", "--plan", fixture.string(), "-b", "0"}, "rows per step");
}

TEST(Tokenize, ReferencePromptIds) {
  const fs::path fixture = reference_dir() / "models" / "tiny-b158.i2_s.gguf";
  REQUIRE_FIXTURE(fixture);
  const Result r = run_bitnet(
      {"tokenize", "-m", fixture.string(), "-p", "The quick brown fox jumps over the lazy dog."});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "4096 791 4062 293 654 77 282 78 87 503 1538 82 927 279 1208 89 88 294 540 13\n");
}

}  // namespace
}  // namespace bitnet
