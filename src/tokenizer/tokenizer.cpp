// Tokenizer: vocabulary loading, special tokens, the special-token partition, decoding.
// The two algorithms live in tokenizer-bpe.cpp and tokenizer-spm.cpp.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <utility>

#include "tokenizer/tokenizer-internal.h"

namespace bitnet::model {

using namespace tokenizer_detail;

namespace tokenizer_detail {

void throw_key(const formats::GgufFile& file, std::string_view key, const std::string& what) {
  throw std::invalid_argument(file.path() + ": tokenizer key '" + std::string(key) + "': " + what);
}

}  // namespace tokenizer_detail

namespace {

const std::string* find_string(const formats::GgufFile& file, std::string_view key) {
  const formats::GgufValue* v = file.find(key);
  if (!v) return nullptr;
  if (!v->is<std::string>()) {
    throw_key(file, key, "expected STRING, found " + v->type_description());
  }
  return &v->as<std::string>();
}

std::optional<bool> find_bool(const formats::GgufFile& file, std::string_view key) {
  const formats::GgufValue* v = file.find(key);
  if (!v) return std::nullopt;
  if (!v->is<bool>()) throw_key(file, key, "expected BOOL, found " + v->type_description());
  return v->as<bool>();
}

// A token id key: UINT32 (what llama.cpp's converter writes) or INT32. Absent: `fallback`.
TokenId read_id(const formats::GgufFile& file, std::string_view key, TokenId fallback,
                size_t n_vocab) {
  const formats::GgufValue* v = file.find(key);
  if (!v) return fallback < static_cast<TokenId>(n_vocab) ? fallback : kNoToken;
  int64_t id = 0;
  if (v->is<uint32_t>()) {
    id = v->as<uint32_t>();
  } else if (v->is<int32_t>()) {
    id = v->as<int32_t>();
  } else {
    throw_key(file, key, "expected UINT32 or INT32, found " + v->type_description());
  }
  if (id < 0 || id >= static_cast<int64_t>(n_vocab)) {
    throw_key(file, key,
              "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(n_vocab) + ")");
  }
  return static_cast<TokenId>(id);
}

// Token texts llama.cpp (llama-vocab.cpp) treats as end of turn / end of generation.
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<EOT>",
    "_<EOT>",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
};
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>",    "<|im_end|>",    "<|end|>",    "<|return|>", "<|call|>",
    "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",      "_<EOT>",
};

bool is_special_type(int32_t type) {
  return type == kTypeControl || type == kTypeUserDefined || type == kTypeUnknown;
}

}  // namespace

