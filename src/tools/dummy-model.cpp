#include "tools/dummy-model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "core/fp16.h"
#include "formats/tensor-codec.h"

namespace bitnet::model {
namespace {

using formats::GgmlType;
using formats::GgufValue;
using formats::GgufValueType;

constexpr uint32_t id(GgmlType t) {
  return static_cast<uint32_t>(t);
}

// ---- presets ------------------------------------------------------------------------------------

ModelConfig make_config(Arch arch, int64_t n_embd, int64_t n_layer, int64_t n_head,
                        int64_t n_head_kv, int64_t n_ff, int64_t n_vocab, int64_t n_ctx,
                        float rope_base, float eps, bool tied) {
  ModelConfig c;
  c.arch = arch;
  c.arch_key = arch_name(arch);
  c.n_embd = n_embd;
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_head_kv = n_head_kv;
  c.n_ff = n_ff;
  c.n_vocab = n_vocab;
  c.n_ctx_train = n_ctx;
  c.head_dim = n_embd / n_head;
  c.rope_dim = c.head_dim;
  c.rope_freq_base = rope_base;
  c.rms_eps = eps;
  c.activation = arch == Arch::BitNet ? FfnActivation::Silu : FfnActivation::Relu2;
  c.tied_output = tied;
  return c;
}

DummyTokenizerSpec llama3_tokenizer(int64_t n_vocab, int64_t first_special, int n_special) {
  DummyTokenizerSpec t;
  t.kind = DummyTokenizerKind::Gpt2Bytes;
  t.n_vocab = n_vocab;
  t.control = llama3_special_tokens(first_special, n_special);
  t.bos_id = first_special;      // <|begin_of_text|>
  t.eos_id = first_special + 1;  // <|end_of_text|>
  t.eot_id = first_special + 9;  // <|eot_id|>
  return t;
}

// LLaMA-2 SentencePiece layout: <unk> 0, <s> 1, </s> 2, byte-fallback tokens 3..258.
DummyTokenizerSpec llama2_tokenizer(int64_t n_vocab) {
  DummyTokenizerSpec t;
  t.kind = DummyTokenizerKind::SpmBytes;
  t.n_vocab = n_vocab;
  t.control = {{1, "<s>"}, {2, "</s>"}};
  t.unk_id = 0;
  t.bos_id = 1;
  t.eos_id = 2;
  return t;
}

// Falcon3: byte-level BPE, vocab 131072. The strings of ids 0..11 are those of the Falcon
// tokenizer (">>TITLE<<" .. ">>MIDDLE<<", then "<|endoftext|>" 11), assumed unchanged in Falcon3:
// not checked offline. bos 1 / eos 11 follow tiiuae/Falcon3-10B-Base-1.58bit config.json.
DummyTokenizerSpec falcon3_tokenizer(int64_t n_vocab) {
  DummyTokenizerSpec t;
  t.kind = DummyTokenizerKind::Gpt2Bytes;
  t.n_vocab = n_vocab;
  const char* names[] = {">>TITLE<<",   ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<",
                         ">>COMMENT<<", ">>ANSWER<<",   ">>QUESTION<<",     ">>DOMAIN<<",
                         ">>PREFIX<<",  ">>SUFFIX<<",   ">>MIDDLE<<",       "<|endoftext|>"};
  for (int64_t i = 0; i < 12; ++i) t.control.push_back({i, names[i]});
  t.bos_id = 1;
  t.eos_id = 11;
  return t;
}

std::vector<DummyPreset> make_presets() {
  std::vector<DummyPreset> p;
  // microsoft/bitnet-b1.58-2B-4T config.json (as in ../shared/SPEC.md): tied, ReLU^2, GQA 20/5.
  p.push_back(
      {"2b4t", "microsoft/bitnet-b1.58-2B-4T",
       make_config(Arch::BitNetB158, 2560, 30, 20, 5, 6912, 128256, 4096, 500000.0f, 1e-5f, true),
       llama3_tokenizer(128256, 128000, 256)});
  // 1bitLLM/bitnet_b1_58-large: bitnet.cpp's "bitnet-base" config (hidden 1536, FFN 4096, 24
  // layers, 16 heads, ctx 2048, rope 10000, rms eps 1e-5, vocab 32002, bos 1, eos 2).
  p.push_back(
      {"bitnet-large", "1bitLLM/bitnet_b1_58-large (0.7B)",
       make_config(Arch::BitNet, 1536, 24, 16, 16, 4096, 32002, 2048, 10000.0f, 1e-5f, true),
       llama2_tokenizer(32002)});
  // 1bitLLM/bitnet_b1_58-3B: hidden 3200, FFN 8640, 26 layers, 32 heads (head dim 100), ctx 2048,
  // rope 10000 (OpenLLaMA-3B shapes, also listed so in public BitNet tooling). rms eps 1e-5 is
  // assumed equal to the large model's: not checked offline.
  p.push_back(
      {"bitnet-3b", "1bitLLM/bitnet_b1_58-3B",
       make_config(Arch::BitNet, 3200, 26, 32, 32, 8640, 32002, 2048, 10000.0f, 1e-5f, true),
       llama2_tokenizer(32002)});
  // HF1BitLLM/Llama3-8B-1.58-100B-tokens: Meta-Llama-3-8B shapes (ctx 8192, rope 500000, rms eps
  // 1e-5), untied lm_head. Run with the bitnet-b1.58 graph (ReLU^2) for now; the real model uses
  // SiLU.
  p.push_back(
      {"llama3-8b-1.58", "HF1BitLLM/Llama3-8B-1.58-100B-tokens (SiLU run as ReLU^2)",
       make_config(Arch::BitNetB158, 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0f, 1e-5f, false),
       llama3_tokenizer(128256, 128000, 256)});
  // tiiuae/Falcon3-10B-Base-1.58bit config.json: hidden 3072, 40 layers, 12 heads, 4 KV heads
  // (head dim 256), FFN 23040, vocab 131072, ctx 32768, rope 1000042, rms eps 1e-6, untied.
  p.push_back({"falcon3-10b-1.58", "tiiuae/Falcon3-10B-Base-1.58bit (SiLU run as ReLU^2)",
               make_config(Arch::BitNetB158, 3072, 40, 12, 4, 23040, 131072, 32768, 1000042.0f,
                           1e-6f, false),
               falcon3_tokenizer(131072)});
  // Not a real model: the "medium" of the benchmark matrix (bench/bench-matrix.cpp), a small
  // BitNet b1.58 of ~100 M parameters between tiny-1m and 2b4t: 12 layers of 768 (12 heads of 64,
  // 4 KV heads), FFN 2048, LLaMA-2 SentencePiece vocabulary of 32000, tied; 75.5 M ternary
  // parameters plus a 24.6 M embedding. Every dim is a multiple of 256 (all ternary types, Q6_K).
  p.push_back(
      {"medium-100m", "synthetic: 12 layers of 768, GQA 12/4, FFN 2048, vocab 32000 (100 M)",
       make_config(Arch::BitNetB158, 768, 12, 12, 4, 2048, 32000, 2048, 10000.0f, 1e-5f, true),
       llama2_tokenizer(32000)});
  // Not a real model: ~1.18 M ternary parameters for latency work. Every dim is a multiple of 256
  // so that all ternary types (TQ2_0 / TQ1_0 blocks of 256) and Q6_K embeddings apply. The
  // vocabulary has the layout of ../shared/reference's fixture vocabulary: 4112 ids, the
  // Llama-3 added tokens renumbered from 4096 (<|begin_of_text|> 4096, <|end_of_text|> 4097,
  // <|eot_id|> 4105).
  p.push_back({"tiny-1m", "synthetic: 2 layers of 256, GQA 4/2, FFN 512, vocab 4112",
               make_config(Arch::BitNetB158, 256, 2, 4, 2, 512, 4112, 2048, 500000.0f, 1e-5f, true),
               llama3_tokenizer(4112, 4096, 16)});
  return p;
}

// ---- random values ------------------------------------------------------------------------------

// splitmix64 (Steele, Lea, Flood 2014): a 64-bit counter passed through a mixing function.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  // Irwin-Hall sum of 4 uniforms (16 bits each), centred and scaled to unit variance.
  float normal() {
    const uint64_t r = next();
    double s = 0.0;
    for (int i = 0; i < 4; ++i) s += static_cast<double>((r >> (16 * i)) & 0xFFFF) + 0.5;
    return static_cast<float>((s / 65536.0 - 2.0) * 1.7320508075688772);
  }

