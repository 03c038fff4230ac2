// Shared by tokenizer.cpp, tokenizer-bpe.cpp and tokenizer-spm.cpp; not part of the model API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/token-type.h"

struct pcre2_real_code_8;  // pcre2.h's pcre2_code_8, kept out of this header

namespace bitnet::model {

namespace tokenizer_detail {

// tokenizer.ggml.token_type values as the int32 the file stores (model/token-type.h).
inline constexpr int32_t kTypeNormal = static_cast<int32_t>(TokenType::Normal);
inline constexpr int32_t kTypeUnknown = static_cast<int32_t>(TokenType::Unknown);
inline constexpr int32_t kTypeControl = static_cast<int32_t>(TokenType::Control);
inline constexpr int32_t kTypeUserDefined = static_cast<int32_t>(TokenType::UserDefined);
inline constexpr int32_t kTypeUnused = static_cast<int32_t>(TokenType::Unused);
inline constexpr int32_t kTypeByte = static_cast<int32_t>(TokenType::Byte);

// Length of the UTF-8 sequence a byte starts (1 for ASCII, continuation and invalid bytes).
inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// "<file>: tokenizer key 'key': what"
[[noreturn]] void throw_key(const formats::GgufFile& file, std::string_view key,
                            const std::string& what);

// The array stored under key, nullptr when absent; throws (naming the key) on another type.
template <formats::GgufElement T>
const std::vector<T>* find_array(const formats::GgufFile& file, std::string_view key) {
  const formats::GgufValue* v = file.find(key);
  if (!v) return nullptr;
  if (!v->is_array_of<T>()) {
    throw_key(file, key,
              "expected an array of " + formats::gguf_type_name(formats::GgufTypeOf<T>::value) +
                  ", found " + v->type_description());
  }
  return &v->as_array<T>();
}

// GPT-2's byte-to-unicode table: byte b stands for this UTF-8 string in byte-level vocabularies.
const std::string& byte_to_unicode(uint8_t b);
// Inverse mapping of a byte-level vocabulary string; characters outside the table are copied.
std::string byte_level_decode(std::string_view text);

}  // namespace tokenizer_detail

// A pre-tokenizer regex compiled once (PCRE2, UTF + UCP, JIT when available). Shared read-only
// between threads: each split() call uses its own match data.
class PreTokenizer {
 public:
  explicit PreTokenizer(const std::string& pattern);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Cuts text into consecutive pieces covering all of it: the regex matches, and between them
  // any bytes the regex does not match (invalid UTF-8), each run as its own piece.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
};

}  // namespace bitnet::model
