#include "model/model-config.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "formats/ggml-types.h"

namespace bitnet::model {
namespace {

using formats::GgmlType;
using formats::GgufFile;
using formats::GgufValue;

[[noreturn]] void fail(const GgufFile& f, const std::string& what) {
  throw std::invalid_argument(f.path() + ": " + what);
}

// Integer metadata of any integer GGUF type (converters disagree on u32 vs i32 vs u64).
std::optional<int64_t> find_int(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (!v) return std::nullopt;
  if (const auto i = v->as_integer()) return i;
  fail(f, "metadata key '" + key + "': expected an integer, found " + v->type_description());
}

int64_t need_int(const GgufFile& f, const std::string& key) {
  const auto v = find_int(f, key);
  if (!v) fail(f, "metadata key '" + key + "' is missing");
  if (*v <= 0)
    fail(f, "metadata key '" + key + "': expected a positive value, found " + std::to_string(*v));
  return *v;
}

std::optional<float> find_float(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (!v) return std::nullopt;
  if (v->is<float>()) return v->as<float>();
  if (v->is<double>()) return static_cast<float>(v->as<double>());
  fail(f, "metadata key '" + key + "': expected a float, found " + v->type_description());
}

bool is_float_type(uint32_t t) {
  return t == static_cast<uint32_t>(GgmlType::F32) || t == static_cast<uint32_t>(GgmlType::F16) ||
         t == static_cast<uint32_t>(GgmlType::BF16);
}
bool is_ternary_type(uint32_t t) {
  return is_float_type(t) || t == static_cast<uint32_t>(GgmlType::I2_S) ||
         t == static_cast<uint32_t>(GgmlType::TQ1_0) || t == static_cast<uint32_t>(GgmlType::TQ2_0);
}
bool is_embedding_type(uint32_t t) {
  return is_float_type(t) || t == static_cast<uint32_t>(GgmlType::Q8_0) ||
         t == static_cast<uint32_t>(GgmlType::Q6_K);
}

std::string float_text(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return buf;
}

std::string dims_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::BitNetB158:
      return "bitnet-b1.58";
    case Arch::BitNet:
      return "bitnet";
    case Arch::Llama:
      return "llama";
  }
  return "?";
}

std::optional<Arch> arch_from_name(std::string_view name) {
  if (name == "bitnet-b1.58" || name == "bitnet-25") return Arch::BitNetB158;
  if (name == "bitnet") return Arch::BitNet;
  if (name == "llama") return Arch::Llama;
  return std::nullopt;
}

