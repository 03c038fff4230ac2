// Conversion of a Hugging Face checkpoint (model/hf-checkpoint.h) into a GGUF file of this engine:
// model-config metadata, ternary linears in I2_S (per-tensor scale in the trailer) or TQ2_0 / TQ1_0
// (every block's d = the scale), norms F32, token_embd / output in the embedding type.
// Tensors are produced one at a time while the writer streams the file, so memory holds at most
// one tensor's codes and its encoded bytes, never the model. The directory's tokenizer.json, when
// there is one, becomes the tokenizer.ggml.* keys (model/hf-tokenizer.h).
//
// hf_dir_to_cached_gguf() does the same into a cache directory, once per version of the
// checkpoint, so that ModelWeights::load() can take a Hugging Face directory directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "convert/hf-checkpoint.h"
#include "convert/hf-tokenizer.h"
#include "formats/ggml-types.h"
#include "formats/gguf.h"
#include "model/model-weights.h"

namespace bitnet::model {

struct HfConvertOptions {
  uint32_t ternary_type = static_cast<uint32_t>(formats::GgmlType::I2_S);  // I2_S, TQ2_0, TQ1_0
  // F32, F16, BF16, Q8_0 or Q6_K.
  uint32_t embedding_type = static_cast<uint32_t>(formats::GgmlType::F16);
  // Called before each tensor is produced: index (0-based), count, GGUF name.
  std::function<void(size_t, size_t, const std::string&)> progress;
};

struct HfConvertResult {
  std::optional<HfTokenizerSummary> tokenizer;  // nullopt: the directory has no tokenizer.json
};

// Adds the metadata, the tokenizer keys and every tensor of `checkpoint` to `writer`; the tensors
// are filled when writer.write() / to_bytes() runs, so `checkpoint` must outlive that call. Checks
// every shape against the chosen types first and throws std::invalid_argument naming the tensor and
// the constraint (TQ types: ne0 % 256 == 0; I2_S: elements % 128 == 0; Q8_0: ne0 % 32; Q6_K: ne0 %
// 256), and the tokenizer (hf-tokenizer.h: std::invalid_argument naming the file and JSON path).
HfConvertResult add_hf_checkpoint(const HfCheckpoint& checkpoint, const HfConvertOptions& options,
                                  formats::GgufWriter& writer);

// The GGUF key that records which version of a checkpoint a cached conversion came from.
inline constexpr const char* kHfSourceStampKey = "bitnet-cxx.hf_source_stamp";

// The model at `path`: a GGUF file loaded as it is, or a Hugging Face checkpoint directory
// converted once into the cache directory (options.cache_dir, else default_cache_dir(); also
// with CacheMode::Off) by hf_dir_to_cached_gguf below, then loaded (LoadReport::hf_gguf names the
// conversion). Throws what ModelWeights::load and the conversion throw.
std::unique_ptr<ModelWeights> load_weights(const std::string& path, const LoadOptions& options);

struct HfCachedGguf {
  std::string path;        // <cache_dir>/<dir name>.<hash of the absolute dir path>.gguf
  bool converted = false;  // written by this call (it was absent, stale or unreadable)
};

// Converts the checkpoint in `dir` with the default HfConvertOptions (I2_S linears, F16
// embeddings) into `cache_dir` (created when missing) unless the GGUF there is current: it
// carries kHfSourceStampKey, a hash of the absolute directory path, a converter version and the
// name, size and modification time of config.json, the safetensors shards and index, and the
// tokenizer files. One file per directory: a stale conversion is replaced in place (through a
// temporary file and a rename, so a reader never sees a partial file), never accumulated.
// Prints nothing. Throws what HfCheckpoint::open and add_hf_checkpoint throw, and
// std::runtime_error naming the path for I/O failures.
HfCachedGguf hf_dir_to_cached_gguf(const std::string& dir, const std::string& cache_dir);

}  // namespace bitnet::model
