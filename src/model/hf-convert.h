// Conversion of a Hugging Face checkpoint (model/hf-checkpoint.h) into a GGUF file of this engine:
// model-config metadata, ternary linears in I2_S (per-tensor scale in the trailer) or TQ2_0 / TQ1_0
// (every block's d = the scale), norms F32, token_embd / output in the embedding type.
// Tensors are produced one at a time while the writer streams the file, so memory holds at most
// one tensor's codes and its encoded bytes, never the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "model/hf-checkpoint.h"

namespace bitnet::model {

struct HfConvertOptions {
  uint32_t ternary_type = static_cast<uint32_t>(formats::GgmlType::I2_S);  // I2_S, TQ2_0, TQ1_0
  // F32, F16, BF16, Q8_0 or Q6_K.
  uint32_t embedding_type = static_cast<uint32_t>(formats::GgmlType::F16);
  // Called before each tensor is produced: index (0-based), count, GGUF name.
  std::function<void(size_t, size_t, const std::string&)> progress;
};

// Adds the metadata and every tensor of `checkpoint` to `writer`; the tensors are filled when
// writer.write() / to_bytes() runs, so `checkpoint` must outlive that call. Checks every shape
// against the chosen types first and throws std::invalid_argument naming the tensor and the
// constraint (TQ types: ne0 % 256 == 0; I2_S: elements % 128 == 0; Q8_0: ne0 % 32; Q6_K: ne0 %
// 256).
void add_hf_checkpoint(const HfCheckpoint& checkpoint, const HfConvertOptions& options,
                       formats::GgufWriter& writer);

}  // namespace bitnet::model