 private:
  uint64_t state_;
};

// The stream of tensor `index` under `seed`: independent of every other tensor's.
SplitMix64 tensor_stream(uint64_t seed, size_t index) {
  SplitMix64 mix(seed ^ (0xD1B54A32D192ED03ull * (static_cast<uint64_t>(index) + 1)));
  return SplitMix64(mix.next());
}

// kTrits[v] = the 5 base-3 digits of v (0..242) minus 1: one byte below 243 gives 5 uniform trits.
struct TritTable {
  std::array<std::array<int8_t, 5>, 243> t{};
  TritTable() {
    for (int v = 0; v < 243; ++v) {
      int x = v;
      for (int d = 0; d < 5; ++d, x /= 3)
        t[static_cast<size_t>(v)][static_cast<size_t>(d)] = static_cast<int8_t>(x % 3 - 1);
    }
  }
};

void random_trits(SplitMix64& rng, int8_t* out, size_t n) {
  static const TritTable table;
  size_t i = 0;
  while (i < n) {
    uint64_t r = rng.next();
    for (int b = 0; b < 8 && i < n; ++b, r >>= 8) {
      const unsigned v = static_cast<unsigned>(r & 0xFF);
      if (v >= 243) continue;  // rejection keeps the digits exactly uniform
      const size_t take = std::min<size_t>(5, n - i);
      std::copy_n(table.t[v].data(), take, out + i);
      i += take;
    }
  }
}

// ---- tensors ------------------------------------------------------------------------------------

enum class Kind { Linear, Norm, Embedding };

Kind kind_of(const TensorSpec& s) {
  if (s.ternary) return Kind::Linear;
  return s.dims.size() == 1 ? Kind::Norm : Kind::Embedding;
}

uint32_t storage_type(const TensorSpec& s, const DummyOptions& o) {
  switch (kind_of(s)) {
    case Kind::Linear:
      return o.linear_type;
    case Kind::Embedding:
      return o.embd_type;
    case Kind::Norm:
      break;
  }
  return id(GgmlType::F32);
}

size_t tensor_bytes(const TensorSpec& s, uint32_t type) {
  return formats::ggml_tensor_bytes(type, s.dims.data(), static_cast<int>(s.dims.size()));
}

void fill_linear(const TensorSpec& s, uint32_t type, SplitMix64 rng, std::span<uint8_t> out) {
  const int64_t k = s.dims[0], n = s.dims[1];
  const float scale = fp16_to_fp32(fp32_to_fp16(
      static_cast<float>((0.5 + rng.uniform()) / std::sqrt(2.0 / 3.0 * static_cast<double>(k)))));
  std::vector<int8_t> codes(static_cast<size_t>(n * k));
  random_trits(rng, codes.data(), codes.size());
  formats::encode_ternary(type, codes.data(), n, k, scale, out.data(), out.size());
}

void fill_rows(const TensorSpec& s, uint32_t type, SplitMix64 rng, float mean, float sigma,
               std::span<uint8_t> out) {
  const int64_t ne0 = s.dims[0];
  const int64_t rows = s.dims.size() > 1 ? s.dims[1] : 1;
  const size_t row_bytes = out.size() / static_cast<size_t>(rows);
  std::vector<float> row(static_cast<size_t>(ne0));
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = mean + sigma * rng.normal();
    formats::quantize_row(type, row.data(), out.data() + static_cast<size_t>(r) * row_bytes, ne0);
  }
}

