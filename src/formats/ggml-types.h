// ggml tensor type ids as they appear in GGUF files, with their block geometry. Ids follow
// mainline ggml, plus bitnet.cpp's fork-only I2_S (36); the fork's 37-39 (I8_S, TL1, TL2) are not
// read (mainline uses those numbers for other types, so they are ambiguous in a file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace bitnet::formats {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  I2_S = 36,  // bitnet.cpp: 2-bit codes in blocks of 128 + a 32-byte trailer holding the f32 scale
};

struct GgmlTypeInfo {
  const char* name;
  int64_t block_elems;  // elements per block along ne0 (1 for plain types)
  size_t block_bytes;   // bytes per block
};

// Geometry of a type this project knows, or nullopt for an id it does not.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type_id);
std::string ggml_type_name(uint32_t type_id);  // "Q6_K", or "type 99" when unknown

// Bytes of a tensor with these dims (ne0 contiguous). Throws std::invalid_argument when the type
// is unknown, ne0 is not a multiple of the block, a dim is negative, or the size overflows.
// I2_S: ne0*ne1*.../4 packed bytes plus the 32-byte trailer (the element count must be a multiple
// of 128).
size_t ggml_tensor_bytes(uint32_t type_id, const int64_t* dims, int n_dims);

}  // namespace bitnet::formats
