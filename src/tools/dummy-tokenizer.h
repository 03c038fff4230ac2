// A synthetic tokenizer for generated (random-weight) models: the real vocabulary size and the
// real special-token ids of a model, but no learned merges. Every id that is not a special token
// or one of the 256 byte tokens is a filler that no text can produce, so text always tokenizes
// byte by byte. It exists so that dummy files load and run end to end with the real shapes; it is
// not the model's tokenizer and says so in the file (general.name, bitnet-cxx.dummy).
//
// Two self-consistent flavours, matching the family of the real model:
//   Gpt2Bytes  tokenizer.ggml.model "gpt2", pre "llama-bpe": the 256 byte-level tokens of GPT-2's
//              byte-to-unicode table (type NORMAL) in code-point order ("!" first, "Ġ" = space
//              221st: exactly Llama-3's ids 0..255) at the lowest ids not taken by a special
//              token, an empty merges list. Llama-3 and Falcon3 style.
//   SpmBytes   tokenizer.ggml.model "llama" (SentencePiece), pre "default": <unk> (type UNKNOWN),
//              the byte-fallback tokens "<0x00>".."<0xFF>" (type BYTE) at the lowest free ids,
//              scores all 0. LLaMA-2 style (ids 0..2 = <unk> <s> </s>, bytes 3..258).
// Fillers are "[dummy N]" (N = id), type NORMAL. They contain a raw space, which neither flavour
// can emit: byte-level BPE maps a space to "Ġ" and SentencePiece escapes it to U+2581.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/token-type.h"

namespace bitnet::model {

enum class DummyTokenizerKind { Gpt2Bytes, SpmBytes };

struct SpecialToken {
  int64_t id;
  std::string text;
};

struct DummyTokenizerSpec {
  DummyTokenizerKind kind = DummyTokenizerKind::Gpt2Bytes;
  int64_t n_vocab = 0;
  std::vector<SpecialToken> control;  // type CONTROL, at their real ids
  int64_t bos_id = -1;                // each must be one of `control`
  int64_t eos_id = -1;
  int64_t eot_id = -1;  // -1: none
  int64_t unk_id = -1;  // SpmBytes only (required there): "<unk>", type UNKNOWN
};

// The string of byte b in GPT-2's byte-to-unicode table, UTF-8 encoded: bytes 33..126, 161..172
// and 174..255 stand for themselves (as code points), the other 68 map in order to U+0100.. .
std::string gpt2_byte_token(uint8_t b);

// The Llama-3 added tokens with ids first_id .. first_id + count - 1 (count <= 256), named as in
// Llama-3: <|begin_of_text|>, <|end_of_text|>, <|reserved_special_token_0..3|>,
// <|start_header_id|>, <|end_header_id|>, <|reserved_special_token_4|>, <|eot_id|>,
// <|reserved_special_token_5..250|>.
std::vector<SpecialToken> llama3_special_tokens(int64_t first_id, int count);

// Writes the tokenizer.ggml.* keys. Throws std::invalid_argument when the spec is inconsistent:
// an id out of range or used twice, bos/eos/eot not a control token, no room for the byte tokens.
void write_dummy_tokenizer(const DummyTokenizerSpec& spec, formats::GgufWriter& writer);

}  // namespace bitnet::model