void add_metadata(const DummyPreset& preset, const DummyOptions& o, formats::GgufWriter& w) {
  write_model_config(preset.config, w);
  w.set("general.name", "bitnet-cxx dummy " + preset.name + " (random weights)");
  w.set("general.file_type", dummy_file_type(o.linear_type));
  w.set("bitnet-cxx.dummy", true);
  w.set("bitnet-cxx.dummy.preset", preset.name);
  w.set("bitnet-cxx.dummy.seed", o.seed);
  write_dummy_tokenizer(preset.tokenizer, w);
}

// Serialized size of a GGUF value (without its type tag), as GgufWriter writes it.
uint64_t value_bytes(const GgufValue& v) {
  if (v.is<std::string>()) return 8 + v.as<std::string>().size();
  if (!v.is_array()) return gguf_min_value_bytes(v.type());
  uint64_t n = 4 + 8;  // element type, count
  if (v.array_type() == GgufValueType::STRING) {
    for (const std::string& s : v.as_array<std::string>()) n += 8 + s.size();
  } else if (v.array_type() == GgufValueType::ARRAY) {
    for (const GgufValue& a : v.as_arrays()) n += value_bytes(a);
  } else {
    n += gguf_min_value_bytes(v.array_type()) * v.array_size();
  }
  return n;
}

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

}  // namespace

