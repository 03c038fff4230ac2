// tokenizer.json -> GGUF tokenizer keys (model/hf-tokenizer.h). The tokenizer.json files are
// rebuilt from the reference vocabularies (fixture-hf-tokenizer.h); the converted keys must give
// back the reference vocabulary, and our Tokenizer on them must encode every reference vector
// exactly as Hugging Face tokenizers did (add_special false, parse_special false).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "convert/hf-tokenizer.h"
#include "fixture-hf-tokenizer.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;
using test::json;
using ::testing::HasSubstr;

#define SKIP_WITHOUT_REFERENCE()                                                             \
  if (!fs::exists(test::reference_tokenizer_dir() / "llama3-bpe-4112.gguf"))                 \
  GTEST_SKIP() << "reference data not found at " << test::reference_tokenizer_dir().string() \
               << " (set BITNET_REFERENCE_DIR)"

class HfTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           (std::string("bitnet-test-hf-tok-") +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Converts dir_ and reads the keys back.
  formats::GgufFile convert(int64_t n_vocab, HfTokenizerSummary* summary = nullptr) {
    formats::GgufWriter w;
    const auto s = add_hf_tokenizer(dir_.string(), n_vocab, w);
    EXPECT_TRUE(s.has_value());
    if (summary && s) *summary = *s;
    bytes_ = w.to_bytes();
    return formats::GgufFile::from_memory(bytes_, "converted.gguf");
  }

  void expect_error(int64_t n_vocab, const std::vector<std::string>& fragments) {
    formats::GgufWriter w;
    try {
      (void)add_hf_tokenizer(dir_.string(), n_vocab, w);
      ADD_FAILURE() << "no error";
    } catch (const std::invalid_argument& e) {
      for (const std::string& f : fragments) EXPECT_THAT(e.what(), HasSubstr(f));
    }
  }

  json read_tokenizer_json() const { return json::parse(test::read_text(dir_ / "tokenizer.json")); }

  fs::path dir_;
  std::vector<uint8_t> bytes_;
};

void expect_vectors(const Tokenizer& tok, const std::string& name, size_t count) {
  const auto vectors = test::read_tokenizer_vectors(name);
  ASSERT_EQ(vectors.size(), count);
  for (size_t i = 0; i < vectors.size(); ++i) {
    EXPECT_EQ(tok.encode(vectors[i].text, false, false), vectors[i].ids)
        << name << " vector " << i << ": '" << vectors[i].text << "'";
  }
}

TEST_F(HfTokenizerTest, Llama3BpeMatchesTheReference) {
  SKIP_WITHOUT_REFERENCE();
  const auto ref =
      formats::GgufFile::open((test::reference_tokenizer_dir() / "llama3-bpe-4112.gguf").string());
  for (auto form : {test::MergeForm::Strings, test::MergeForm::Pairs}) {
    SCOPED_TRACE(form == test::MergeForm::Strings ? "\"a b\" merges" : "[a, b] merges");
    test::write_llama3_tokenizer(dir_, form);
    HfTokenizerSummary s;
    const formats::GgufFile f = convert(4112, &s);
    EXPECT_EQ(s.model, "gpt2");
    EXPECT_EQ(s.pre, "llama-bpe");
    EXPECT_EQ(s.n_tokens, 4112u);
    EXPECT_EQ(s.n_padding, 0u);
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "llama-bpe");
    for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"}) {
      EXPECT_EQ(f.get_array<std::string>(key), ref.get_array<std::string>(key)) << key;
    }
    EXPECT_EQ(f.get_array<int32_t>("tokenizer.ggml.token_type"),
              ref.get_array<int32_t>("tokenizer.ggml.token_type"));
    for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                            "tokenizer.ggml.eot_token_id"}) {
      EXPECT_EQ(f.get_u32(key), ref.get_u32(key)) << key;
    }
    EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));   // from the TemplateProcessing
    EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token"));  // the template ends with text
    EXPECT_THAT(f.get_string("tokenizer.chat_template"), HasSubstr("<|eot_id|>"));

    const Tokenizer tok = Tokenizer::from_gguf(f);
    EXPECT_EQ(tok.bos(), 4096);
    EXPECT_EQ(tok.eos(), 4097);
    EXPECT_EQ(tok.eot(), 4105);
    EXPECT_TRUE(tok.is_control(4105));
    expect_vectors(tok, "llama3-bpe-4112", 48);
    EXPECT_EQ(tok.encode("Hello", true, false).front(), 4096);
  }
}

