// Tokenizers from GGUF metadata against ../shared/reference/tokenizer (llama.cpp's
// test-tokenizer-0 vectors, produced by Hugging Face tokenizers) and the golden prompts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;
using formats::GgufFile;
using formats::GgufValue;
using formats::GgufWriter;

std::string reference_dir() {
  if (const char* d = std::getenv("BITNET_REFERENCE_DIR"); d && *d) return d;
  return BITNET_REFERENCE_DIR_DEFAULT;
}

fs::path tokenizer_dir() {
  return fs::path(reference_dir()) / "tokenizer";
}

#define SKIP_WITHOUT_REFERENCE()                                             \
  if (!fs::exists(tokenizer_dir() / "llama3-bpe-4112.gguf"))                 \
  GTEST_SKIP() << "reference data not found at " << tokenizer_dir().string() \
               << " (set BITNET_REFERENCE_DIR)"

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Loaded once per vocabulary for the whole run (the 128256-token one is the slow one).
const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    const GgufFile file = GgufFile::open((tokenizer_dir() / (name + ".gguf")).string());
    slot = std::make_unique<Tokenizer>(Tokenizer::from_gguf(file));
  }
  return *slot;
}

struct Vector {
  std::string text;
  std::vector<TokenId> ids;
};

// .inp: every string followed by "\n__ggml_vocab_test__\n"; .out: one line of " id id ..." each.
std::vector<Vector> read_vectors(const std::string& name) {
  const std::string inp = read_file(tokenizer_dir() / (name + ".inp"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Vector> vectors;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t end = inp.find(sep, pos);
    if (end == std::string::npos) throw std::runtime_error(name + ".inp: missing final separator");
    vectors.push_back({inp.substr(pos, end - pos), {}});
    pos = end + sep.size();
  }
  std::istringstream out(read_file(tokenizer_dir() / (name + ".out")));
  std::string line;
  size_t i = 0;
  for (; std::getline(out, line); ++i) {
    if (i >= vectors.size()) throw std::runtime_error(name + ".out: more lines than strings");
    std::istringstream ls(line);
    for (TokenId id; ls >> id;) vectors[i].ids.push_back(id);
  }
  if (i != vectors.size()) throw std::runtime_error(name + ".out: fewer lines than strings");
  return vectors;
}

std::string ids_to_string(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

class TokenizerVectors : public testing::TestWithParam<std::pair<const char*, size_t>> {};

TEST_P(TokenizerVectors, MatchReferenceExactly) {
  SKIP_WITHOUT_REFERENCE();
  const auto [name, expected_count] = GetParam();
  const Tokenizer& tok = tokenizer(name);
  const std::vector<Vector> vectors = read_vectors(name);
  ASSERT_EQ(vectors.size(), expected_count);
  for (size_t i = 0; i < vectors.size(); ++i) {
    EXPECT_EQ(ids_to_string(tok.encode(vectors[i].text, false, false)),
              ids_to_string(vectors[i].ids))
        << name << " vector " << i << ": '" << vectors[i].text << "'";
  }
}

// Byte-level BPE is lossless. SentencePiece adds one leading space when encoding and llama.cpp's
// llama_detokenize removes one from the first token, so the strings come back unchanged too.
TEST_P(TokenizerVectors, DecodeOfEncodeIsIdentity) {
  SKIP_WITHOUT_REFERENCE();
  const char* name = GetParam().first;
  const Tokenizer& tok = tokenizer(name);
  for (const Vector& v : read_vectors(name)) {
    EXPECT_EQ(tok.decode(tok.encode(v.text, false, false)), v.text) << name;
  }
}

// Feeding the ids one by one gives the decoded text, in chunks that are each valid UTF-8.
TEST_P(TokenizerVectors, StreamingDecodeEmitsOnlyCompleteUtf8) {
  SKIP_WITHOUT_REFERENCE();
  const char* name = GetParam().first;
  const Tokenizer& tok = tokenizer(name);
  for (const Vector& v : read_vectors(name)) {
    if (!valid_utf8(v.text)) continue;
    StreamingDetokenizer stream(tok);
    std::string all;
    for (TokenId id : v.ids) {
      const std::string chunk = stream.push(id);
      EXPECT_TRUE(valid_utf8(chunk)) << name << ": '" << v.text << "'";
      all += chunk;
    }
    const std::string rest = stream.flush();
    EXPECT_TRUE(rest.empty()) << name << ": '" << v.text << "'";
    EXPECT_EQ(all + rest, v.text) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, TokenizerVectors,
                         testing::Values(std::pair{"llama3-bpe", size_t{46}},
                                         std::pair{"llama2-spm", size_t{46}},
                                         std::pair{"llama3-bpe-4112", size_t{48}}),
                         [](const auto& param_info) {
                           std::string n = param_info.param.first;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(Tokenizer, GoldenPromptsOfTheFixtureVocab) {
  SKIP_WITHOUT_REFERENCE();
  const Tokenizer& tok = tokenizer("llama3-bpe-4112");
  const std::vector<TokenId> p1 = {4096, 791, 4062, 293, 654,  77, 282, 78,  87,  503,
                                   1538, 82,  927,  279, 1208, 89, 88,  294, 540, 13};
  EXPECT_EQ(tok.encode("The quick brown fox jumps over the lazy dog.", true, false), p1);
  for (const char* prompt : {"p1", "p2"}) {
    const fs::path json_path = fs::path(reference_dir()) / "golden" / "tiny-b158" /
                               (std::string("exact.") + prompt + ".json");
    const auto golden = nlohmann::json::parse(read_file(json_path));
    const auto expected = golden.at("prompt_tokens").get<std::vector<TokenId>>();
    const auto text = golden.at("prompt").get<std::string>();
    EXPECT_EQ(tok.encode(text, true, false), expected) << prompt;
    EXPECT_EQ(tok.decode(expected), text) << prompt;  // BOS renders as nothing
  }
}

TEST(Tokenizer, FixtureVocabMetadata) {
  SKIP_WITHOUT_REFERENCE();
  const Tokenizer& tok = tokenizer("llama3-bpe-4112");
  EXPECT_EQ(tok.kind(), TokenizerKind::BytePairGpt2);
  EXPECT_EQ(tok.pre(), "llama-bpe");
  EXPECT_EQ(tok.n_vocab(), 4112);
  EXPECT_EQ(tok.bos(), 4096);
  EXPECT_EQ(tok.eos(), 4097);
  EXPECT_EQ(tok.eot(), 4105);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.add_eos());
  EXPECT_EQ(tok.token_text(4105), "<|eot_id|>");
  EXPECT_EQ(tok.token_text(220), "\xC4\xA0");  // "Ġ", the byte-level space
  EXPECT_EQ(tok.token_to_piece(220), " ");
  EXPECT_EQ(tok.find_token("<|start_header_id|>"), 4102);
  EXPECT_EQ(tok.find_token("no such token"), std::nullopt);
  EXPECT_THROW((void)tok.token_text(4112), std::out_of_range);
  EXPECT_THROW((void)tok.token_to_piece(-1), std::out_of_range);
}

TEST(Tokenizer, SpecialTokensParsedOnlyWhenAsked) {
  SKIP_WITHOUT_REFERENCE();
  const Tokenizer& tok = tokenizer("llama3-bpe-4112");
  EXPECT_EQ(tok.encode("<|eot_id|>", false, true), std::vector<TokenId>{4105});
  const std::vector<TokenId> plain = tok.encode("<|eot_id|>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 4105), 0);
  EXPECT_EQ(tok.decode(plain), "<|eot_id|>");

  const std::string chat = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
  const std::vector<TokenId> ids = tok.encode(chat, true, true);
  ASSERT_GE(ids.size(), 5u);
  EXPECT_EQ(ids[0], 4096);
  EXPECT_EQ(ids[1], 4102);
  EXPECT_EQ(ids.back(), 4105);
  // The text between special tokens is tokenized on its own.
  std::vector<TokenId> expected = {4096, 4102};
  for (TokenId id : tok.encode("user", false, false)) expected.push_back(id);
  expected.push_back(4103);
  for (TokenId id : tok.encode("\n\nHi", false, false)) expected.push_back(id);
  expected.push_back(4105);
  EXPECT_EQ(ids, expected);
  // Control tokens render as nothing unless asked.
  EXPECT_EQ(tok.decode(ids), "user\n\nHi");
  EXPECT_EQ(tok.decode(ids, true), "<|begin_of_text|>" + chat);
}

TEST(Tokenizer, EndOfGeneration) {
  SKIP_WITHOUT_REFERENCE();
  const Tokenizer& small = tokenizer("llama3-bpe-4112");
  EXPECT_TRUE(small.is_eog(4097));   // <|end_of_text|>, eos
  EXPECT_TRUE(small.is_eog(4105));   // <|eot_id|>
  EXPECT_FALSE(small.is_eog(4096));  // <|begin_of_text|>
  EXPECT_FALSE(small.is_eog(13));
  EXPECT_FALSE(small.is_eog(-1));

  // No eot key in the full vocabulary: found by its text, as llama.cpp does.
  const Tokenizer& full = tokenizer("llama3-bpe");
  EXPECT_EQ(full.n_vocab(), 128256);
  EXPECT_EQ(full.bos(), 128000);
  EXPECT_EQ(full.eot(), 128009);
  EXPECT_TRUE(full.is_eog(128001));
  EXPECT_TRUE(full.is_eog(128009));
  EXPECT_EQ(full.eom(), kNoToken);  // Llama-3.0 has no <|eom_id|> (3.1 put it at 128008)
  EXPECT_FALSE(full.is_eog(128008));
  EXPECT_FALSE(full.is_eog(128000));
  // No add_bos_token key: BOS is added for pre-tokenizer llama-bpe.
  EXPECT_TRUE(full.add_bos());
  EXPECT_EQ(full.encode("Hello", true, false), (std::vector<TokenId>{128000, 9906}));

  const Tokenizer& spm = tokenizer("llama2-spm");
  EXPECT_EQ(spm.kind(), TokenizerKind::SentencePiece);
  EXPECT_TRUE(spm.is_eog(2));
  EXPECT_FALSE(spm.is_eog(1));
  EXPECT_EQ(spm.unk(), 0);
  EXPECT_EQ(spm.encode("Hello", true, false), (std::vector<TokenId>{1, 15043}));
}

// A character split over byte tokens is held back until complete, then flushed whole.
TEST(Tokenizer, StreamingHoldsBackPartialCharacters) {
  SKIP_WITHOUT_REFERENCE();
  for (const char* name : {"llama3-bpe-4112", "llama2-spm"}) {
    const Tokenizer& tok = tokenizer(name);
    const std::string text = "Llama \xF0\x9F\xA6\x99 \xE9\xA9\xBC\xE9\xB9\xBF \xF0\x9F\x98\x80!";
    const std::vector<TokenId> ids = tok.encode(text, false, false);
    size_t byte_pieces = 0;
    StreamingDetokenizer stream(tok);
    std::string all;
    for (TokenId id : ids) {
      if (tok.token_to_piece(id).size() == 1 && (tok.token_to_piece(id)[0] & 0x80)) ++byte_pieces;
      const std::string chunk = stream.push(id);
      EXPECT_TRUE(valid_utf8(chunk)) << name;
      all += chunk;
    }
    EXPECT_GE(byte_pieces, 4u) << name << ": the emoji should need byte tokens";
    all += stream.flush();
    EXPECT_EQ(all, text) << name;
  }

  // A stream cut off inside a character: the partial bytes come out only at flush().
  const Tokenizer& tok = tokenizer("llama3-bpe-4112");
  const std::vector<TokenId> ids = tok.encode("\xF0\x9F\xA6\x99", false, false);
  ASSERT_EQ(ids.size(), 4u);  // one token per byte in the fixture vocab
  StreamingDetokenizer stream(tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.flush(), "\xF0\x9F");
  // Invalid bytes are never held: a lone continuation byte passes straight through.
  EXPECT_EQ(stream.push(ids[3]), "\x99");
}

// SentencePiece keeps the space prefix on a continuation stream (text_start = false).
TEST(Tokenizer, SentencePieceSpacePrefix) {
  SKIP_WITHOUT_REFERENCE();
  const Tokenizer& spm = tokenizer("llama2-spm");
  EXPECT_TRUE(spm.add_space_prefix());
  const std::vector<TokenId> ids = spm.encode("Hello world", false, false);
  EXPECT_EQ(spm.decode(ids), "Hello world");
  StreamingDetokenizer continuing(spm, false, false);
  std::string all;
  for (TokenId id : ids) all += continuing.push(id);
  EXPECT_EQ(all + continuing.flush(), " Hello world");
}

// ---- Errors: small vocabularies written in memory --------------------------------------------

std::vector<uint8_t> vocab_bytes(const std::map<std::string, GgufValue>& kvs) {
  GgufWriter w;
  for (const auto& [k, v] : kvs) w.set(k, v);
  return w.to_bytes();
}

std::map<std::string, GgufValue> tiny_bpe() {
  // "a" and "b" are their own byte-level characters.
  const std::vector<std::string> tokens = {"a", "b", "ab", "<|end|>"};
  return {
      {"tokenizer.ggml.model", GgufValue("gpt2")},
      {"tokenizer.ggml.pre", GgufValue("llama-bpe")},
      {"tokenizer.ggml.tokens", GgufValue(tokens)},
      {"tokenizer.ggml.token_type", GgufValue(std::vector<int32_t>{1, 1, 1, 3})},
      {"tokenizer.ggml.merges", GgufValue(std::vector<std::string>{"a b"})},
      {"tokenizer.ggml.eos_token_id", GgufValue(uint32_t{3})},
  };
}

void expect_invalid(const std::map<std::string, GgufValue>& kvs, const std::string& key) {
  const std::vector<uint8_t> bytes = vocab_bytes(kvs);
  const GgufFile file = GgufFile::from_memory(bytes, "tiny.gguf");
  try {
    (void)Tokenizer::from_gguf(file);
    ADD_FAILURE() << "no exception; expected one naming " << key;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tiny.gguf"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, TinyVocabularyEncodes) {
  const std::vector<uint8_t> bytes = vocab_bytes(tiny_bpe());
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::from_memory(bytes, "tiny.gguf"));
  EXPECT_EQ(tok.encode("ab", false, false), std::vector<TokenId>{2});
  EXPECT_EQ(tok.encode("aab", false, false), (std::vector<TokenId>{0, 2}));
  EXPECT_EQ(tok.encode("ab<|end|>", false, true), (std::vector<TokenId>{2, 3}));
  EXPECT_TRUE(tok.is_eog(3));
  EXPECT_EQ(tok.eot(), 3);  // "<|end|>" by text
}

// The pre-tokenizer follows tokenizer.ggml.pre: Llama-3 cuts digit runs into groups of at most
// three, GPT-2 keeps them whole.
TEST(Tokenizer, PreTokenizerFollowsMetadata) {
  auto kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.tokens", GgufValue(std::vector<std::string>{
                                                    "1", "2", "3", "4", "12", "123", "1234"}));
  kvs.insert_or_assign("tokenizer.ggml.token_type", GgufValue(std::vector<int32_t>(7, 1)));
  kvs.insert_or_assign("tokenizer.ggml.merges",
                       GgufValue(std::vector<std::string>{"1 2", "12 3", "123 4"}));
  kvs.erase("tokenizer.ggml.eos_token_id");
  for (const char* pre : {"llama-bpe", "default"}) {
    kvs.insert_or_assign("tokenizer.ggml.pre", GgufValue(pre));
    const std::vector<uint8_t> bytes = vocab_bytes(kvs);
    const Tokenizer tok = Tokenizer::from_gguf(GgufFile::from_memory(bytes, "tiny.gguf"));
    const std::vector<TokenId> expected =
        std::string(pre) == "default" ? std::vector<TokenId>{6} : std::vector<TokenId>{5, 3};
    EXPECT_EQ(tok.encode("1234", false, false), expected) << pre;
    EXPECT_EQ(tok.encode("1234", true, false), expected) << pre << ": there is no BOS to add";
  }
}

// Invalid UTF-8 is tokenized byte by byte and survives the round trip.
TEST(Tokenizer, InvalidUtf8RoundTrips) {
  SKIP_WITHOUT_REFERENCE();
  const std::string text = "ok \xFF\xFE bad \xE2\x82 end\xC3";
  for (const char* name : {"llama3-bpe-4112", "llama3-bpe", "llama2-spm"}) {
    const Tokenizer& tok = tokenizer(name);
    EXPECT_EQ(tok.decode(tok.encode(text, false, false)), text) << name;
  }
}

TEST(Tokenizer, BadMetadataThrowsNamingTheKey) {
  auto kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.model", GgufValue("wordpiece"));
  expect_invalid(kvs, "tokenizer.ggml.model");

  kvs = tiny_bpe();
  kvs.erase("tokenizer.ggml.model");
  expect_invalid(kvs, "tokenizer.ggml.model");

  kvs = tiny_bpe();
  kvs.erase("tokenizer.ggml.tokens");
  expect_invalid(kvs, "tokenizer.ggml.tokens");

  kvs = tiny_bpe();
  kvs.erase("tokenizer.ggml.merges");
  expect_invalid(kvs, "tokenizer.ggml.merges");

  kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.merges", GgufValue(std::vector<std::string>{"a c"}));
  expect_invalid(kvs, "tokenizer.ggml.merges");  // "c" is not a token

  kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.merges", GgufValue(std::vector<std::string>{"b a"}));
  expect_invalid(kvs, "tokenizer.ggml.merges");  // "ba" is not a token

  kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.merges", GgufValue(std::vector<std::string>{"ab"}));
  expect_invalid(kvs, "tokenizer.ggml.merges");  // no separator

  kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.pre", GgufValue("unknown-pre"));
  expect_invalid(kvs, "tokenizer.ggml.pre");

  kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.token_type", GgufValue(std::vector<int32_t>{1, 1}));
  expect_invalid(kvs, "tokenizer.ggml.token_type");

  kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.eos_token_id", GgufValue(uint32_t{4}));
  expect_invalid(kvs, "tokenizer.ggml.eos_token_id");

  kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.bos_token_id", GgufValue("1"));
  expect_invalid(kvs, "tokenizer.ggml.bos_token_id");

  kvs = tiny_bpe();
  kvs.insert_or_assign("tokenizer.ggml.model", GgufValue("llama"));
  kvs.insert_or_assign("tokenizer.ggml.scores", GgufValue(std::vector<float>{0.0f}));
  expect_invalid(kvs, "tokenizer.ggml.scores");
}

}  // namespace
}  // namespace bitnet::model