ModelConfig read_model_config(const GgufFile& f) {
  const auto arch = f.find_string("general.architecture");
  if (!arch) fail(f, "metadata key 'general.architecture' is missing");
  ModelConfig c;
  c.arch_key = *arch;
  const std::optional<Arch> known = arch_from_name(*arch);
  if (!known) {
    fail(f, "unknown architecture '" + *arch +
                "' in general.architecture (known: " + kKnownArchNames + ")");
  }
  c.arch = *known;
  c.activation = c.arch == Arch::BitNetB158 ? FfnActivation::Relu2 : FfnActivation::Silu;
  if (c.arch == Arch::Llama) {
    c.rope_style = RopeStyle::Norm;
    c.sub_norms = f.find_tensor("blk.0.attn_sub_norm.weight") != nullptr;
  }
  const std::string p = *arch + ".";
  c.n_embd = need_int(f, p + "embedding_length");
  c.n_layer = need_int(f, p + "block_count");
  // Every layer has at least 9 tensors (norms, q, k, v, output, gate, up, down): a block count the
  // file cannot hold is refused here, before anything is sized by it. (A file without tensors is
  // metadata only: validate_tensors says so in one line.)
  constexpr int64_t kMinTensorsPerLayer = 9;
  const auto n_tensors = static_cast<int64_t>(f.tensors().size());
  if (n_tensors > 0 && c.n_layer > n_tensors / kMinTensorsPerLayer) {
    fail(f, "metadata key '" + p + "block_count' is " + std::to_string(c.n_layer) +
                " but the file holds only " + std::to_string(n_tensors) +
                " tensors (each layer needs at least " + std::to_string(kMinTensorsPerLayer) + ")");
  }
  c.n_head = need_int(f, p + "attention.head_count");
  c.n_head_kv = find_int(f, p + "attention.head_count_kv").value_or(c.n_head);
  c.n_ff = need_int(f, p + "feed_forward_length");
  c.n_ctx_train = need_int(f, p + "context_length");
  if (c.n_ctx_train > kMaxContextLength) {
    fail(f, "metadata key '" + p + "context_length' is " + std::to_string(c.n_ctx_train) +
                ", above the " + std::to_string(kMaxContextLength) +
                " positions this build supports");
  }
  if (c.n_embd % c.n_head != 0) {
    fail(f, p + "embedding_length " + std::to_string(c.n_embd) +
                " is not a multiple of attention.head_count " + std::to_string(c.n_head));
  }
  if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0) {
    fail(f, p + "attention.head_count " + std::to_string(c.n_head) +
                " is not a multiple of attention.head_count_kv " + std::to_string(c.n_head_kv));
  }
  c.head_dim = c.n_embd / c.n_head;
  c.rope_dim = find_int(f, p + "rope.dimension_count").value_or(c.head_dim);
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) {
    fail(f, p + "rope.dimension_count: expected an even value in 2.." + std::to_string(c.head_dim) +
                ", found " + std::to_string(c.rope_dim));
  }
  c.rope_freq_base = find_float(f, p + "rope.freq_base").value_or(10000.0f);
  // Plain RoPE only: a file asking for scaled RoPE (llama.cpp's rope.scaling.* keys, or Llama
  // 3.1's rope_freqs tensor) is refused rather than run with the wrong positions.
  const auto scaling = f.find_string(p + "rope.scaling.type");
  const auto factor = find_float(f, p + "rope.scaling.factor");
  // "linear" with factor 1 (or 0, llama.cpp's "unset") is plain RoPE and passes.
  if ((scaling && *scaling != "none" && *scaling != "linear") ||
      (factor && *factor != 1.0f && *factor != 0.0f) || f.find_tensor("rope_freqs.weight")) {
    fail(f, "scaled RoPE (" + p + "rope.scaling.type " + (scaling ? *scaling : "absent") +
                ", factor " + (factor ? float_text(*factor) : "absent") +
                (f.find_tensor("rope_freqs.weight") ? ", tensor rope_freqs.weight" : "") +
                ") is not supported: plain RoPE only");
  }
  c.rms_eps = find_float(f, p + "attention.layer_norm_rms_epsilon").value_or(1e-5f);
  if (!(std::isfinite(c.rope_freq_base) && c.rope_freq_base > 0.0f)) {
    fail(f, "metadata key '" + p + "rope.freq_base' must be finite and positive, found " +
                float_text(c.rope_freq_base));
  }
  if (!(std::isfinite(c.rms_eps) && c.rms_eps > 0.0f)) {
    fail(f, "metadata key '" + p + "attention.layer_norm_rms_epsilon' must be finite and " +
                "positive, found " + float_text(c.rms_eps));
  }
  const formats::GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (const auto vocab = find_int(f, p + "vocab_size")) {
    c.n_vocab = *vocab;
  } else if (embd) {
    c.n_vocab = embd->dims[1];
  } else if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens")) {
    c.n_vocab = static_cast<int64_t>(tokens->array_size());
  } else {
    fail(f, "cannot tell the vocabulary size: no " + p + "vocab_size, token_embd or tokenizer");
  }
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  return c;
}

