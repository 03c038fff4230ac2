// Hugging Face tokenizer.json files for tests, rebuilt from the vocab-only reference GGUFs in
// ../shared/reference/tokenizer the way Hugging Face lays them out, plus the reference vectors.
//   BPE: Llama-3's layout (Split with the Llama-3 regex + ByteLevel, CONTROL tokens as special
//        added_tokens, merges as "a b" strings or [a, b] pairs).
//   SPM: LLaMA-2's LlamaTokenizerFast layout (BPE with byte_fallback, <unk>/<s>/</s> in both
//        model.vocab and added_tokens). The merges are generated from the SentencePiece scores as
//        transformers' SentencePieceExtractor does: for every piece, each split into two pieces
//        of the vocabulary (at character boundaries) is a merge; merges are sorted by the score
//        of the merged piece, best first (stable), ties by the ids of the two parts.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "formats/gguf.h"

namespace bitnet::test {

namespace fs = std::filesystem;
using nlohmann::json;

inline fs::path reference_tokenizer_dir() {
  if (const char* d = std::getenv("BITNET_REFERENCE_DIR"); d && *d) {
    return fs::path(d) / "tokenizer";
  }
  return fs::path(BITNET_REFERENCE_DIR_DEFAULT) / "tokenizer";
}

inline std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_json(const fs::path& p, const json& j) {
  std::ofstream f(p, std::ios::binary);
  f << j.dump(1);
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

struct TokenizerVector {
  std::string text;
  std::vector<int32_t> ids;
};

// .inp: every string followed by "\n__ggml_vocab_test__\n"; .out: one line of " id id ..." each.
inline std::vector<TokenizerVector> read_tokenizer_vectors(const std::string& name) {
  const std::string inp = read_text(reference_tokenizer_dir() / (name + ".inp"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<TokenizerVector> vectors;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t end = inp.find(sep, pos);
    if (end == std::string::npos) throw std::runtime_error(name + ".inp: missing final separator");
    vectors.push_back({inp.substr(pos, end - pos), {}});
    pos = end + sep.size();
  }
  std::istringstream out(read_text(reference_tokenizer_dir() / (name + ".out")));
  std::string line;
  size_t i = 0;
  for (; std::getline(out, line); ++i) {
    if (i >= vectors.size()) throw std::runtime_error(name + ".out: more lines than strings");
    std::istringstream ls(line);
    for (int32_t id; ls >> id;) vectors[i].ids.push_back(id);
  }
  if (i != vectors.size()) throw std::runtime_error(name + ".out: fewer lines than strings");
  return vectors;
}

// llama.cpp's token types.
inline constexpr int32_t kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokByte = 6;

inline const std::string kLlama3SplitRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

inline json bpe_model(json vocab, json merges, bool byte_fallback, json unk) {
  return {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", unk},
          {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr},
          {"fuse_unk", byte_fallback},
          {"byte_fallback", byte_fallback},
          {"vocab", std::move(vocab)},
          {"merges", std::move(merges)}};
}

inline json added_token(int64_t id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

enum class MergeForm { Strings, Pairs };

// tokenizer.json + tokenizer_config.json of the 4112-token Llama-3 fixture vocabulary.
inline void write_llama3_tokenizer(const fs::path& dir, MergeForm form) {
  const auto ref =
      formats::GgufFile::open((reference_tokenizer_dir() / "llama3-bpe-4112.gguf").string());
  const auto& tokens = ref.get_array<std::string>("tokenizer.ggml.tokens");
  const auto& types = ref.get_array<int32_t>("tokenizer.ggml.token_type");
  const auto& merges = ref.get_array<std::string>("tokenizer.ggml.merges");
  json vocab = json::object(), added = json::array(), jmerges = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] == kTokControl) {
      added.push_back(added_token(static_cast<int64_t>(i), tokens[i]));
    } else {
      vocab[tokens[i]] = i;
    }
  }
  for (const std::string& m : merges) {
    const size_t sp = m.find(' ', 1);
    if (form == MergeForm::Strings) {
      jmerges.push_back(m);
    } else {
      jmerges.push_back(json::array({m.substr(0, sp), m.substr(sp + 1)}));
    }
  }
  json model = bpe_model(std::move(vocab), std::move(jmerges), false, nullptr);
  model["ignore_merges"] = true;
  const json tj = {{"version", "1.0"},
                   {"added_tokens", added},
                   {"normalizer", nullptr},
                   {"pre_tokenizer",
                    {{"type", "Sequence"},
                     {"pretokenizers",
                      {{{"type", "Split"},
                        {"pattern", {{"Regex", kLlama3SplitRegex}}},
                        {"behavior", "Isolated"},
                        {"invert", false}},
                       {{"type", "ByteLevel"},
                        {"add_prefix_space", false},
                        {"trim_offsets", true},
                        {"use_regex", false}}}}}},
                   {"post_processor",
                    {{"type", "Sequence"},
                     {"processors",
                      {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}},
                       {{"type", "TemplateProcessing"},
                        {"single",
                         {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}}}}},
                   {"decoder", {{"type", "ByteLevel"}}},
                   {"model", std::move(model)}};
  write_json(dir / "tokenizer.json", tj);
  write_json(dir / "tokenizer_config.json",
             {{"bos_token", "<|begin_of_text|>"},
              {"eos_token", {{"content", "<|end_of_text|>"}, {"__type", "AddedToken"}}},
              {"chat_template",
               "{{ bos_token }}{% for m in messages %}{{ m['content'] }}"
               "<|eot_id|>{% endfor %}"}});
}

// Code-point boundaries of a UTF-8 string (excluding 0 and size).
inline std::vector<size_t> char_boundaries(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 1; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  }
  return out;
}

