// A BitNet model's weights, ready for the kernels.
//
// Ternary linears are decoded from whatever the file holds (I2_S, TQ1_0, TQ2_0, F32/F16/BF16 with
// the scale folded in) and packed into the kernel layout, with one scale per output row. Q|K|V
// are packed as one matrix (rows q, then k, then v) and gate|up as another, so each needs one
// quantization of its input and one matmul; arch bitnet's per-linear .scale tensors are folded
// into the row scales. Norms and the embedding stay in the file's bytes and are used in place.
//
// Packing costs seconds on large models, so the packed matrices can be kept in a prepared-model
// cache file (prepared-cache.h): the next load maps it and uses it in place instead of repacking.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/thread-pool.h"
#include "formats/gguf.h"
#include "kernels/ternary-matmul.h"
#include "model/model-config.h"

namespace bitnet::model {

// A linear layer: the packed matrix W[n][k] and its per-row scales, either owned or inside a
// mapped prepared-cache file.
struct PackedLinear {
  std::string name;  // e.g. "blk.3.attn_qkv"
  kernels::TernaryMatrixView view;
  kernels::TernaryMatrix owned;  // empty when the view points into a cache mapping
};

// A non-ternary tensor used in place (norm weights, embedding, output matrix).
struct RawTensor {
  const formats::GgufTensorInfo* info = nullptr;  // type, dims and data pointer into the file
  const float* f32() const;                       // data as floats; only for F32 tensors
};

struct LayerWeights {
  std::vector<float> attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm;  // F32 copies (small);
                                                                        // sub-norms empty when
                                                                        // the model has none
  PackedLinear qkv;       // [n_embd + 2 n_embd_kv][n_embd]
  PackedLinear attn_out;  // [n_embd][n_embd]
  PackedLinear gate_up;   // [2 n_ff][n_embd] (gate rows, then up rows)
  PackedLinear down;      // [n_embd][n_ff]
};

enum class CacheMode { Auto, On, Off };

struct LoadOptions {
  // Layout for the packed linears; nullopt picks by kernels: T1 (1.6 bits) where the active
  // kernels decode it at memory speed (AVX-512 VNNI), else T2.
  std::optional<kernels::TernaryLayout> layout;
  // Prepared-model cache: Auto uses it when the ternary weights exceed cache_min_bytes.
  CacheMode cache = CacheMode::Auto;
  uint64_t cache_min_bytes = uint64_t{64} << 20;
  // Prepared caches and converted Hugging Face directories.
  std::string cache_dir;  // empty: $BITNET_CACHE_DIR, else $XDG_CACHE_HOME/bitnet-cxx, else
                          // ~/.cache/bitnet-cxx
  size_t mmap_threshold = formats::MappedFile::kDefaultMmapThreshold;
  // The LM head as int8 with one scale per row (kernels::Int8Matrix), quantized at load from the
  // output matrix in whatever type the file stores it; used when activations are quantized. Lossy
  // (not the file's head): opt-in, its KL divergence in docs/PERFORMANCE.md. It reads one byte
  // per weight and runs on the integer units; the file's matrix stays for the embedding lookup.
  bool int8_head = false;
  // Threads for the load-time work (value checks, packing); 0: all hardware threads.
  int threads = 0;
  // Called while ternary weights are packed (not on a prepared-cache hit): layers done of total,
  // from one thread at a time, the last call with done == total.
  std::function<void(int64_t done, int64_t total)> on_pack_progress;
};

// How the last load went (for the CLI, tests and load-time measurements).
struct LoadReport {
  enum class Source { Packed, CacheHit, CacheRebuilt } source = Source::Packed;
  std::string cache_path;    // empty when no cache was involved
  std::string cache_reason;  // why a cache was (re)built or skipped
  double seconds = 0;        // conversion of a Hugging Face directory included
  uint64_t packed_bytes = 0;
  std::string hf_gguf;        // the converted GGUF when a Hugging Face directory was loaded
  bool hf_converted = false;  // converted by this load (absent or stale before)
};

class ModelWeights;
// The LM head as the kernels use it: the output matrix's GGUF type name ("F16", "Q6_K"), or
// "int8 (from F16)" with LoadOptions::int8_head.
std::string lm_head_name(const ModelWeights& w);

class ModelWeights {
 public:
  // Opens the GGUF file, validates it against its architecture (throws std::invalid_argument
  // listing the problems, naming the file) and prepares every tensor. (Hugging Face directories
  // are converted first by convert/hf-convert.h: load_weights.)
  static std::unique_ptr<ModelWeights> load(const std::string& path,
                                            const LoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const formats::GgufFile& file() const { return file_; }
  kernels::TernaryLayout layout() const { return layout_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  const RawTensor& token_embd() const { return token_embd_; }
  const RawTensor& output() const { return tied_ ? token_embd_ : output_; }  // the LM head
  const std::vector<float>& output_norm() const { return output_norm_; }
  // The int8 LM head (LoadOptions::int8_head), or null when it was not asked for.
  const kernels::Int8MatrixView* int8_head() const {
    return int8_head_view_.data ? &int8_head_view_ : nullptr;
  }
  size_t int8_head_bytes() const { return int8_head_.bytes(); }
  const LoadReport& report() const { return report_; }

  // Records that this GGUF is the conversion of a Hugging Face directory (LoadReport::hf_gguf).
  void note_conversion(std::string converted_gguf, bool converted_now);

  // Every packed linear, in file order (qkv, attn_out, gate_up, down per layer).
  std::vector<const PackedLinear*> linears() const;

 private:
  ModelWeights(formats::GgufFile file) : file_(std::move(file)) {}
  void pack_all(ThreadPool& pool, const LoadOptions& options);
  void quantize_int8_head(ThreadPool& pool);
  friend class PreparedCacheAccess;

  formats::GgufFile file_;
  ModelConfig config_;
  kernels::TernaryLayout layout_ = kernels::TernaryLayout::T2;
  std::vector<LayerWeights> layers_;
  RawTensor token_embd_, output_;
  bool tied_ = true;
  std::vector<float> output_norm_;
  kernels::Int8Matrix int8_head_;
  kernels::Int8MatrixView int8_head_view_;
  LoadReport report_;
  std::shared_ptr<const void> cache_mapping_;  // keeps a prepared-cache mapping alive
};

}  // namespace bitnet::model
