// Random-weight models with the exact shapes of real BitNet b1.58 models, for loading, latency
// and memory work without downloading checkpoints. The files are ordinary GGUF files of our
// architectures, marked as random (general.name "bitnet-cxx dummy <preset> (random weights)",
// "bitnet-cxx.dummy" = true), with the synthetic byte-level tokenizer of model/dummy-tokenizer.h.
//
// Values (deterministic per seed; each tensor draws from its own splitmix64 stream keyed by
// (seed, tensor index), so a tensor's values do not depend on the storage type or on the
// other tensors):
//   linear weights  t * s, t uniform in {-1, 0, +1} (exactly: rejection-sampled base-3 digits),
//                   one scale per tensor s = U(0.5, 1.5) / sqrt(2/3 * K) rounded to fp16, so every
//                   ternary encoding (I2_S, TQ2_0, TQ1_0, F16) stores the same values exactly.
//                   For arch bitnet the scale is folded in: no blk.N.<linear>.scale tensors.
//   norm weights    1 + 0.05 * N(0, 1), F32
//   token_embd and output   N(0, 1) / sqrt(n_embd) (logits of a unit-RMS state are then about
//                   N(0, 1)). N(0, 1) is approximated by the Irwin-Hall sum of 4 uniforms scaled to
//                   unit variance (bounded by +-3.46): cheap enough for 10^9 values.
// Generation is streamed tensor by tensor through GgufWriter (memory: the largest tensor's bytes
// plus, for a linear, its codes at one byte per weight).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "model/model-config.h"
#include "tools/dummy-tokenizer.h"

namespace bitnet::model {

struct DummyPreset {
  std::string name;     // "2b4t"
  std::string summary;  // the real model it mirrors
  ModelConfig config;
  DummyTokenizerSpec tokenizer;
};

// All presets, in --list order: 2b4t, bitnet-large, bitnet-3b, llama3-8b-1.58, falcon3-10b-1.58,
// medium-100m, tiny-1m.
const std::vector<DummyPreset>& dummy_presets();
// Throws std::invalid_argument naming the unknown preset and listing the known ones.
const DummyPreset& find_dummy_preset(std::string_view name);

struct DummyOptions {
  // ggml type of the seven linear kinds: I2_S, TQ2_0, TQ1_0 or F16
  uint32_t linear_type = static_cast<uint32_t>(formats::GgmlType::I2_S);
  // token_embd (and output.weight): F16, Q8_0 or Q6_K
  uint32_t embd_type = static_cast<uint32_t>(formats::GgmlType::F16);
  uint64_t seed = 0;
};

// "i2_s" | "tq2_0" | "tq1_0" | "f16" -> ggml type id; throws std::invalid_argument listing the
// accepted names otherwise. Likewise "f16" | "q8_0" | "q6_k" for the embedding.
uint32_t parse_dummy_linear_type(std::string_view name);
uint32_t parse_dummy_embd_type(std::string_view name);

// Throws std::invalid_argument when the preset cannot be stored with these types or run by our
// kernels: a linear input dim (ne0, the kernels' K) not a multiple of 16, or of the type's block
// (TQ2_0 / TQ1_0: 256; bitnet-3b's 3200 and 8640 are not, so it needs --type i2_s or f16), an
// element count not a multiple of 128 (I2_S), or an n_embd the embedding type's block does not
// divide (Q6_K: 256, Q8_0: 32). No silent fallback to another type: the caller asked for a layout
// and gets it or an error.
void check_dummy_options(const DummyPreset& preset, const DummyOptions& options);

// The tensors a dummy file holds: expected_tensors(config) without the optional .scale tensors,
// with output.weight only when the preset is untied.
std::vector<TensorSpec> dummy_tensors(const ModelConfig& config);

// Parameters (elements) of the ternary linears, and of all tensors of a dummy file.
int64_t ternary_parameter_count(const ModelConfig& config);
int64_t total_parameter_count(const ModelConfig& config);
// Bytes of all tensor data with these types, each tensor padded to 32 bytes (the file is this plus
// its metadata, whose size the caller can estimate from the vocabulary: see dummy_file_bytes).
uint64_t dummy_tensor_bytes(const DummyPreset& preset, const DummyOptions& options);
// Estimated file size: tensor bytes plus metadata (within a few KiB).
uint64_t dummy_file_bytes(const DummyPreset& preset, const DummyOptions& options);

// general.file_type (llama.cpp's LLAMA_FTYPE) of a file whose linears are stored as `linear_type`:
// F16 1, TQ1_0 36, TQ2_0 37, I2_S 40 (bitnet.cpp's MOSTLY_I2_S).
uint32_t dummy_file_type(uint32_t linear_type);

// Called after each tensor is generated: tensor index (1-based), tensor count, data bytes so far.
using DummyProgress = std::function<void(size_t done, size_t total, uint64_t bytes)>;

// Adds the metadata, tokenizer and tensor fill functions to `writer`; the data is generated when
// writer.write() / to_bytes() runs. Calls check_dummy_options first.
void add_dummy_model(const DummyPreset& preset, const DummyOptions& options,
                     formats::GgufWriter& writer, DummyProgress progress = {});

// add_dummy_model + write(path).
void write_dummy_model(const DummyPreset& preset, const DummyOptions& options,
                       const std::string& path, DummyProgress progress = {});

}  // namespace bitnet::model
