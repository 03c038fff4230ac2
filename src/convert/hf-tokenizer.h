// A Hugging Face tokenizer directory (tokenizer.json; tokenizer_config.json and config.json for
// the special tokens, add_bos/add_eos and the chat template) written as the GGUF tokenizer keys
// that model/tokenizer.h and llama.cpp read.
//
// Two tokenizer.json kinds, both "model": {"type": "BPE"}:
//   byte-level BPE   ByteLevel pre-tokenizer (Llama-3, 2B4T). tokenizer.ggml.model "gpt2";
//                    pre "llama-bpe" when a Split pre-tokenizer carries Llama-3's regex (compared
//                    as a string), "default" for ByteLevel's own GPT-2 regex; any other regex is
//                    rejected, since tokenizing with a different one would be silently wrong.
//   SentencePiece    a U+2581 Metaspace pre-tokenizer, or the legacy Prepend/Replace U+2581
//   style BPE        normalizer (LLaMA-2, 1bitLLM bitnet_b1_58). tokenizer.ggml.model "llama",
//                    <0xXX> tokens typed BYTE when byte_fallback is set. tokenizer.json has merges
//                    but no scores, and the "llama" encoder merges the adjacent pair whose result
//                    has the best score, so scores are derived from the merges: a token's score
//                    is -(rank of the first merge producing it). Hugging Face applies the
//                    lowest-ranked merge first, so both pick the same pair whenever every merge
//                    producing a token is ranked together (true of converted SentencePiece
//                    models, whose merges are sorted by the merged piece's score). Normal tokens
//                    no merge produces score below all others (-(n_merges + id)); special, byte
//                    and unused tokens score 0, as in SentencePiece models.
// Tokens are ordered by id (model.vocab + added_tokens); a gap in the ids is an error. When the
// model's vocabulary (config.json vocab_size, the embedding rows) is larger, the extra ids become
// "[PAD<id>]" tokens of type UNUSED, as llama.cpp's converter does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "formats/gguf.h"

namespace bitnet::model {

struct HfTokenizerSummary {
  std::string model;     // "gpt2" or "llama"
  std::string pre;       // tokenizer.ggml.pre ("" for "llama")
  size_t n_tokens = 0;   // written, padding included
  size_t n_padding = 0;  // "[PAD<id>]" tokens added up to n_vocab
  size_t n_merges = 0;
};

// Adds the tokenizer.ggml.* keys (and tokenizer.chat_template when there is one) for the
// tokenizer in `dir`. Returns nullopt and writes nothing when dir has no tokenizer.json. Throws
// std::invalid_argument naming the file and the JSON path of anything unsupported or
// inconsistent: a model other than BPE, an unknown pre-tokenizer or normalizer, a gap in the ids,
// more tokens than n_vocab, a merge of strings that are not tokens, a special token that is not in
// the vocabulary.
std::optional<HfTokenizerSummary> add_hf_tokenizer(const std::string& dir, int64_t n_vocab,
                                                   formats::GgufWriter& writer);

}  // namespace bitnet::model