Tokenizer::Tokenizer() : byte_tokens_(256, kNoToken) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_gguf(const formats::GgufFile& file) {
  Tokenizer t;
  static constexpr std::string_view kModelKey = "tokenizer.ggml.model";
  const std::string* model = find_string(file, kModelKey);
  if (!model) throw_key(file, kModelKey, "missing");
  if (const std::string* pre = find_string(file, "tokenizer.ggml.pre")) t.pre_ = *pre;

  static constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
  const auto* tokens = find_array<std::string>(file, kTokensKey);
  if (!tokens) throw_key(file, kTokensKey, "missing");
  if (tokens->empty() ||
      tokens->size() > static_cast<size_t>(std::numeric_limits<TokenId>::max())) {
    throw_key(file, kTokensKey, "holds " + std::to_string(tokens->size()) + " tokens");
  }
  t.tokens_ = *tokens;
  const size_t n = t.tokens_.size();
  t.token_ids_.reserve(n);
  // A repeated string maps to its last id, as in llama.cpp.
  for (size_t i = 0; i < n; ++i)
    t.token_ids_.insert_or_assign(t.tokens_[i], static_cast<TokenId>(i));

  static constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";
  if (const auto* types = find_array<int32_t>(file, kTypesKey)) {
    if (types->size() != n) {
      throw_key(file, kTypesKey,
                "has " + std::to_string(types->size()) + " entries, expected " + std::to_string(n) +
                    " (one per token)");
    }
    t.types_ = *types;
  } else {
    t.types_.assign(n, kTypeNormal);
  }

  if (*model == "gpt2") {
    t.kind_ = TokenizerKind::BytePairGpt2;
    t.load_bpe(file);
  } else if (*model == "llama") {
    t.kind_ = TokenizerKind::SentencePiece;
    t.load_spm(file);
  } else {
    throw_key(file, kModelKey,
              "unsupported tokenizer model '" + *model + "' (supported: gpt2, llama)");
  }

  // Absent ids: llama.cpp's SentencePiece defaults (<unk> 0, <s> 1, </s> 2); none for BPE.
  const bool spm = t.kind_ == TokenizerKind::SentencePiece;
  t.bos_ = read_id(file, "tokenizer.ggml.bos_token_id", spm ? 1 : kNoToken, n);
  t.eos_ = read_id(file, "tokenizer.ggml.eos_token_id", spm ? 2 : kNoToken, n);
  t.unk_ = read_id(file, "tokenizer.ggml.unknown_token_id", spm ? 0 : kNoToken, n);
  t.eot_ = read_id(file, "tokenizer.ggml.eot_token_id", kNoToken, n);
  t.eom_ = read_id(file, "tokenizer.ggml.eom_token_id", kNoToken, n);
  t.pad_ = read_id(file, "tokenizer.ggml.padding_token_id", kNoToken, n);
  if (auto v = find_bool(file, "tokenizer.ggml.add_bos_token")) t.add_bos_ = *v;
  if (auto v = find_bool(file, "tokenizer.ggml.add_eos_token")) t.add_eos_ = *v;

  if (t.eot_ == kNoToken) {
    for (std::string_view text : kEotTexts) {
      if (TokenId id = t.lookup(text); id != kNoToken) {
        t.eot_ = id;
        break;
      }
    }
  }
  if (t.eom_ == kNoToken) t.eom_ = t.lookup("<|eom_id|>");
  for (TokenId id : {t.eos_, t.eot_, t.eom_}) {
    if (id != kNoToken) t.eog_.push_back(id);
  }
  for (std::string_view text : kEogTexts) {
    if (TokenId id = t.lookup(text); id != kNoToken) t.eog_.push_back(id);
  }
  std::sort(t.eog_.begin(), t.eog_.end());
  t.eog_.erase(std::unique(t.eog_.begin(), t.eog_.end()), t.eog_.end());

  for (size_t i = 0; i < n; ++i) {
    if (is_special_type(t.types_[i]) && !t.tokens_[i].empty()) {
      t.partition_tokens_.push_back(static_cast<TokenId>(i));
    }
  }
  std::stable_sort(
      t.partition_tokens_.begin(), t.partition_tokens_.end(), [&](TokenId a, TokenId b) {
        return t.tokens_[static_cast<size_t>(a)].size() > t.tokens_[static_cast<size_t>(b)].size();
      });
  t.build_pieces();
  return t;
}

TokenId Tokenizer::lookup(std::string_view text) const {
  const auto it = token_ids_.find(text);
  return it == token_ids_.end() ? kNoToken : it->second;
}

