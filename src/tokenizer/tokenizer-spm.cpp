// SentencePiece-style BPE (tokenizer.ggml.model "llama"): pieces merged by best score, byte
// fallback. Follows llama.cpp's llm_tokenizer_spm_session.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "tokenizer/tokenizer-internal.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::model {

using namespace tokenizer_detail;

namespace {
constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// The character at pos; a byte that does not start a complete sequence is a character of its own.
// (llama.cpp trusts the lead byte, so invalid input there can swallow the next characters'
// bytes, e.g. an escaped space; for valid UTF-8 both agree.)
size_t char_len(std::string_view text, size_t pos) {
  const auto lead = static_cast<uint8_t>(text[pos]);
  const size_t n = utf8_len(lead);
  if (n == 1 || lead >= 0xF8 || pos + n > text.size()) return 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<uint8_t>(text[pos + k]) & 0xC0) != 0x80) return 1;
  }
  return n;
}
}  // namespace

void Tokenizer::load_spm(const formats::GgufFile& file) {
  static constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
  if (const auto* scores = find_array<float>(file, kScoresKey)) {
    if (scores->size() != tokens_.size()) {
      throw_key(file, kScoresKey,
                "has " + std::to_string(scores->size()) + " entries, expected " +
                    std::to_string(tokens_.size()) + " (one per token)");
    }
    scores_ = *scores;
  } else {
    scores_.assign(tokens_.size(), 0.0f);  // llama.cpp's default
  }
  static constexpr std::string_view kPrefixKey = "tokenizer.ggml.add_space_prefix";
  const formats::GgufValue* prefix = file.find(kPrefixKey);
  if (prefix && !prefix->is<bool>()) {
    throw_key(file, kPrefixKey, "expected BOOL, found " + prefix->type_description());
  }
  add_space_prefix_ = prefix ? prefix->as<bool>() : true;
  add_bos_ = true;  // llama.cpp's default for SentencePiece; tokenizer.ggml.add_bos_token overrides
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_tokens_[static_cast<size_t>(b)] = lookup(name);
  }
}

void Tokenizer::encode_spm(std::string_view raw, bool space_prefix,
                           std::vector<TokenId>& out) const {
  std::string text;
  text.reserve(raw.size() + 8);
  if (space_prefix) text += kSpaceEscape;
  for (char c : raw) {
    if (c == ' ') {
      text += kSpaceEscape;
    } else {
      text += c;
    }
  }

  struct Symbol {
    size_t start, n;  // bytes of `text`; n == 0 once merged into its left neighbour
    int prev, next;
  };
  struct Bigram {
    float score;
    int left, right;
    size_t size;
    // Highest score first, then leftmost (llama.cpp's llm_bigram_spm::comparator).
    bool operator<(const Bigram& o) const {
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = char_len(text, pos);
    const int idx = static_cast<int>(symbols.size());
    symbols.push_back({pos, n, idx - 1, pos + n == text.size() ? -1 : idx + 1});
    pos += n;
  }
  std::vector<Bigram> heap;
  auto add_bigram = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    const TokenId id = lookup(std::string_view(text).substr(l.start, l.n + r.n));
    if (id == kNoToken) return;
    heap.push_back({scores_[static_cast<size_t>(id)], left, right, l.n + r.n});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_bigram(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Bigram b = heap.back();
    heap.pop_back();
    Symbol& left = symbols[static_cast<size_t>(b.left)];
    Symbol& right = symbols[static_cast<size_t>(b.right)];
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;  // stale
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = b.left;
    add_bigram(left.prev, b.left);
    add_bigram(b.left, left.next);
  }
  // Every merged symbol is a token (only pairs that are tokens are queued); a single character
  // that is not one falls back to its bytes' <0xXX> tokens, or to <unk> where one is missing.
  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    const std::string_view piece = std::string_view(text).substr(s.start, s.n);
    if (const TokenId id = lookup(piece); id != kNoToken) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      const TokenId byte = byte_tokens_[static_cast<uint8_t>(c)];
      if (byte != kNoToken) {
        out.push_back(byte);
      } else if (unk_ != kNoToken) {
        out.push_back(unk_);
      }
    }
  }
}

}  // namespace bitnet::model
