// Byte-level BPE (tokenizer.ggml.model "gpt2"): the pre-tokenizer regexes, GPT-2's byte-to-unicode
// table, merges by rank. Follows llama.cpp's llm_tokenizer_bpe_session.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer-internal.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::model {

using namespace tokenizer_detail;

namespace {

// The regexes are Hugging Face's tokenizer.json patterns in llama.cpp's spelling
// (llama-vocab.cpp): the contractions use explicit [sS] classes instead of (?i:...), so that
// caseless Unicode folding (e.g. U+017F LATIN SMALL LETTER LONG S ~ s) cannot widen them.
constexpr const char* kLlama3Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string utf8_encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {  // the table never goes past U+0143
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Printable Latin-1 bytes stand for themselves; the other 68 bytes get U+0100.. in byte order.
struct ByteTable {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 0x144> to_byte;  // code point -> byte, -1 where none

  ByteTable() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? b : next++;
      to_unicode[b] = utf8_encode(cp);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

namespace tokenizer_detail {

const std::string& byte_to_unicode(uint8_t b) {
  return byte_table().to_unicode[b];
}

std::string byte_level_decode(std::string_view text) {
  const ByteTable& table = byte_table();
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c0 = static_cast<uint8_t>(text[i]);
    const size_t n = std::min(utf8_len(c0), text.size() - i);
    uint32_t cp = 0x110000;  // no table entry
    if (n == 1 && c0 < 0x80) {
      cp = c0;
    } else if (n == 2) {
      cp = (uint32_t{c0} & 0x1F) << 6 | (static_cast<uint8_t>(text[i + 1]) & 0x3Fu);
    }
    if (cp < table.to_byte.size() && table.to_byte[cp] >= 0) {
      out += static_cast<char>(table.to_byte[cp]);
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
}

}  // namespace tokenizer_detail

PreTokenizer::PreTokenizer(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  // MATCH_INVALID_UTF: text need not be valid UTF-8; invalid bytes are simply never matched.
  code_ =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_offset, nullptr);
  if (!code_) {
    throw std::logic_error("pre-tokenizer regex does not compile at offset " +
                           std::to_string(err_offset) + ": " + pcre2_message(err));
  }
  // Without JIT support (some platforms) pcre2_match falls back to the interpreter.
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
}

PreTokenizer::~PreTokenizer() {
  pcre2_code_free(code_);
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  struct MatchData {
    pcre2_match_data* p;
    ~MatchData() { pcre2_match_data_free(p); }
  } md{pcre2_match_data_create_from_pattern(code_, nullptr)};
  if (!md.p) throw std::bad_alloc();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(code_, subject, text.size(), pos, 0, md.p, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      out.push_back(text.substr(pos));
      break;
    }
    if (rc < 0) throw std::runtime_error("pre-tokenizer regex: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.p);
    const size_t start = ov[0];
    size_t end = ov[1];
    if (start > pos) out.push_back(text.substr(pos, start - pos));
    if (end == start) {  // no alternative matches empty; kept safe against an endless loop
      end = start + std::min(utf8_len(static_cast<uint8_t>(text[start])), text.size() - start);
    }
    out.push_back(text.substr(start, end - start));
    pos = end;
  }
}

void Tokenizer::load_bpe(const formats::GgufFile& file) {
  static constexpr std::string_view kPreKey = "tokenizer.ggml.pre";
  if (pre_ == "llama-bpe" || pre_ == "llama3" || pre_ == "llama-v3" || pre_ == "falcon3") {
    pretok_ = std::make_unique<PreTokenizer>(kLlama3Regex);
    ignore_merges_ = true;
    add_bos_ = true;  // llama.cpp's default for these; tokenizer.ggml.add_bos_token overrides
  } else if (pre_.empty() || pre_ == "default" || pre_ == "gpt2" || pre_ == "gpt-2") {
    pretok_ = std::make_unique<PreTokenizer>(kGpt2Regex);
  } else {
    throw_key(file, kPreKey,
              "unsupported pre-tokenizer '" + pre_ +
                  "' (supported: llama-bpe, llama3, llama-v3, falcon3, default, gpt2, gpt-2)");
  }

  for (int b = 0; b < 256; ++b) byte_tokens_[b] = lookup(byte_to_unicode(static_cast<uint8_t>(b)));

  static constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";
  const auto* merges = find_array<std::string>(file, kMergesKey);
  if (!merges) throw_key(file, kMergesKey, "missing (required for tokenizer model gpt2)");
  if (merges->size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw_key(file, kMergesKey, "too many merges");
  }
  merges_.reserve(merges->size());
  std::string joined;
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const std::string& m = (*merges)[rank];
    // llama.cpp splits at the first space after the first character.
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos) {
      throw_key(
          file, kMergesKey,
          "merge " + std::to_string(rank) + " '" + m + "' is not two tokens joined by a space");
    }
    const std::string_view left(m.data(), sp);
    const std::string_view right(m.data() + sp + 1, m.size() - sp - 1);
    joined.assign(left);
    joined.append(right);
    const TokenId l = lookup(left), r = lookup(right), result = lookup(joined);
    if (l == kNoToken || r == kNoToken || result == kNoToken) {
      const std::string_view missing = l == kNoToken ? left : r == kNoToken ? right : joined;
      throw_key(file, kMergesKey,
                "merge " + std::to_string(rank) + " '" + m + "' references '" +
                    std::string(missing) + "', which is not in tokenizer.ggml.tokens");
    }
    const uint64_t key =
        static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32 | static_cast<uint32_t>(r);
    // A repeated pair keeps its first (best) rank.
    merges_.try_emplace(key, MergeResult{static_cast<int32_t>(rank), result});
  }
}

void Tokenizer::encode_bpe(std::string_view text, std::vector<TokenId>& out) const {
  struct Symbol {
    TokenId id;  // kNoToken: a byte whose character is not in the vocabulary
    int prev, next;
  };
  struct Bigram {
    int32_t rank;
    int left, right;
    TokenId left_id, right_id, merged;
    // Lowest rank first, then leftmost (llama.cpp's llm_bigram_bpe::comparator).
    bool operator<(const Bigram& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };

  std::vector<std::string_view> words;
  pretok_->split(text, words);
  std::vector<Symbol> symbols;
  std::vector<Bigram> heap;  // max-heap by operator<: the best pair on top
  std::string mapped;
  for (std::string_view word : words) {
    if (ignore_merges_) {
      mapped.clear();
      for (char c : word) mapped += byte_to_unicode(static_cast<uint8_t>(c));
      if (const TokenId id = lookup(mapped); id != kNoToken) {
        out.push_back(id);
        continue;
      }
    }
    symbols.clear();
    for (size_t i = 0; i < word.size(); ++i) {
      const int idx = static_cast<int>(i);
      symbols.push_back({byte_tokens_[static_cast<uint8_t>(word[i])], idx - 1,
                         i + 1 == word.size() ? -1 : idx + 1});
    }
    heap.clear();
    auto add_bigram = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const TokenId l = symbols[static_cast<size_t>(left)].id;
      const TokenId r = symbols[static_cast<size_t>(right)].id;
      if (l == kNoToken || r == kNoToken) return;
      const auto it = merges_.find(static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32 |
                                   static_cast<uint32_t>(r));
      if (it == merges_.end()) return;
      heap.push_back({it->second.rank, left, right, l, r, it->second.token});
      std::push_heap(heap.begin(), heap.end());
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_bigram(i - 1, i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const Bigram b = heap.back();
      heap.pop_back();
      Symbol& left = symbols[static_cast<size_t>(b.left)];
      Symbol& right = symbols[static_cast<size_t>(b.right)];
      // Stale: one side was merged away or changed since the pair was queued.
      if (left.next != b.right || left.id != b.left_id || right.id != b.right_id) continue;
      left.id = b.merged;
      left.next = right.next;
      if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = b.left;
      right.id = kNoToken;
      right.prev = right.next = -2;  // unlinked
      add_bigram(left.prev, b.left);
      add_bigram(b.left, left.next);
    }
    // Symbol 0 is never merged away, so the chain starts there. A byte without a token is
    // dropped, as llama.cpp does (byte-level vocabularies hold all 256).
    for (int i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
      if (symbols[static_cast<size_t>(i)].id != kNoToken) {
        out.push_back(symbols[static_cast<size_t>(i)].id);
      }
    }
  }
}

}  // namespace bitnet::model