// pieces_ holds every token rendered as llama.cpp's token_to_piece(special = true) does; the
// suppression of CONTROL and UNKNOWN tokens happens in token_to_piece().
void Tokenizer::build_pieces() {
  pieces_.resize(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& text = tokens_[i];
    const int32_t type = types_[i];
    std::string& piece = pieces_[i];
    if (is_special_type(type)) {
      piece = text;
    } else if (type == kTypeNormal) {
      if (kind_ == TokenizerKind::BytePairGpt2) {
        piece = byte_level_decode(text);
      } else {
        for (size_t p = 0; p < text.size();) {
          if (text.compare(p, 3, "\xE2\x96\x81") == 0) {
            piece += ' ';
            p += 3;
          } else {
            piece += text[p++];
          }
        }
      }
    } else if (type == kTypeByte) {
      // "<0xXX>"; a byte-level vocabulary's BYTE token is its mapped character.
      unsigned value = 0;
      if (text.size() == 6 && text.starts_with("<0x") && text[5] == '>' &&
          std::sscanf(text.c_str() + 3, "%2x", &value) == 1) {
        piece = std::string(1, static_cast<char>(value));
      } else {
        piece = byte_level_decode(text);
      }
    }
    // UNUSED and undefined types render as nothing.
  }
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  struct Fragment {
    TokenId token;  // kNoToken: raw text [off, off + len)
    size_t off, len;
  };
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({kNoToken, 0, text.size()});
  // llama.cpp's tokenizer_st_partition: longest special token first, each cut out of every raw
  // fragment wherever it occurs. USER_DEFINED tokens are cut even without parse_special.
  for (TokenId special : partition_tokens_) {
    const int32_t type = types_[static_cast<size_t>(special)];
    if (!parse_special && (type == kTypeControl || type == kTypeUnknown)) continue;
    const std::string& s = tokens_[static_cast<size_t>(special)];
    for (size_t i = 0; i < fragments.size(); ++i) {
      const Fragment f = fragments[i];
      if (f.token != kNoToken) continue;
      const size_t at = text.substr(f.off, f.len).find(s);
      if (at == std::string_view::npos) continue;
      std::vector<Fragment> parts;
      if (at > 0) parts.push_back({kNoToken, f.off, at});
      parts.push_back({special, f.off + at, s.size()});
      const size_t rest = f.len - at - s.size();
      if (rest > 0) parts.push_back({kNoToken, f.off + at + s.size(), rest});
      fragments.erase(fragments.begin() + static_cast<std::ptrdiff_t>(i));
      fragments.insert(fragments.begin() + static_cast<std::ptrdiff_t>(i), parts.begin(),
                       parts.end());
      // Continue with the fragment after the token: the remainder, searched again.
      i += at > 0 ? 1 : 0;
    }
  }

  std::vector<TokenId> out;
  if (add_special && add_bos_ && bos_ != kNoToken) out.push_back(bos_);
  // SentencePiece adds the space prefix at the start of the text and after each special token.
  bool after_special = true;
  for (const Fragment& f : fragments) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    const std::string_view raw = text.substr(f.off, f.len);
    if (kind_ == TokenizerKind::SentencePiece) {
      encode_spm(raw, add_space_prefix_ && after_special, out);
    } else {
      encode_bpe(raw, out);
    }
    after_special = false;
  }
  if (add_special && add_eos_ && eos_ != kNoToken) out.push_back(eos_);
  return out;
}

std::string_view Tokenizer::token_to_piece(TokenId id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) {
    throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                            std::to_string(n_vocab()) + ")");
  }
  const int32_t type = types_[static_cast<size_t>(id)];
  if (!render_special && (type == kTypeControl || type == kTypeUnknown)) return {};
  return pieces_[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool render_special) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string_view piece = token_to_piece(ids[i], render_special);
    if (i == 0 && add_space_prefix_ && piece.starts_with(' ')) piece.remove_prefix(1);
    out += piece;
  }
  return out;
}

bool Tokenizer::is_eog(TokenId id) const {
  return std::binary_search(eog_.begin(), eog_.end(), id);
}

bool Tokenizer::is_control(TokenId id) const {
  return id >= 0 && id < n_vocab() && types_[static_cast<size_t>(id)] == kTypeControl;
}

const std::string& Tokenizer::token_text(TokenId id) const {
  if (id < 0 || id >= n_vocab()) {
    throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                            std::to_string(n_vocab()) + ")");
  }
  return tokens_[static_cast<size_t>(id)];
}

std::optional<TokenId> Tokenizer::find_token(std::string_view text) const {
  const TokenId id = lookup(text);
  if (id == kNoToken) return std::nullopt;
  return id;
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool render_special,
                                           bool text_start)
    : tokenizer_(&tokenizer),
      render_special_(render_special),
      strip_space_(text_start && tokenizer.add_space_prefix()) {}

std::string StreamingDetokenizer::push(TokenId id) {
  std::string_view piece = tokenizer_->token_to_piece(id, render_special_);
  if (strip_space_ && piece.starts_with(' ')) piece.remove_prefix(1);
  strip_space_ = false;
  pending_ += piece;
  // Hold back a final sequence whose lead byte announces more bytes than have arrived. Only the
  // last 3 bytes can belong to such a sequence (a lead starts at most 4 bytes).
  size_t keep_from = pending_.size();
  for (size_t back = 1; back <= std::min<size_t>(3, pending_.size()); ++back) {
    const size_t i = pending_.size() - back;
    const auto c = static_cast<uint8_t>(pending_[i]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
    if (utf8_len(c) > back) keep_from = i;
    break;
  }
  std::string ready = pending_.substr(0, keep_from);
  pending_.erase(0, keep_from);
  return ready;
}

std::string StreamingDetokenizer::flush() {
  return std::exchange(pending_, std::string());
}

}  // namespace bitnet::model
