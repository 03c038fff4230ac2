// JSON layout of model_info_json:
//   file: {path, size, gguf_version, alignment, data_offset, mapped, metadata_keys}
//   name, file_type, file_type_name (null when absent/unknown)
//   architecture (null when absent), architecture_supported, config (null when unreadable),
//   config_error (only when config is null and an architecture is named)
//   tokenizer: {model, pre, tokens, merges, special: {bos: {id, text}, ...}, add_bos, add_eos,
//               chat_template} (absent values are null)
//   tensors: [{name, type, dims, elements, bytes, ternary}]
//   totals: {tensors, parameters, ternary_parameters, bytes, by_type: {F16: {tensors, elements,
//            bytes}, ...}}
//   bytes_per_token (null without a config), valid, problems
#include "tools/model-info.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <thread>
#include <utility>

#include "formats/ggml-types.h"
#include "model/model-validate.h"

namespace bitnet::model {
namespace {

using formats::GgufFile;
using formats::GgufValue;

// An integer key of any integer type (converters disagree on u32 vs i32), or nullopt when absent.
// A value of another type is reported as a problem and treated as absent.
std::optional<int64_t> find_int(const GgufFile& f, const std::string& key,
                                std::vector<std::string>& problems) {
  const GgufValue* v = f.find(key);
  if (!v) return std::nullopt;
  if (const auto i = v->as_integer()) return i;
  problems.push_back("metadata key '" + key + "': expected an integer, found " +
                     v->type_description());
  return std::nullopt;
}

template <class T>
std::optional<T> find_typed(const GgufFile& f, const std::string& key,
                            std::vector<std::string>& problems) {
  const GgufValue* v = f.find(key);
  if (!v) return std::nullopt;
  if (v->is<T>()) return v->as<T>();
  problems.push_back("metadata key '" + key + "': expected " +
                     formats::gguf_type_name(formats::GgufTypeOf<T>::value) + ", found " +
                     v->type_description());
  return std::nullopt;
}

// Length of an array key, or 0 when absent (a non-array is reported as a problem).
int64_t array_length(const GgufFile& f, const std::string& key,
                     std::vector<std::string>& problems) {
  const GgufValue* v = f.find(key);
  if (!v) return 0;
  if (v->is_array()) return static_cast<int64_t>(v->array_size());
  problems.push_back("metadata key '" + key + "': expected an array, found " +
                     v->type_description());
  return 0;
}

TokenizerSummary read_tokenizer(const GgufFile& f, std::vector<std::string>& problems) {
  TokenizerSummary t;
  t.model = find_typed<std::string>(f, "tokenizer.ggml.model", problems);
  t.pre = find_typed<std::string>(f, "tokenizer.ggml.pre", problems);
  t.n_tokens = array_length(f, "tokenizer.ggml.tokens", problems);
  t.n_merges = array_length(f, "tokenizer.ggml.merges", problems);
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  const std::vector<std::string>* texts =
      tokens && tokens->is_array_of<std::string>() ? &tokens->as_array<std::string>() : nullptr;
  if (tokens && !texts) {
    problems.push_back("metadata key 'tokenizer.ggml.tokens': expected an array of STRING, found " +
                       tokens->type_description());
  }
  const std::pair<const char*, const char*> roles[] = {{"bos", "tokenizer.ggml.bos_token_id"},
                                                       {"eos", "tokenizer.ggml.eos_token_id"},
                                                       {"eot", "tokenizer.ggml.eot_token_id"},
                                                       {"unk", "tokenizer.ggml.unknown_token_id"},
                                                       {"pad", "tokenizer.ggml.padding_token_id"}};
  for (const auto& [role, key] : roles) {
    const auto id = find_int(f, key, problems);
    if (!id) continue;
    SpecialToken s{role, *id, std::nullopt};
    if (texts && *id >= 0 && static_cast<uint64_t>(*id) < texts->size()) {
      s.text = (*texts)[static_cast<size_t>(*id)];
    } else {
      problems.push_back(std::string(key) + " " + std::to_string(*id) + " is outside the " +
                         std::to_string(t.n_tokens) + " tokens");
    }
    t.special.push_back(std::move(s));
  }
  t.add_bos = find_typed<bool>(f, "tokenizer.ggml.add_bos_token", problems);
  t.add_eos = find_typed<bool>(f, "tokenizer.ggml.add_eos_token", problems);
  t.has_chat_template = f.has("tokenizer.chat_template");
  return t;
}

// A float as the shortest decimal that reads back to it (1e-05, not 9.99999974737875e-06).
double shortest_double(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf - 1, v);
  *r.ptr = '\0';
  return std::strtod(buf, nullptr);
}

nlohmann::ordered_json optional_json(const auto& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json config_json(const ModelConfig& c) {
  return {
      {"arch", arch_name(c.arch)},
      {"arch_key", c.arch_key},
      {"n_embd", c.n_embd},
      {"n_layer", c.n_layer},
      {"n_head", c.n_head},
      {"n_head_kv", c.n_head_kv},
      {"head_dim", c.head_dim},
      {"n_ff", c.n_ff},
      {"n_vocab", c.n_vocab},
      {"n_ctx_train", c.n_ctx_train},
      {"rope_dim", c.rope_dim},
      {"rope_freq_base", shortest_double(c.rope_freq_base)},
      {"rms_eps", shortest_double(c.rms_eps)},
      {"activation", c.activation == FfnActivation::Relu2 ? "relu2" : "silu"},
      {"tied_output", c.tied_output},
  };
}

}  // namespace

std::optional<std::string> file_type_name(uint32_t file_type) {
  switch (file_type) {
    case 0:
      return "all F32";
    case 1:
      return "mostly F16";
    case 7:
      return "mostly Q8_0";
    case 18:
      return "mostly Q6_K";
    case 32:
      return "mostly BF16";
    case 36:
      return "mostly TQ1_0";
    case 37:
      return "mostly TQ2_0";
    case 40:
      return "mostly I2_S";  // bitnet.cpp's LLAMA_FTYPE_MOSTLY_I2_S
    default:
      return std::nullopt;
  }
}

ModelInfo gather_model_info(const GgufFile& f) {
  ModelInfo info;
  info.path = f.path();
  info.gguf_version = f.version();
  info.alignment = f.alignment();
  info.file_size = f.file_size();
  info.data_offset = f.data_offset();
  info.mapped = f.is_mapped();
  info.n_metadata = static_cast<int64_t>(f.kvs().size());
  info.name = find_typed<std::string>(f, "general.name", info.problems);
  if (const auto ft = find_int(f, "general.file_type", info.problems)) {
    info.file_type = static_cast<uint32_t>(*ft);
  }
  info.arch_name = find_typed<std::string>(f, "general.architecture", info.problems);
  info.arch_supported = info.arch_name && arch_from_name(*info.arch_name).has_value();

  if (!info.arch_name) {
    info.config_error = "metadata key 'general.architecture' is missing";
  } else if (!info.arch_supported) {
    info.config_error =
        "architecture '" + *info.arch_name +
        "' is not a BitNet architecture this build runs (known: " + kKnownArchNames + ")";
  } else {
    try {
      info.config = read_model_config(f);
    } catch (const std::exception& e) {
      info.config_error = e.what();
    }
  }
  if (!info.config) info.problems.push_back(info.config_error);

  info.tokenizer = read_tokenizer(f, info.problems);

  std::vector<TensorSpec> specs;
  if (info.config) specs = expected_tensors(*info.config);
  std::map<std::string_view, bool> ternary_by_name;
  for (const TensorSpec& s : specs) ternary_by_name[s.name] = s.ternary;
  std::map<uint32_t, TypeTotal> by_type;
  uint64_t ternary_params = 0;
  for (const formats::GgufTensorInfo& t : f.tensors()) {
    TensorSummary s;
    s.name = t.name;
    s.type = t.type;
    s.dims.assign(t.dims.begin(), t.dims.begin() + t.n_dims);
    s.n_elements = static_cast<uint64_t>(t.n_elements());
    s.bytes = t.size;
    const auto it = ternary_by_name.find(t.name);
    s.ternary = it != ternary_by_name.end() && it->second;
    if (s.ternary) ternary_params += s.n_elements;
    TypeTotal& total = by_type[t.type];
    total.type = t.type;
    total.n_tensors += 1;
    total.n_elements += s.n_elements;
    total.bytes += s.bytes;
    info.n_parameters += s.n_elements;
    info.tensor_bytes += s.bytes;
    info.tensors.push_back(std::move(s));
  }
  for (const auto& [type, total] : by_type) info.by_type.push_back(total);

  if (info.config) {
    info.n_ternary_parameters = ternary_params;
    info.bytes_per_token = bytes_per_token(*info.config, f);
    const auto structure = validate_tensors(*info.config, f);
    for (const std::string& p : structure) info.problems.push_back(p);
    // The checks the engine makes when it loads the file, so that "valid" means it runs: every
    // value (ternary linears decoded as the loader decodes them) and the tokenizer.
    if (structure.empty()) {
      ThreadPool pool(resolve_threads(0));
      for (std::string& p : validate_tensor_values(*info.config, f, ValueCheck::All, &pool)) {
        info.problems.push_back(std::move(p));
      }
    }
    try {
      (void)load_model_tokenizer(f, *info.config);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (msg.rfind(f.path() + ": ", 0) == 0) msg.erase(0, f.path().size() + 2);
      info.problems.push_back("tokenizer: " + msg);
    }
  }
  return info;
}

nlohmann::ordered_json model_info_json(const ModelInfo& info) {
  using json = nlohmann::ordered_json;
  json tensors = json::array();
  for (const TensorSummary& t : info.tensors) {
    tensors.push_back({{"name", t.name},
                       {"type", formats::ggml_type_name(t.type)},
                       {"dims", t.dims},
                       {"elements", t.n_elements},
                       {"bytes", t.bytes},
                       {"ternary", t.ternary}});
  }
  json by_type = json::object();
  for (const TypeTotal& t : info.by_type) {
    by_type[formats::ggml_type_name(t.type)] = {
        {"tensors", t.n_tensors}, {"elements", t.n_elements}, {"bytes", t.bytes}};
  }
  json special = json::object();
  for (const SpecialToken& s : info.tokenizer.special) {
    special[s.role] = {{"id", s.id}, {"text", optional_json(s.text)}};
  }
  const TokenizerSummary& tok = info.tokenizer;
  json out = {
      {"file",
       {{"path", info.path},
        {"size", info.file_size},
        {"gguf_version", info.gguf_version},
        {"alignment", info.alignment},
        {"data_offset", info.data_offset},
        {"mapped", info.mapped},
        {"metadata_keys", info.n_metadata}}},
      {"name", optional_json(info.name)},
      {"file_type", optional_json(info.file_type)},
      {"file_type_name",
       info.file_type ? optional_json(file_type_name(*info.file_type)) : json(nullptr)},
      {"architecture", optional_json(info.arch_name)},
      {"architecture_supported", info.arch_supported},
      {"config", info.config ? config_json(*info.config) : json(nullptr)},
      {"tokenizer",
       {{"model", optional_json(tok.model)},
        {"pre", optional_json(tok.pre)},
        {"tokens", tok.n_tokens},
        {"merges", tok.n_merges},
        {"special", special},
        {"add_bos", optional_json(tok.add_bos)},
        {"add_eos", optional_json(tok.add_eos)},
        {"chat_template", tok.has_chat_template}}},
      {"tensors", tensors},
      {"totals",
       {{"tensors", info.tensors.size()},
        {"parameters", info.n_parameters},
        {"ternary_parameters", optional_json(info.n_ternary_parameters)},
        {"bytes", info.tensor_bytes},
        {"by_type", by_type}}},
      {"bytes_per_token", optional_json(info.bytes_per_token)},
      {"valid", info.valid()},
      {"problems", info.problems},
  };
  if (!info.config && info.arch_name) out["config_error"] = info.config_error;
  return out;
}

}  // namespace bitnet::model
