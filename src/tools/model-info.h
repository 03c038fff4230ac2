// Everything `bitnet inspect` reports about a GGUF model file, gathered without running it: the
// container (version, alignment, size), the hyper-parameters, the tokenizer keys, every tensor,
// totals, bytes read per generated token and the validation verdict. A file whose architecture this
// build does not run (a vocab-only tokenizer GGUF with arch "llama") still yields its tokenizer and
// tensors; the verdict then says why it is not a runnable model.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "model/model-config.h"

namespace bitnet::model {

struct SpecialToken {
  std::string role;  // "bos", "eos", "eot", "unk", "pad"
  int64_t id = 0;    // tokenizer.ggml.{bos,eos,eot}_token_id, unknown_token_id, padding_token_id
  std::optional<std::string> text;  // absent when the id is outside tokenizer.ggml.tokens
};

struct TokenizerSummary {
  std::optional<std::string> model;   // tokenizer.ggml.model ("gpt2", "llama")
  std::optional<std::string> pre;     // tokenizer.ggml.pre ("llama-bpe")
  int64_t n_tokens = 0;               // tokenizer.ggml.tokens
  int64_t n_merges = 0;               // tokenizer.ggml.merges
  std::vector<SpecialToken> special;  // those present, in the order bos, eos, eot, unk, pad
  std::optional<bool> add_bos, add_eos;
  bool has_chat_template = false;

  bool present() const { return model.has_value() || n_tokens > 0; }
};

struct TensorSummary {
  std::string name;
  uint32_t type = 0;
  std::vector<int64_t> dims;  // ne0 first
  uint64_t n_elements = 0;
  uint64_t bytes = 0;    // as stored (I2_S includes its 32-byte trailer)
  bool ternary = false;  // one of the seven linear kinds (known only with a config)
};

struct TypeTotal {
  uint32_t type = 0;
  int64_t n_tensors = 0;
  uint64_t n_elements = 0;
  uint64_t bytes = 0;
};

struct ModelInfo {
  std::string path;
  uint32_t gguf_version = 0;
  uint32_t alignment = 0;
  uint64_t file_size = 0;
  uint64_t data_offset = 0;
  bool mapped = false;
  int64_t n_metadata = 0;
  std::optional<std::string> name;       // general.name
  std::optional<uint32_t> file_type;     // general.file_type (llama.cpp's LLAMA_FTYPE numbering)
  std::optional<std::string> arch_name;  // general.architecture as written
  bool arch_supported = false;           // arch_name is one this build runs
  std::optional<ModelConfig> config;     // when read_model_config succeeded
  std::string config_error;              // its message otherwise
  TokenizerSummary tokenizer;
  std::vector<TensorSummary> tensors;  // file order
  std::vector<TypeTotal> by_type;      // ascending type id
  uint64_t n_parameters = 0;
  uint64_t tensor_bytes = 0;
  std::optional<uint64_t> n_ternary_parameters;  // with a config
  std::optional<uint64_t> bytes_per_token;       // with a config
  std::vector<std::string> problems;             // empty when the file is a valid model

  bool valid() const { return problems.empty(); }
};

// Never throws for a file that parsed: a configuration error becomes config_error and a problem.
ModelInfo gather_model_info(const formats::GgufFile& file);

// "mostly I2_S" for the general.file_type values of the formats this engine reads, else nullopt.
std::optional<std::string> file_type_name(uint32_t file_type);

// The same content as one JSON object (keys documented in the implementation's first comment).
nlohmann::ordered_json model_info_json(const ModelInfo& info);

}  // namespace bitnet::model
