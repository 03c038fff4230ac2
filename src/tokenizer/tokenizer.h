// Tokenizers read from GGUF metadata (tokenizer.ggml.*), reproducing llama.cpp's llama-vocab:
//
//   tokenizer.ggml.model "gpt2"   byte-level BPE. Text is cut into pre-tokens by the regex named by
//                                 tokenizer.ggml.pre ("llama-bpe" and its aliases: Llama-3's;
//                                 "default"/"gpt2"/absent: GPT-2's), each pre-token's bytes are
//                                 mapped through GPT-2's byte-to-unicode table and merged by
//                                 tokenizer.ggml.merges rank. Llama-3 vocabularies take a whole
//                                 pre-token directly when it is itself a token ("ignore_merges").
//   tokenizer.ggml.model "llama"  SentencePiece-style BPE: a leading space is added
//                                 (tokenizer.ggml.add_space_prefix, default true), spaces become
//                                 U+2581, adjacent pieces are merged by best tokenizer.ggml.scores,
//                                 and characters left without a token fall back to <0xXX> tokens.
//
// Special tokens (token_type CONTROL, USER_DEFINED, UNKNOWN) are split out of the text before
// either algorithm runs: CONTROL and UNKNOWN only when parse_special is set, USER_DEFINED always,
// as llama.cpp does. Decoding concatenates per-token byte strings ("pieces"); it does not apply
// Hugging Face's clean_up_tokenization_spaces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/gguf.h"

namespace bitnet::model {

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

enum class TokenizerKind {
  BytePairGpt2,   // tokenizer.ggml.model "gpt2"
  SentencePiece,  // tokenizer.ggml.model "llama"
};

class PreTokenizer;  // tokenizer-bpe.cpp: the compiled pre-tokenizer regex

class Tokenizer {
 public:
  // Throws std::invalid_argument naming the file and the key for an unknown tokenizer model or
  // pre-tokenizer, a missing or mistyped key, arrays whose lengths differ from the token count,
  // special-token ids outside the vocabulary, and merges that are malformed or reference (or
  // produce) a string that is not a token.
  static Tokenizer from_gguf(const formats::GgufFile& file);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  // add_special: prepend BOS / append EOS when the vocabulary says so (add_bos(), add_eos()).
  // parse_special: text equal to a CONTROL token (e.g. "<|eot_id|>") becomes that token.
  // Thread-safe (const, no shared scratch).
  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes a token stands for. CONTROL and UNKNOWN tokens give "" unless render_special, then
  // their text. UNUSED tokens always give "". Throws std::out_of_range for an id outside the
  // vocabulary. The view stays valid while the Tokenizer lives.
  std::string_view token_to_piece(TokenId id, bool render_special = false) const;

  // Concatenated pieces. With SentencePiece and add_space_prefix, one leading space is removed
  // from the first id's piece (llama.cpp's llama_detokenize), so decode(encode(x)) == x.
  std::string decode(std::span<const TokenId> ids, bool render_special = false) const;

  // End of generation: eos, eot, eom and the control tokens llama.cpp treats as such by text
  // ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", ...).
  bool is_eog(TokenId id) const;
  std::span<const TokenId> eog_tokens() const { return eog_; }  // ascending
  bool is_control(TokenId id) const;

  TokenizerKind kind() const { return kind_; }
  const std::string& pre() const { return pre_; }  // tokenizer.ggml.pre ("" when absent)
  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  TokenId bos() const { return bos_; }  // kNoToken when the vocabulary has none
  TokenId eos() const { return eos_; }
  TokenId eot() const { return eot_; }  // tokenizer.ggml.eot_token_id, else found by text
  TokenId eom() const { return eom_; }
  TokenId unk() const { return unk_; }
  TokenId pad() const { return pad_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }

  // The vocabulary string of a token as stored (byte-level or U+2581-escaped); throws
  // std::out_of_range for an id outside the vocabulary.
  const std::string& token_text(TokenId id) const;
  // The id whose vocabulary string is exactly `text`.
  std::optional<TokenId> find_token(std::string_view text) const;

 private:
  struct MergeResult {
    int32_t rank;
    TokenId token;
  };

  Tokenizer();
  void load_bpe(const formats::GgufFile& file);  // tokenizer-bpe.cpp
  void load_spm(const formats::GgufFile& file);  // tokenizer-spm.cpp
  void build_pieces();
  // Appends the tokens of `text`, which holds no special tokens.
  void encode_bpe(std::string_view text, std::vector<TokenId>& out) const;  // tokenizer-bpe.cpp
  // space_prefix: prepend the U+2581 that stands for a leading space.
  void encode_spm(std::string_view text, bool space_prefix,
                  std::vector<TokenId>& out) const;  // tokenizer-spm.cpp
  TokenId lookup(std::string_view text) const;       // kNoToken when absent

  TokenizerKind kind_ = TokenizerKind::BytePairGpt2;
  std::string pre_;
  std::vector<std::string> tokens_;  // [n_vocab] tokenizer.ggml.tokens
  std::vector<int32_t> types_;       // [n_vocab] tokenizer.ggml.token_type (1 NORMAL if absent)
  std::vector<float> scores_;        // [n_vocab] tokenizer.ggml.scores (SentencePiece only)
  // Keys view tokens_' heap elements, which stay put when the vector (or *this) is moved.
  std::unordered_map<std::string_view, TokenId> token_ids_;
  // (left id << 32 | right id) -> rank and merged token (byte-level BPE).
  std::unordered_map<uint64_t, MergeResult> merges_;
  // Byte b's token: the GPT-2 byte-to-unicode character (BPE) or "<0xBB>" (SentencePiece).
  std::vector<TokenId> byte_tokens_;       // [256], kNoToken when absent
  std::vector<std::string> pieces_;        // [n_vocab] bytes with special tokens rendered
  std::vector<TokenId> partition_tokens_;  // special tokens, longest text first
  std::vector<TokenId> eog_;               // sorted
  std::unique_ptr<PreTokenizer> pretok_;   // byte-level BPE only

  TokenId bos_ = kNoToken, eos_ = kNoToken, eot_ = kNoToken, eom_ = kNoToken;
  TokenId unk_ = kNoToken, pad_ = kNoToken;
  bool add_bos_ = false, add_eos_ = false;
  bool add_space_prefix_ = false;  // SentencePiece
  bool ignore_merges_ = false;     // BPE: a whole pre-token that is a token is taken directly
};

// Turns ids into text one at a time, emitting only complete UTF-8 sequences: a multi-byte
// character split across byte tokens is held back until its last byte arrives. Bytes that can
// never complete (invalid UTF-8) are passed through, not held.
class StreamingDetokenizer {
 public:
  // text_start: the first id begins the text, so the SentencePiece space prefix is removed from
  // it as decode() does. Pass false when continuing after a prompt.
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool render_special = false,
                                bool text_start = true);

  // The text completed by this id (possibly empty).
  std::string push(TokenId id);
  // Whatever is still held back (an incomplete sequence at the end of the stream); resets.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool render_special_;
  bool strip_space_;
  std::string pending_;
};

}  // namespace bitnet::model
