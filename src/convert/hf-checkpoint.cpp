#include "convert/hf-checkpoint.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>

namespace bitnet::model {
namespace {

using formats::SafetensorsDtype;
using formats::SafetensorsTensor;
using nlohmann::json;

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::invalid_argument(where + ": " + what);
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t config_int(const json& c, const std::string& file, const char* key,
                   std::optional<int64_t> fallback = std::nullopt) {
  const auto it = c.find(key);
  if (it == c.end() || it->is_null()) {
    if (fallback) return *fallback;
    fail(file, "key '" + std::string(key) + "' is missing");
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
    fail(file, "key '" + std::string(key) + "': expected a positive integer, found " + it->dump());
  }
  return it->get<int64_t>();
}

float config_float(const json& c, const std::string& file, const char* key, float fallback) {
  const auto it = c.find(key);
  if (it == c.end() || it->is_null()) return fallback;
  if (!it->is_number() || !(it->get<double>() > 0.0)) {
    fail(file, "key '" + std::string(key) + "': expected a positive number, found " + it->dump());
  }
  return static_cast<float>(it->get<double>());
}

std::string config_string(const json& c, const char* key, const std::string& fallback) {
  const auto it = c.find(key);
  return it != c.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// Ternarises master weights with absmean (see hf-checkpoint.h).
float absmean_ternarise(const SafetensorsTensor& t, const std::string& gguf_name, int64_t rows,
                        int64_t cols, std::span<int8_t> codes) {
  std::vector<float> row(static_cast<size_t>(cols));
  double sum = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    formats::safetensors_to_f32(t, r * cols, cols, row.data());
    for (int64_t c = 0; c < cols; ++c) {
      const float v = row[static_cast<size_t>(c)];
      if (!std::isfinite(v)) {
        fail(t.file, "tensor '" + t.name + "' (" + gguf_name + "): non-finite weight at row " +
                         std::to_string(r) + ", column " + std::to_string(c));
      }
      sum += std::fabs(static_cast<double>(v));
    }
  }
  const float scale = std::max(static_cast<float>(sum / static_cast<double>(rows * cols)), 1e-5f);
  for (int64_t r = 0; r < rows; ++r) {
    formats::safetensors_to_f32(t, r * cols, cols, row.data());
    int8_t* out = codes.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const float q = std::nearbyint(row[static_cast<size_t>(c)] / scale);
      out[c] = static_cast<int8_t>(std::clamp(q, -1.0f, 1.0f));
    }
  }
  return scale;
}

}  // namespace

