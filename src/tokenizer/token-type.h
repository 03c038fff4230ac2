// tokenizer.ggml.token_type values (llama.cpp's llama_token_type): one definition for the
// tokenizers that read them and the writers that store them.
#pragma once

#include <cstdint>

namespace bitnet::model {

enum class TokenType : int32_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

}  // namespace bitnet::model