// tokenizer.json + tokenizer_config.json of LLaMA-2's SentencePiece vocabulary. metaspace: the
// newer layout (Metaspace pre-tokenizer, prepend_scheme first, split false) instead of the
// legacy Prepend/Replace normalizer.
inline void write_llama2_tokenizer(const fs::path& dir, bool metaspace) {
  const auto ref =
      formats::GgufFile::open((reference_tokenizer_dir() / "llama2-spm.gguf").string());
  const auto& tokens = ref.get_array<std::string>("tokenizer.ggml.tokens");
  const auto& types = ref.get_array<int32_t>("tokenizer.ggml.token_type");
  const auto& scores = ref.get_array<float>("tokenizer.ggml.scores");
  std::unordered_map<std::string, int64_t> ids;
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    ids.emplace(tokens[i], static_cast<int64_t>(i));
    vocab[tokens[i]] = i;
    if (types[i] == kTokControl || types[i] == kTokUnknown) {
      added.push_back(added_token(static_cast<int64_t>(i), tokens[i]));
    }
  }
  struct Merge {
    int64_t left, right;
    float score;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::vector<Merge> local;
    for (size_t cut : char_boundaries(tokens[i])) {
      const auto l = ids.find(tokens[i].substr(0, cut));
      const auto r = ids.find(tokens[i].substr(cut));
      if (l != ids.end() && r != ids.end()) local.push_back({l->second, r->second, scores[i]});
    }
    std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) {
      return std::tie(a.left, a.right) < std::tie(b.left, b.right);
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(),
                   [](const Merge& a, const Merge& b) { return a.score > b.score; });
  json jmerges = json::array();
  for (const Merge& m : merges) {
    jmerges.push_back(tokens[static_cast<size_t>(m.left)] + " " +
                      tokens[static_cast<size_t>(m.right)]);
  }
  json tj = {{"version", "1.0"},
             {"added_tokens", added},
             {"model", bpe_model(std::move(vocab), std::move(jmerges), true, "<unk>")}};
  const std::string space = "\xE2\x96\x81";
  if (metaspace) {
    tj["normalizer"] = nullptr;
    tj["pre_tokenizer"] = {{"type", "Metaspace"},
                           {"replacement", space},
                           {"prepend_scheme", "first"},
                           {"split", false}};
  } else {
    tj["normalizer"] = {
        {"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", space}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}}}};
    tj["pre_tokenizer"] = nullptr;
  }
  write_json(dir / "tokenizer.json", tj);
  write_json(dir / "tokenizer_config.json", {{"bos_token", "<s>"},
                                             {"eos_token", "</s>"},
                                             {"unk_token", "<unk>"},
                                             {"add_bos_token", true},
                                             {"add_eos_token", false}});
}

}  // namespace bitnet::test