TEST_F(HfTokenizerTest, Llama2SentencePieceMatchesTheReference) {
  SKIP_WITHOUT_REFERENCE();
  const auto ref =
      formats::GgufFile::open((test::reference_tokenizer_dir() / "llama2-spm.gguf").string());
  for (bool metaspace : {false, true}) {
    SCOPED_TRACE(metaspace ? "Metaspace pre-tokenizer" : "Prepend/Replace normalizer");
    test::write_llama2_tokenizer(dir_, metaspace);
    HfTokenizerSummary s;
    const formats::GgufFile f = convert(32000, &s);
    EXPECT_EQ(s.model, "llama");
    EXPECT_EQ(s.n_tokens, 32000u);
    EXPECT_GT(s.n_merges, 60000u);  // LLaMA-2 has 61249
    EXPECT_EQ(f.get_array<std::string>("tokenizer.ggml.tokens"),
              ref.get_array<std::string>("tokenizer.ggml.tokens"));
    EXPECT_EQ(f.get_array<int32_t>("tokenizer.ggml.token_type"),
              ref.get_array<int32_t>("tokenizer.ggml.token_type"));
    EXPECT_FALSE(f.find("tokenizer.ggml.merges"));
    EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_space_prefix"));
    EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
    EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token"));
    EXPECT_EQ(f.get_u32("tokenizer.ggml.bos_token_id"), 1u);
    EXPECT_EQ(f.get_u32("tokenizer.ggml.eos_token_id"), 2u);
    EXPECT_EQ(f.get_u32("tokenizer.ggml.unknown_token_id"), 0u);
    // Derived scores: the first merge "▁ t" (rank 0) makes "▁t" (id 260), score -0.
    const auto& scores = f.get_array<float>("tokenizer.ggml.scores");
    EXPECT_EQ(scores[260], 0.0f);
    EXPECT_LT(scores[261], 0.0f);

    const Tokenizer tok = Tokenizer::from_gguf(f);
    EXPECT_EQ(tok.kind(), TokenizerKind::SentencePiece);
    EXPECT_EQ(tok.bos(), 1);
    EXPECT_EQ(tok.unk(), 0);
    expect_vectors(tok, "llama2-spm", 46);
    EXPECT_EQ(tok.encode("Hello", true, false), (std::vector<TokenId>{1, 15043}));
  }
}

TEST_F(HfTokenizerTest, ModelVocabularyLargerThanTheTokenizerIsPadded) {
  SKIP_WITHOUT_REFERENCE();
  test::write_llama3_tokenizer(dir_, test::MergeForm::Strings);
  HfTokenizerSummary s;
  const formats::GgufFile f = convert(4115, &s);
  EXPECT_EQ(s.n_tokens, 4115u);
  EXPECT_EQ(s.n_padding, 3u);
  const auto& tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
  const auto& types = f.get_array<int32_t>("tokenizer.ggml.token_type");
  ASSERT_EQ(tokens.size(), 4115u);
  EXPECT_EQ(tokens[4112], "[PAD4112]");
  EXPECT_EQ(types[4114], 5);  // UNUSED
  const Tokenizer tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok.n_vocab(), 4115);
  EXPECT_EQ(tok.token_to_piece(4113, true), "");

  expect_error(4000, {"tokenizer.json", "model.vocab", "4112 tokens", "vocab_size 4000"});
}

TEST_F(HfTokenizerTest, NoTokenizerJsonWritesNothing) {
  formats::GgufWriter w;
  EXPECT_FALSE(add_hf_tokenizer(dir_.string(), 10, w).has_value());
  EXPECT_TRUE(w.kvs().empty());
}

