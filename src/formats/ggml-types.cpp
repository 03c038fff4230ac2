#include "formats/ggml-types.h"

#include <stdexcept>

namespace bitnet::formats {

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type_id) {
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::F32:
      return GgmlTypeInfo{"F32", 1, 4};
    case GgmlType::F16:
      return GgmlTypeInfo{"F16", 1, 2};
    case GgmlType::Q4_0:
      return GgmlTypeInfo{"Q4_0", 32, 18};
    case GgmlType::Q4_1:
      return GgmlTypeInfo{"Q4_1", 32, 20};
    case GgmlType::Q5_0:
      return GgmlTypeInfo{"Q5_0", 32, 22};
    case GgmlType::Q5_1:
      return GgmlTypeInfo{"Q5_1", 32, 24};
    case GgmlType::Q8_0:
      return GgmlTypeInfo{"Q8_0", 32, 34};
    case GgmlType::Q8_1:
      return GgmlTypeInfo{"Q8_1", 32, 36};
    case GgmlType::Q2_K:
      return GgmlTypeInfo{"Q2_K", 256, 84};
    case GgmlType::Q3_K:
      return GgmlTypeInfo{"Q3_K", 256, 110};
    case GgmlType::Q4_K:
      return GgmlTypeInfo{"Q4_K", 256, 144};
    case GgmlType::Q5_K:
      return GgmlTypeInfo{"Q5_K", 256, 176};
    case GgmlType::Q6_K:
      return GgmlTypeInfo{"Q6_K", 256, 210};
    case GgmlType::Q8_K:
      return GgmlTypeInfo{"Q8_K", 256, 292};
    case GgmlType::I8:
      return GgmlTypeInfo{"I8", 1, 1};
    case GgmlType::I16:
      return GgmlTypeInfo{"I16", 1, 2};
    case GgmlType::I32:
      return GgmlTypeInfo{"I32", 1, 4};
    case GgmlType::I64:
      return GgmlTypeInfo{"I64", 1, 8};
    case GgmlType::F64:
      return GgmlTypeInfo{"F64", 1, 8};
    case GgmlType::BF16:
      return GgmlTypeInfo{"BF16", 1, 2};
    case GgmlType::TQ1_0:
      return GgmlTypeInfo{"TQ1_0", 256, 54};
    case GgmlType::TQ2_0:
      return GgmlTypeInfo{"TQ2_0", 256, 66};
    case GgmlType::I2_S:
      return GgmlTypeInfo{"I2_S", 128, 32};  // plus one 32-byte trailer
  }
  return std::nullopt;
}

std::string ggml_type_name(uint32_t type_id) {
  const auto info = ggml_type_info(type_id);
  return info ? info->name : "type " + std::to_string(type_id);
}

size_t ggml_tensor_bytes(uint32_t type_id, const int64_t* dims, int n_dims) {
  const auto info = ggml_type_info(type_id);
  if (!info) throw std::invalid_argument("unknown tensor type id " + std::to_string(type_id));
  if (n_dims < 1) throw std::invalid_argument("tensor has no dimensions");
  uint64_t elems = 1;
  for (int i = 0; i < n_dims; ++i) {
    if (dims[i] < 0) throw std::invalid_argument("negative dimension " + std::to_string(dims[i]));
    const uint64_t d = static_cast<uint64_t>(dims[i]);
    if (d != 0 && elems > (uint64_t{1} << 62) / d)
      throw std::invalid_argument("tensor size overflows");
    elems *= d;
  }
  const bool i2s = type_id == static_cast<uint32_t>(GgmlType::I2_S);
  const uint64_t block = static_cast<uint64_t>(info->block_elems);
  if (i2s ? elems % block != 0 : static_cast<uint64_t>(dims[0]) % block != 0) {
    throw std::invalid_argument(std::string(info->name) + " needs " +
                                (i2s ? "an element count" : "ne0") + " that is a multiple of " +
                                std::to_string(block) + ", found " +
                                std::to_string(i2s ? elems : static_cast<uint64_t>(dims[0])));
  }
  // elems < 2^62 does not bound the bytes: F32 with 2^62 elements would wrap to 0.
  const uint64_t blocks = elems / block;
  if (blocks > ((uint64_t{1} << 62) - 32) / info->block_bytes)
    throw std::invalid_argument("tensor size overflows");
  const uint64_t bytes = blocks * info->block_bytes + (i2s ? 32 : 0);
  return static_cast<size_t>(bytes);
}

}  // namespace bitnet::formats