void write_model_config(const ModelConfig& c, formats::GgufWriter& w) {
  const std::string p = std::string(arch_name(c.arch)) + ".";
  // The keys are uint32 in GGUF: a value outside [0, 2^32) is refused rather than wrapped.
  auto u32 = [&](const char* key, int64_t v) {
    if (v < 0 || v > int64_t{UINT32_MAX}) {
      throw std::invalid_argument("model config: " + p + key + " = " + std::to_string(v) +
                                  " does not fit the file's uint32");
    }
    w.set(p + key, static_cast<uint32_t>(v));
  };
  w.set("general.architecture", std::string(arch_name(c.arch)));
  u32("context_length", c.n_ctx_train);
  u32("embedding_length", c.n_embd);
  u32("block_count", c.n_layer);
  u32("feed_forward_length", c.n_ff);
  u32("attention.head_count", c.n_head);
  u32("attention.head_count_kv", c.n_head_kv);
  w.set(p + "attention.layer_norm_rms_epsilon", c.rms_eps);
  w.set(p + "rope.freq_base", c.rope_freq_base);
  u32("rope.dimension_count", c.rope_dim);
  u32("vocab_size", c.n_vocab);
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
  const int64_t E = c.n_embd, KV = c.n_embd_kv(), F = c.n_ff;
  std::vector<TensorSpec> out;
  out.push_back({"token_embd.weight", {E, c.n_vocab}, false, false});
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    auto linear = [&](const char* name, int64_t in, int64_t outd) {
      out.push_back({b + name + ".weight", {in, outd}, true, false});
      if (c.arch == Arch::BitNet) out.push_back({b + name + ".scale", {1}, false, true});
    };
    out.push_back({b + "attn_norm.weight", {E}, false, false});
    linear("attn_q", E, E);
    linear("attn_k", E, KV);
    linear("attn_v", E, KV);
    if (c.sub_norms) out.push_back({b + "attn_sub_norm.weight", {E}, false, false});
    linear("attn_output", E, E);
    out.push_back({b + "ffn_norm.weight", {E}, false, false});
    linear("ffn_gate", E, F);
    linear("ffn_up", E, F);
    if (c.sub_norms) out.push_back({b + "ffn_sub_norm.weight", {F}, false, false});
    linear("ffn_down", F, E);
  }
  out.push_back({"output_norm.weight", {E}, false, false});
  out.push_back({"output.weight", {E, c.n_vocab}, false, true});
  return out;
}

std::vector<std::string> validate_tensors(const ModelConfig& c, const GgufFile& f) {
  std::vector<std::string> problems;
  if (f.tensors().empty()) {
    problems.push_back(
        "holds no tensors (a vocabulary-only GGUF?): not a model this build can run");
    return problems;
  }
  const auto specs = expected_tensors(c);
  for (const TensorSpec& s : specs) {
    const formats::GgufTensorInfo* t = f.find_tensor(s.name);
    if (!t) {
      if (!s.optional) problems.push_back("tensor '" + s.name + "' is missing");
      continue;
    }
    std::vector<int64_t> found(t->dims.begin(), t->dims.begin() + t->n_dims);
    if (found != s.dims) {
      problems.push_back("tensor '" + s.name + "': expected shape " + dims_text(s.dims) +
                         ", found " + dims_text(found));
    }
    const bool is_linear = s.ternary;
    const bool is_embd = s.name == "token_embd.weight" || s.name == "output.weight";
    const bool ok_type =
        is_linear ? is_ternary_type(t->type)
        : is_embd ? is_embedding_type(t->type)
                  : t->type == static_cast<uint32_t>(GgmlType::F32) || is_float_type(t->type);
    if (!ok_type) {
      problems.push_back("tensor '" + s.name + "': type " + formats::ggml_type_name(t->type) +
                         " is not supported there (expected " +
                         (is_linear ? "F32, F16, BF16, I2_S, TQ1_0 or TQ2_0"
                          : is_embd ? "F32, F16, BF16, Q8_0 or Q6_K"
                                    : "F32, F16 or BF16") +
                         ")");
    }
  }
  for (const auto& t : f.tensors()) {
    bool known = false;
    for (const TensorSpec& s : specs) known = known || s.name == t.name;
    if (!known)
      problems.push_back("tensor '" + t.name + "' is not part of architecture " + c.arch_key);
  }
  return problems;
}

uint64_t bytes_per_token(const ModelConfig& c, const GgufFile& f) {
  uint64_t total = 0;
  for (const TensorSpec& s : expected_tensors(c)) {
    if (s.name == "token_embd.weight" && !c.tied_output) continue;  // one row per token
    if (const formats::GgufTensorInfo* t = f.find_tensor(s.name)) total += t->size;
  }
  return total;
}

}  // namespace bitnet::model