// A tiny byte-level tokenizer.json to break in the error tests.
json tiny_bpe() {
  json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}};
  json tj = {{"added_tokens", {test::added_token(3, "<s>")}},
             {"normalizer", nullptr},
             {"pre_tokenizer",
              {{"type", "Sequence"},
               {"pretokenizers",
                {{{"type", "Split"},
                  {"pattern", {{"Regex", test::kLlama3SplitRegex}}},
                  {"behavior", "Isolated"},
                  {"invert", false}},
                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
             {"model", test::bpe_model(vocab, json::array({"a b"}), false, nullptr)}};
  return tj;
}

TEST_F(HfTokenizerTest, TinyByteLevelTokenizer) {
  test::write_json(dir_ / "tokenizer.json", tiny_bpe());
  // No tokenizer_config.json: the ids come from config.json.
  test::write_json(dir_ / "config.json", {{"bos_token_id", 3}, {"eos_token_id", {3, 2}}});
  const formats::GgufFile f = convert(4);
  EXPECT_EQ(f.get_array<std::string>("tokenizer.ggml.merges"), std::vector<std::string>{"a b"});
  EXPECT_EQ(f.get_array<int32_t>("tokenizer.ggml.token_type"), (std::vector<int32_t>{1, 1, 1, 3}));
  EXPECT_EQ(f.get_u32("tokenizer.ggml.bos_token_id"), 3u);
  EXPECT_EQ(f.get_u32("tokenizer.ggml.eos_token_id"), 3u);
  EXPECT_FALSE(f.find("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(f.find("tokenizer.chat_template"));
  const Tokenizer tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok.encode("abab", false, false), (std::vector<TokenId>{2, 2}));

  // A plain ByteLevel pre-tokenizer (GPT-2's regex) is "default".
  json tj = tiny_bpe();
  tj["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  test::write_json(dir_ / "tokenizer.json", tj);
  EXPECT_EQ(convert(4).get_string("tokenizer.ggml.pre"), "default");
}

TEST_F(HfTokenizerTest, UnsupportedOrInconsistentFilesAreNamed) {
  auto with = [&](const std::function<void(json&)>& edit) {
    json tj = tiny_bpe();
    edit(tj);
    test::write_json(dir_ / "tokenizer.json", tj);
  };
  with([](json& tj) { tj["model"]["type"] = "Unigram"; });
  expect_error(4, {"tokenizer.json", "model.type", "Unigram"});
  with([](json& tj) { tj["model"]["type"] = "WordPiece"; });
  expect_error(4, {"model.type", "WordPiece"});
  with([](json& tj) { tj["added_tokens"][0]["id"] = 5; });
  expect_error(6, {"tokenizer.json", "no token has id 3"});
  with([](json& tj) { tj["added_tokens"][0]["id"] = 1; });
  expect_error(4, {"added_tokens[0]", "id 1 is '<s>' here but 'b'"});
  with([](json& tj) {
    tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = R"(\p{N}| ?\p{L}+)";
  });
  expect_error(4, {"pre_tokenizer.pretokenizers[0].pattern.Regex", "unsupported", "\\p{N}"});
  with([](json& tj) { tj["pre_tokenizer"]["pretokenizers"][0]["type"] = "Digits"; });
  expect_error(4, {"pre_tokenizer.pretokenizers[0]", "Digits"});
  with([](json& tj) { tj["pre_tokenizer"] = nullptr; });
  expect_error(4, {"pre_tokenizer", "neither ByteLevel"});
  with([](json& tj) { tj["normalizer"] = {{"type", "NFKC"}}; });
  expect_error(4, {"normalizer", "NFKC"});
  with([](json& tj) { tj["model"]["merges"] = json::array({"a b", "b ab"}); });
  expect_error(4, {"model.merges[1]", "'bab' is not a token"});
  with([](json& tj) { tj["model"]["merges"] = json::array({json::array({"a", 7})}); });
  expect_error(4, {"model.merges[0]", "expected"});
  with([](json& tj) { tj["model"]["merges"] = json::array({"a  b"}); });
  expect_error(4, {"model.merges[0]", "one space"});
  with([](json&) {});
  test::write_json(dir_ / "tokenizer_config.json", {{"bos_token", "<|begin_of_text|>"}});
  expect_error(4, {"tokenizer_config.json", "bos_token", "'<|begin_of_text|>' is not a token"});
  fs::remove(dir_ / "tokenizer_config.json");
  std::ofstream(dir_ / "tokenizer.json") << "{ nope";
  expect_error(4, {"tokenizer.json", "not valid JSON"});
}

}  // namespace
}  // namespace bitnet::model