HfCheckpoint HfCheckpoint::open(const std::string& dir) {
  namespace fs = std::filesystem;
  HfCheckpoint ck;
  ck.dir_ = dir;
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  std::ifstream in(cfg_path, std::ios::binary);
  if (!in) fail(cfg_path, "cannot be read (an HF checkpoint directory needs config.json)");
  json cfg;
  try {
    cfg = json::parse(
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  } catch (const json::exception& e) {
    fail(cfg_path, std::string("not valid JSON: ") + e.what());
  }
  if (!cfg.is_object()) fail(cfg_path, "expected a JSON object");

  const auto archs = cfg.find("architectures");
  if (archs == cfg.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    fail(cfg_path, "key 'architectures': expected a list of model class names");
  }
  ck.hf_arch_ = (*archs)[0].get<std::string>();
  const auto qc = cfg.find("quantization_config");
  ck.has_quant_config_ = qc != cfg.end() && qc->is_object();
  const std::string quant_method =
      ck.has_quant_config_ ? config_string(*qc, "quant_method", "") : "";
  const std::string linear_class =
      ck.has_quant_config_ ? config_string(*qc, "linear_class", "") : "";
  if (ck.has_quant_config_ && quant_method != "bitnet") {
    fail(cfg_path,
         "quantization_config.quant_method: expected 'bitnet', found '" + quant_method + "'");
  }
  ck.scale_divides_ = linear_class != "autobitlinear";

  std::string default_act;
  if (ck.hf_arch_ == "BitNetForCausalLM") {
    default_act = "relu2";
  } else if (ck.hf_arch_ == "BitnetForCausalLM") {
    default_act = "silu";
  } else if (ck.hf_arch_ == "LlamaForCausalLM") {
    if (!ck.has_quant_config_) {
      fail(cfg_path,
           "LlamaForCausalLM without a bitnet quantization_config is not a ternary model");
    }
    default_act = "silu";
  } else {
    fail(cfg_path, "architectures[0] '" + ck.hf_arch_ +
                       "' is not supported (expected BitNetForCausalLM, BitnetForCausalLM or "
                       "LlamaForCausalLM with a bitnet quantization_config)");
  }
  const std::string act = config_string(cfg, "hidden_act", default_act);
  ModelConfig& c = ck.config_;
  if (act == "relu2") {
    c.arch = Arch::BitNetB158;
    c.activation = FfnActivation::Relu2;
  } else if (act == "silu") {
    c.arch = Arch::BitNet;
    c.activation = FfnActivation::Silu;
  } else {
    fail(cfg_path, "hidden_act: expected relu2 or silu, found '" + act + "'");
  }
  c.arch_key = arch_name(c.arch);
  c.n_embd = config_int(cfg, cfg_path, "hidden_size");
  c.n_layer = config_int(cfg, cfg_path, "num_hidden_layers");
  c.n_head = config_int(cfg, cfg_path, "num_attention_heads");
  c.n_head_kv = config_int(cfg, cfg_path, "num_key_value_heads", c.n_head);
  c.n_ff = config_int(cfg, cfg_path, "intermediate_size");
  c.n_vocab = config_int(cfg, cfg_path, "vocab_size");
  c.n_ctx_train = config_int(cfg, cfg_path, "max_position_embeddings");
  c.rope_freq_base = config_float(cfg, cfg_path, "rope_theta", 10000.0f);
  c.rms_eps = config_float(cfg, cfg_path, "rms_norm_eps", 1e-6f);
  if (c.n_embd % c.n_head != 0 || c.n_head % c.n_head_kv != 0) {
    fail(cfg_path, "hidden_size " + std::to_string(c.n_embd) + ", num_attention_heads " +
                       std::to_string(c.n_head) + " and num_key_value_heads " +
                       std::to_string(c.n_head_kv) +
                       ": expected hidden_size % heads == 0 and heads % kv_heads == 0");
  }
  c.head_dim = c.n_embd / c.n_head;
  c.rope_dim = c.head_dim;
  if (config_int(cfg, cfg_path, "head_dim", c.head_dim) != c.head_dim) {
    fail(cfg_path, "head_dim " + cfg["head_dim"].dump() + " differs from hidden_size / heads = " +
                       std::to_string(c.head_dim) + " (not supported)");
  }
  if (const auto rs = cfg.find("rope_scaling"); rs != cfg.end() && !rs->is_null()) {
    const std::string type =
        rs->is_object() ? config_string(*rs, "rope_type", config_string(*rs, "type", "")) : "";
    if (type != "default") {
      fail(cfg_path, "rope_scaling " + rs->dump() + " is not supported (plain RoPE only)");
    }
  }
  const auto tie = cfg.find("tie_word_embeddings");
  const bool tie_requested = tie != cfg.end() && tie->is_boolean() && tie->get<bool>();

  ck.st_ = formats::SafetensorsCheckpoint::open_dir(dir);
  const formats::SafetensorsCheckpoint& st = ck.st_;
  // A Llama graph with BitLinear layers but without BitNet's sub-norms (Llama3-8B-1.58, likely
  // Falcon3-1.58bit): written as arch llama, the way llama.cpp converts such models, with Q/K
  // rows permuted for NORM rope by the converter (hf-convert.cpp).
  if (ck.hf_arch_ == "LlamaForCausalLM" &&
      !st.find("model.layers.0.self_attn.attn_sub_norm.weight") &&
      !st.find("model.layers.0.self_attn.inner_attn_ln.weight")) {
    c.arch = Arch::Llama;
    c.arch_key = arch_name(c.arch);
    c.sub_norms = false;
    c.rope_style = RopeStyle::Norm;
  }
  std::set<std::string> used;
  auto take = [&](const std::string& hf) {
    used.insert(hf);
    return hf;
  };
  auto first_present = [&](const std::string& a, const std::string& b, const std::string& gguf) {
    if (st.find(a)) return take(a);
    if (st.find(b)) return take(b);
    std::string why = "expected tensor '" + a + "' (or '" + b + "') for " + gguf;
    if (ck.hf_arch_ == "LlamaForCausalLM") {
      why += " (layer 0 has sub-norms, so every layer needs them)";
    }
    fail(st.source(), why);
  };
  auto need = [&](const std::string& hf) {
    if (!st.find(hf)) fail(st.source(), "tensor '" + hf + "' is missing");
    return take(hf);
  };

  for (const TensorSpec& s : expected_tensors(c)) {
    if (s.optional && s.name != "output.weight") continue;  // per-linear .scale: folded in
    HfTensor t;
    t.name = s.name;
    t.dims = s.dims;
    if (s.name == "token_embd.weight") {
      t.source = need("model.embed_tokens.weight");
      t.role = HfTensorRole::Embedding;
    } else if (s.name == "output_norm.weight") {
      t.source = need("model.norm.weight");
    } else if (s.name == "output.weight") {
      if (tie_requested || !st.find("lm_head.weight")) {
        if (st.find("lm_head.weight")) take("lm_head.weight");  // tied: a copy of embed_tokens
        continue;
      }
      t.source = take("lm_head.weight");
      t.role = HfTensorRole::Embedding;
    } else {
      // blk.N.<kind>.weight
      const size_t dot1 = s.name.find('.', 4);
      const std::string layer = s.name.substr(4, dot1 - 4);
      const std::string kind = s.name.substr(dot1 + 1, s.name.rfind('.') - dot1 - 1);
      const std::string p = "model.layers." + layer + ".";
      t.role = s.ternary ? HfTensorRole::Linear : HfTensorRole::Norm;
      if (kind == "attn_norm") {
        t.source = need(p + "input_layernorm.weight");
      } else if (kind == "ffn_norm") {
        t.source = need(p + "post_attention_layernorm.weight");
      } else if (kind == "attn_sub_norm") {
        t.source = first_present(p + "self_attn.attn_sub_norm.weight",
                                 p + "self_attn.inner_attn_ln.weight", s.name);
      } else if (kind == "ffn_sub_norm") {
        t.source =
            first_present(p + "mlp.ffn_sub_norm.weight", p + "mlp.ffn_layernorm.weight", s.name);
      } else {
        static const std::pair<const char*, const char*> kLinears[] = {
            {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
            {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"},
            {"ffn_gate", "mlp.gate_proj"},  {"ffn_up", "mlp.up_proj"},
            {"ffn_down", "mlp.down_proj"},
        };
        for (const auto& [g, h] : kLinears) {
          if (kind == g) t.source = need(p + h + ".weight");
        }
        if (t.source.empty()) fail(s.name, "no Hugging Face name is known for this tensor");
      }
    }

    // Shape and dtype of the source.
    const SafetensorsTensor& src = st.tensor(t.source);
    std::vector<int64_t> want;
    if (t.role == HfTensorRole::Linear) {
      const int64_t out = t.dims[1], in_dim = t.dims[0];
      if (src.dtype == SafetensorsDtype::U8) {
        if (out % 4 != 0) {
          fail(src.file, "tensor '" + src.name +
                             "': packed uint8 needs out % 4 == 0, out = " + std::to_string(out));
        }
        want = {out / 4, in_dim};
        if (!ck.has_quant_config_) {
          fail(cfg_path, "tensor '" + src.name +
                             "' is packed uint8 but config.json has no quantization_config");
        }
        const std::string scale_name =
            t.source.substr(0, t.source.size() - std::string(".weight").size()) + ".weight_scale";
        const SafetensorsTensor& sc = st.tensor(take(scale_name));
        if (sc.n_elements() != 1) {
          fail(sc.file, "tensor '" + sc.name + "': expected one element, found shape " +
                            shape_text(sc.shape));
        }
        formats::require_supported(sc);
      } else {
        want = {out, in_dim};
        if (src.dtype != SafetensorsDtype::BF16 && src.dtype != SafetensorsDtype::F16 &&
            src.dtype != SafetensorsDtype::F32) {
          fail(src.file, "tensor '" + src.name + "': expected U8 (packed) or BF16/F16/F32, found " +
                             src.dtype_name);
        }
      }
    } else {
      want = t.role == HfTensorRole::Norm ? std::vector<int64_t>{t.dims[0]}
                                          : std::vector<int64_t>{t.dims[1], t.dims[0]};
      if (src.dtype != SafetensorsDtype::BF16 && src.dtype != SafetensorsDtype::F16 &&
          src.dtype != SafetensorsDtype::F32) {
        fail(src.file, "tensor '" + src.name + "' (" + t.name +
                           "): expected BF16, F16 or F32, found " + src.dtype_name);
      }
    }
    if (src.shape != want) {
      fail(src.file, "tensor '" + src.name + "' (" + t.name + "): expected shape " +
                         shape_text(want) + ", found " + shape_text(src.shape));
    }
    ck.tensors_.push_back(std::move(t));
  }
  c.tied_output = true;
  for (const HfTensor& t : ck.tensors_) c.tied_output = c.tied_output && t.name != "output.weight";

  // Anything left over would be silently dropped (biases, an unknown norm): refuse instead.
  for (const std::string& name : st.names()) {
    if (used.count(name) || name.ends_with("rotary_emb.inv_freq")) continue;
    fail(st.source(), "tensor '" + name + "' has no place in architecture " + c.arch_key);
  }
  return ck;
}

float HfCheckpoint::read_ternary(const HfTensor& t, std::span<int8_t> codes) const {
  const int64_t out = t.dims[1], in_dim = t.dims[0];
  if (t.role != HfTensorRole::Linear || codes.size() != static_cast<size_t>(out * in_dim)) {
    throw std::invalid_argument("read_ternary(" + t.name + "): not a linear or wrong buffer size");
  }
  const SafetensorsTensor& src = st_.tensor(t.source);
  if (src.dtype != SafetensorsDtype::U8) return absmean_ternarise(src, t.name, out, in_dim, codes);

  const std::string scale_name =
      t.source.substr(0, t.source.size() - std::string(".weight").size()) + ".weight_scale";
  const SafetensorsTensor& sc = st_.tensor(scale_name);
  float ws = 0.0f;
  formats::safetensors_to_f32(sc, 0, 1, &ws);
  if (!std::isfinite(ws) || !(ws > 0.0f)) {
    fail(sc.file,
         "tensor '" + sc.name + "': expected a positive finite scale, found " + std::to_string(ws));
  }
  const float scale = scale_divides_ ? 1.0f / ws : ws;
  const int64_t quarter = out / 4;
  const uint8_t* p = src.data;
  for (int64_t r = 0; r < quarter; ++r) {
    for (int64_t c = 0; c < in_dim; ++c) {
      const uint8_t b = p[r * in_dim + c];
      for (int k = 0; k < 4; ++k) {
        const int field = (b >> (2 * k)) & 3;
        if (field == 3) {
          fail(src.file, "tensor '" + src.name + "': packed field " + std::to_string(k) +
                             " of byte [" + std::to_string(r) + "][" + std::to_string(c) +
                             "] is 3 (expected 0..2, i.e. weight + 1)");
        }
        codes[static_cast<size_t>((k * quarter + r) * in_dim + c)] = static_cast<int8_t>(field - 1);
      }
    }
  }
  return scale;
}

void HfCheckpoint::read_row(const HfTensor& t, int64_t row, float* dst) const {
  if (t.role == HfTensorRole::Linear || row < 0 || row >= t.rows()) {
    throw std::invalid_argument("read_row(" + t.name + ", " + std::to_string(row) +
                                "): not a float tensor or row out of range");
  }
  formats::safetensors_to_f32(st_.tensor(t.source), row * t.dims[0], t.dims[0], dst);
}

}  // namespace bitnet::model
