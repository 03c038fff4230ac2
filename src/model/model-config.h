// Hyper-parameters of a BitNet b1.58 model and the tensors its architecture needs, read from and
// written to GGUF metadata (keys per ../shared/SPEC.md: "<arch>.embedding_length", ...).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"

namespace bitnet::model {

enum class Arch {
  BitNetB158,  // "bitnet-b1.58" (older files: "bitnet-25"): 2B4T graph, ReLU^2 FFN, GQA
  BitNet,      // "bitnet": 1bitLLM bitnet_b1_58 graph, SiLU FFN, optional per-linear .scale
  Llama,       // "llama" with ternary linears (llama.cpp's TQ1_0/TQ2_0 conversions of
               // Llama3-8B-1.58 and the like): SiLU FFN, sub-norms only if the file has them,
               // NORM rope on Q/K rows that the converter permuted
};
enum class FfnActivation { Relu2, Silu };
// Neox rotates the pairs (i, i + d/2) of each head (bitnet archs: Q/K not permuted); Norm rotates
// adjacent pairs (2i, 2i + 1) (llama.cpp's "llama" files, whose Q/K rows were permuted so that
// this matches the original model's rotate-half).
enum class RopeStyle { Neox, Norm };

const char* arch_name(Arch arch);  // the name written to general.architecture
// The architecture of a general.architecture value ("bitnet-25" is BitNetB158), or nullopt for
// one this build does not run ("llama", ...).
std::optional<Arch> arch_from_name(std::string_view name);
inline constexpr const char* kKnownArchNames = "bitnet-b1.58, bitnet-25, bitnet, llama (ternary)";

// The longest context_length accepted (2^24 positions; real BitNet models have 4096): a larger
// value is a corrupt header, refused before any buffer is sized by it.
inline constexpr int64_t kMaxContextLength = int64_t{1} << 24;

struct ModelConfig {
  Arch arch = Arch::BitNetB158;
  std::string arch_key;     // prefix of the metadata keys as found in the file ("bitnet-25")
  int64_t n_embd = 0;       // embedding_length
  int64_t n_layer = 0;      // block_count
  int64_t n_head = 0;       // attention.head_count
  int64_t n_head_kv = 0;    // attention.head_count_kv (defaults to n_head)
  int64_t n_ff = 0;         // feed_forward_length
  int64_t n_vocab = 0;      // vocab_size, else the token_embd / tokenizer size
  int64_t n_ctx_train = 0;  // context_length
  int64_t head_dim = 0;     // n_embd / n_head
  int64_t rope_dim = 0;     // rope.dimension_count (defaults to head_dim)
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  FfnActivation activation = FfnActivation::Relu2;
  bool tied_output = true;  // no output.weight: the LM head is token_embd
  bool sub_norms = true;    // attn_sub_norm / ffn_sub_norm present (always for the bitnet archs)
  RopeStyle rope_style = RopeStyle::Neox;

  int64_t n_embd_kv() const { return head_dim * n_head_kv; }
};

// Reads general.architecture and the <arch>.* keys. Throws std::invalid_argument naming the file
// and the key (or the unknown architecture, listing the known ones) when something is missing or
// inconsistent (n_embd not divisible by n_head, n_head not a multiple of n_head_kv, ...).
ModelConfig read_model_config(const formats::GgufFile& file);

// Writes general.architecture and the <arch>.* keys (the inverse of read_model_config).
void write_model_config(const ModelConfig& config, formats::GgufWriter& writer);

// One tensor the architecture expects: ggml dims (ne0 first), whether its values must be ternary
// (the seven linear kinds), whether it may be absent.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> dims;
  bool ternary = false;
  bool optional = false;
};

// Every tensor of the architecture, in file order: token_embd, per layer blk.N.{attn_norm, attn_q,
// attn_k, attn_v, attn_sub_norm, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_sub_norm,
// ffn_down} (+ optional blk.N.<linear>.scale [1] for arch bitnet), output_norm, optional output.
std::vector<TensorSpec> expected_tensors(const ModelConfig& config);

// Problems found comparing the file's tensors with expected_tensors: missing, wrong shape, a type
// not allowed for that tensor, unexpected extra tensors. Empty when the file is valid. Each entry
// names the tensor and expected vs found.
std::vector<std::string> validate_tensors(const ModelConfig& config, const formats::GgufFile& file);

// Bytes a decode step reads from the file's weights: every ternary linear as stored, the output
// matrix (token_embd when tied) and the norms. The embedding lookup reads one row and is ignored.
uint64_t bytes_per_token(const ModelConfig& config, const formats::GgufFile& file);

}  // namespace bitnet::model
