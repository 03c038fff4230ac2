// A Hugging Face BitNet checkpoint directory (config.json + safetensors shards) seen as the GGUF
// tensors of this engine's architectures, read lazily tensor by tensor from the mapped shards.
//
// Recognised configs (SPEC.md "Hugging Face checkpoints"):
//   BitNetForCausalLM   microsoft/bitnet-b1.58-2B-4T: hidden_act relu2 -> arch bitnet-b1.58.
//   BitnetForCausalLM   1bitLLM bitnet_b1_58-*: SiLU -> arch bitnet.
//   LlamaForCausalLM    with quantization_config.quant_method "bitnet" (Falcon3-*-1.58bit): SiLU ->
//                       arch bitnet when it has attn_sub_norm / ffn_sub_norm, else arch llama
//                       (no sub-norms, NORM rope on Q/K rows the converter permutes, as llama.cpp
//                       converts such models).
// Linear weights come in two encodings, told apart per tensor by dtype:
//   U8  packed [out/4, in]: 2-bit field k (bits 2k..2k+1) of packed[r][c] holds W[k*out/4 +
//   r][c]+1,
//       with <name>.weight_scale ([1] or scalar). quantization_config.linear_class "autobitlinear"
//       multiplies the output by weight_scale; transformers' BitLinear (any other or no
//       linear_class) divides by it, so the GGUF scale is then 1 / weight_scale.
//   BF16, F16, F32 master weights [out, in]: ternarised per tensor with absmean,
//       scale = max(mean|W|, 1e-5), W_t = clamp(round_half_even(W / scale), -1, 1) (the 1e-5 floor
//       is BitNet's reference quantizer's, and keeps an all-zero tensor finite).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "model/model-config.h"

namespace bitnet::model {

enum class HfTensorRole {
  Linear,     // ternary: codes [out][in] + one scale
  Norm,       // RMSNorm weight [n]
  Embedding,  // token_embd / output [n_vocab][n_embd]
};

struct HfTensor {
  std::string name;           // GGUF name, "blk.0.attn_q.weight"
  std::string source;         // HF name, "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> dims;  // ggml dims, ne0 first: linear {in, out}, embedding {n_embd, n_vocab}
  HfTensorRole role = HfTensorRole::Norm;

  int64_t rows() const { return dims.size() > 1 ? dims[1] : 1; }
};

class HfCheckpoint {
 public:
  // Reads dir/config.json and opens the shards (formats::SafetensorsCheckpoint::open_dir). Throws
  // std::invalid_argument (config or tensor set not convertible; the message names the file, key
  // or tensor and expected vs found) or formats::SafetensorsError.
  static HfCheckpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const std::string& hf_architecture() const { return hf_arch_; }  // "BitNetForCausalLM", ...
  const ModelConfig& config() const { return config_; }
  bool scale_divides() const { return scale_divides_; }  // see the header comment
  // The GGUF tensors, in expected_tensors order (no per-linear .scale tensors: the scale is
  // carried by the ternary encoding).
  const std::vector<HfTensor>& tensors() const { return tensors_; }
  const formats::SafetensorsCheckpoint& safetensors() const { return st_; }

  // Ternary codes of a Linear tensor into codes (out * in, row-major [out][in]); returns the
  // per-tensor scale to multiply the output by. Throws std::invalid_argument naming the tensor on
  // a packed code of 3, a non-finite master weight or a bad weight_scale.
  float read_ternary(const HfTensor& t, std::span<int8_t> codes) const;
  // Row `row` (dims[0] values) of a Norm or Embedding tensor as float.
  void read_row(const HfTensor& t, int64_t row, float* dst) const;

 private:
  std::string dir_;
  std::string hf_arch_;
  ModelConfig config_;
  bool scale_divides_ = false;
  bool has_quant_config_ = false;
  std::vector<HfTensor> tensors_;
  formats::SafetensorsCheckpoint st_;
};

}  // namespace bitnet::model