const std::vector<DummyPreset>& dummy_presets() {
  static const std::vector<DummyPreset> presets = make_presets();
  return presets;
}

const DummyPreset& find_dummy_preset(std::string_view name) {
  std::string known;
  for (const DummyPreset& p : dummy_presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw std::invalid_argument("unknown preset '" + std::string(name) + "' (known: " + known + ")");
}

uint32_t parse_dummy_linear_type(std::string_view name) {
  if (name == "i2_s") return id(GgmlType::I2_S);
  if (name == "tq2_0") return id(GgmlType::TQ2_0);
  if (name == "tq1_0") return id(GgmlType::TQ1_0);
  if (name == "f16") return id(GgmlType::F16);
  throw std::invalid_argument("unknown --type '" + std::string(name) +
                              "' (expected i2_s, tq2_0, tq1_0 or f16)");
}

uint32_t parse_dummy_embd_type(std::string_view name) {
  if (name == "f16") return id(GgmlType::F16);
  if (name == "q8_0") return id(GgmlType::Q8_0);
  if (name == "q6_k") return id(GgmlType::Q6_K);
  throw std::invalid_argument("unknown --embd-type '" + std::string(name) +
                              "' (expected f16, q8_0 or q6_k)");
}

uint32_t dummy_file_type(uint32_t linear_type) {
  if (linear_type == id(GgmlType::F16)) return 1;     // LLAMA_FTYPE_MOSTLY_F16
  if (linear_type == id(GgmlType::TQ1_0)) return 36;  // LLAMA_FTYPE_MOSTLY_TQ1_0
  if (linear_type == id(GgmlType::TQ2_0)) return 37;  // LLAMA_FTYPE_MOSTLY_TQ2_0
  if (linear_type == id(GgmlType::I2_S)) return 40;   // bitnet.cpp LLAMA_FTYPE_MOSTLY_I2_S
  throw std::invalid_argument("no file type for linear type " +
                              formats::ggml_type_name(linear_type));
}

void check_dummy_options(const DummyPreset& preset, const DummyOptions& o) {
  const std::string where = "preset " + preset.name + ": ";
  if (o.linear_type != id(GgmlType::I2_S) && o.linear_type != id(GgmlType::TQ2_0) &&
      o.linear_type != id(GgmlType::TQ1_0) && o.linear_type != id(GgmlType::F16)) {
    throw std::invalid_argument(where + "linear type " + formats::ggml_type_name(o.linear_type) +
                                " is not one of I2_S, TQ2_0, TQ1_0, F16");
  }
  if (o.embd_type != id(GgmlType::F16) && o.embd_type != id(GgmlType::Q8_0) &&
      o.embd_type != id(GgmlType::Q6_K)) {
    throw std::invalid_argument(where + "embedding type " + formats::ggml_type_name(o.embd_type) +
                                " is not one of F16, Q8_0, Q6_K");
  }
  const auto linear_info = formats::ggml_type_info(o.linear_type);
  const auto embd_info = formats::ggml_type_info(o.embd_type);
  for (const TensorSpec& s : dummy_tensors(preset.config)) {
    const Kind kind = kind_of(s);
    if (kind == Kind::Norm) continue;
    const int64_t block = kind == Kind::Linear ? linear_info->block_elems : embd_info->block_elems;
    const std::string type_name = formats::ggml_type_name(storage_type(s, o));
    const bool i2_s = kind == Kind::Linear && o.linear_type == id(GgmlType::I2_S);
    if (kind == Kind::Linear && s.dims[0] % 16 != 0) {  // every ternary kernel's K granule
      throw std::invalid_argument(where + s.name + " has input dim " + std::to_string(s.dims[0]) +
                                  ", not a multiple of 16 as the ternary kernels need");
    }
    if (i2_s && (s.dims[0] * s.dims[1]) % block != 0) {
      throw std::invalid_argument(where + "I2_S needs a multiple of 128 elements, " + s.name +
                                  " has " + std::to_string(s.dims[0] * s.dims[1]));
    }
    if (!i2_s && s.dims[0] % block != 0) {
      throw std::invalid_argument(
          where + type_name + " stores blocks of " + std::to_string(block) +
          " along the input dim, but " + s.name + " has input dim " + std::to_string(s.dims[0]) +
          (kind == Kind::Linear ? " (use --type i2_s or f16)" : " (use --embd-type f16 or q8_0)"));
    }
  }
}

std::vector<TensorSpec> dummy_tensors(const ModelConfig& config) {
  std::vector<TensorSpec> out;
  for (TensorSpec& s : expected_tensors(config)) {
    if (s.optional && !(s.name == "output.weight" && !config.tied_output)) continue;
    s.optional = false;
    out.push_back(std::move(s));
  }
  return out;
}

int64_t ternary_parameter_count(const ModelConfig& config) {
  int64_t n = 0;
  for (const TensorSpec& s : dummy_tensors(config))
    if (s.ternary) n += s.dims[0] * s.dims[1];
  return n;
}

int64_t total_parameter_count(const ModelConfig& config) {
  int64_t n = 0;
  for (const TensorSpec& s : dummy_tensors(config)) {
    int64_t e = 1;
    for (int64_t d : s.dims) e *= d;
    n += e;
  }
  return n;
}

uint64_t dummy_tensor_bytes(const DummyPreset& preset, const DummyOptions& o) {
  check_dummy_options(preset, o);
  uint64_t n = 0;
  for (const TensorSpec& s : dummy_tensors(preset.config))
    n += align_up(tensor_bytes(s, storage_type(s, o)), formats::kGgufDefaultAlignment);
  return n;
}

uint64_t dummy_file_bytes(const DummyPreset& preset, const DummyOptions& o) {
  formats::GgufWriter w;
  add_metadata(preset, o, w);
  uint64_t head = 4 + 4 + 8 + 8;  // magic, version, tensor count, kv count
  for (const formats::GgufKv& kv : w.kvs()) head += 8 + kv.key.size() + 4 + value_bytes(kv.value);
  for (const TensorSpec& s : dummy_tensors(preset.config))
    head += 8 + s.name.size() + 4 + 8 * s.dims.size() + 4 + 8;  // name, n_dims, dims, type, offset
  return align_up(head, formats::kGgufDefaultAlignment) + dummy_tensor_bytes(preset, o);
}

void add_dummy_model(const DummyPreset& preset, const DummyOptions& o, formats::GgufWriter& w,
                     DummyProgress progress) {
  check_dummy_options(preset, o);
  add_metadata(preset, o, w);
  const std::vector<TensorSpec> specs = dummy_tensors(preset.config);
  const float embd_sigma =
      static_cast<float>(1.0 / std::sqrt(static_cast<double>(preset.config.n_embd)));
  // Shared by the fill functions, which the writer calls in order, one at a time.
  // (one progress object too: it may keep state between calls).
  auto bytes_done = std::make_shared<uint64_t>(0);
  auto report = std::make_shared<DummyProgress>(std::move(progress));
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    const uint32_t type = storage_type(s, o);
    const SplitMix64 rng = tensor_stream(o.seed, i);
    const Kind kind = kind_of(s);
    w.add_tensor(s.name, type, s.dims,
                 [s, type, rng, kind, embd_sigma, i, n = specs.size(), bytes_done,
                  report](std::span<uint8_t> out) {
                   switch (kind) {
                     case Kind::Linear:
                       fill_linear(s, type, rng, out);
                       break;
                     case Kind::Norm:
                       fill_rows(s, type, rng, 1.0f, 0.05f, out);
                       break;
                     case Kind::Embedding:
                       fill_rows(s, type, rng, 0.0f, embd_sigma, out);
                       break;
                   }
                   *bytes_done += out.size();
                   if (*report) (*report)(i + 1, n, *bytes_done);
                 });
  }
}

void write_dummy_model(const DummyPreset& preset, const DummyOptions& options,
                       const std::string& path, DummyProgress progress) {
  formats::GgufWriter w;
  add_dummy_model(preset, options, w, std::move(progress));
  w.write(path);
}

}  // namespace bitnet::model
