#include "model/model-weights.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/thread-pool.h"
#include "formats/ggml-types.h"
#include "formats/tensor-codec.h"
#include "model/model-validate.h"
#include "model/prepared-cache.h"

namespace bitnet::model {
namespace {

using formats::GgmlType;
using formats::GgufFile;
using formats::GgufTensorInfo;

std::vector<float> to_f32(const GgufTensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  formats::dequantize_row(t.type, t.data, out.data(), t.n_elements());
  return out;
}

// Decodes several ternary tensors that share K into consecutive rows of one packed matrix, with
// each tensor's scale (times its arch-bitnet .scale, when present) on its rows.
kernels::TernaryMatrix pack_fused(const GgufFile& f, const std::vector<std::string>& names,
                                  kernels::TernaryLayout layout) {
  int64_t rows = 0, k = 0;
  for (const auto& name : names) {
    const GgufTensorInfo& t = f.tensor(name + ".weight");
    k = t.dims[0];
    rows += t.dims[1];
  }
  std::vector<int8_t> w(static_cast<size_t>(rows * k));
  std::vector<float> scale(static_cast<size_t>(rows));
  int64_t row = 0;
  for (const auto& name : names) {
    const GgufTensorInfo& t = f.tensor(name + ".weight");
    const int64_t n = t.dims[1];
    formats::decode_ternary(t.type, t.data, t.size, n, k, t.name,
                            w.data() + static_cast<size_t>(row * k), scale.data() + row);
    if (const GgufTensorInfo* s = f.find_tensor(name + ".scale")) {
      if (s->type != static_cast<uint32_t>(GgmlType::F32) || s->n_elements() != 1) {
        throw std::invalid_argument(f.path() + ": tensor '" + s->name +
                                    "': expected one F32 value, found " +
                                    formats::ggml_type_name(s->type) + " with " +
                                    std::to_string(s->n_elements()) + " elements");
      }
      float extra;
      std::memcpy(&extra, s->data, sizeof extra);
      for (int64_t r = 0; r < n; ++r) scale[static_cast<size_t>(row + r)] *= extra;
    }
    row += n;
  }
  return kernels::pack_ternary(layout, w.data(), rows, k, scale.data());
}

void set_owned(PackedLinear& p, std::string name, kernels::TernaryMatrix m) {
  p.name = std::move(name);
  p.owned = std::move(m);
  p.view = p.owned.view();
}

}  // namespace

const float* RawTensor::f32() const {
  if (!info || info->type != static_cast<uint32_t>(GgmlType::F32)) return nullptr;
  return reinterpret_cast<const float*>(info->data);
}

std::vector<const PackedLinear*> ModelWeights::linears() const {
  std::vector<const PackedLinear*> out;
  for (const auto& l : layers_) {
    out.push_back(&l.qkv);
    out.push_back(&l.attn_out);
    out.push_back(&l.gate_up);
    out.push_back(&l.down);
  }
  return out;
}

void ModelWeights::pack_all(ThreadPool& pool, const LoadOptions& options) {
  const int64_t n_layer = config_.n_layer;
  std::mutex progress_mu;
  int64_t layers_done = 0;
  // Layers are independent: pack them in parallel (each task holds one fused matrix of int8
  // codes at a time, at most 2 * n_ff * n_embd bytes).
  std::vector<std::string> errors(static_cast<size_t>(n_layer));
  pool.parallel_for(n_layer, [&](int64_t l0, int64_t l1, int) {
    for (int64_t l = l0; l < l1; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      LayerWeights& L = layers_[static_cast<size_t>(l)];
      try {
        set_owned(L.qkv, b + "attn_qkv",
                  pack_fused(file_, {b + "attn_q", b + "attn_k", b + "attn_v"}, layout_));
        set_owned(L.attn_out, b + "attn_output", pack_fused(file_, {b + "attn_output"}, layout_));
        set_owned(L.gate_up, b + "ffn_gate_up",
                  pack_fused(file_, {b + "ffn_gate", b + "ffn_up"}, layout_));
        set_owned(L.down, b + "ffn_down", pack_fused(file_, {b + "ffn_down"}, layout_));
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(l)] = e.what();  // tasks must not throw: rethrown below
      }
      if (options.on_pack_progress) {
        std::lock_guard lock(progress_mu);
        try {
          options.on_pack_progress(++layers_done, n_layer);
        } catch (...) {  // a progress report must not stop the load
        }
      }
    }
  });
  for (const auto& e : errors) {
    if (!e.empty())
      throw std::invalid_argument(e.find(file_.path()) == 0 ? e : file_.path() + ": " + e);
  }
}

void ModelWeights::note_conversion(std::string converted_gguf, bool converted_now) {
  report_.hf_gguf = std::move(converted_gguf);
  report_.hf_converted = converted_now;
}

std::string lm_head_name(const ModelWeights& w) {
  const std::string type = formats::ggml_type_name(w.output().info->type);
  return w.int8_head() ? "int8 (from " + type + ")" : type;
}

void ModelWeights::quantize_int8_head(ThreadPool& pool) {
  const formats::GgufTensorInfo& out = *output().info;
  const int64_t E = config_.n_embd, V = config_.n_vocab;
  if (E % kernels::kI8KMultiple != 0 || E > kernels::kI8MaxK) {
    throw std::invalid_argument("int8 LM head: n_embd " + std::to_string(E) +
                                " is not a multiple of 4 up to " +
                                std::to_string(kernels::kI8MaxK));
  }
  int8_head_ = kernels::Int8Matrix(V, E);
  const size_t rb = formats::ggml_tensor_bytes(out.type, &E, 1);
  pool.parallel_for(V, [&](int64_t v0, int64_t v1, int) {
    std::vector<float> row(static_cast<size_t>(E));
    for (int64_t v = v0; v < v1; ++v) {
      formats::dequantize_row(out.type, out.data + static_cast<size_t>(v) * rb, row.data(), E);
      int8_head_.set_row(v, row.data());
    }
  });
  int8_head_view_ = int8_head_.view();
}

std::unique_ptr<ModelWeights> ModelWeights::load(const std::string& model_path,
                                                 const LoadOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string& path = model_path;
  formats::GgufOpenOptions open_options;
  open_options.mmap_threshold = options.mmap_threshold;
  std::unique_ptr<ModelWeights> m(new ModelWeights(GgufFile::open(path, open_options)));
  m->config_ = read_model_config(m->file_);
  const auto problems = validate_tensors(m->config_, m->file_);
  const std::string what = "not a valid " + m->config_.arch_key + " model";
  if (!problems.empty()) throw std::invalid_argument(problems_message(path, what, problems));
  // Load-time work (value checks, packing) runs on options.threads (0: all cores).
  ThreadPool pool(resolve_threads(options.threads));
  const auto bad_values =
      validate_tensor_values(m->config_, m->file_, ValueCheck::NonTernary, &pool);
  if (!bad_values.empty()) throw std::invalid_argument(problems_message(path, what, bad_values));
  const kernels::KernelTable& kt = kernels::active_kernels();
  m->layout_ = options.layout ? *options.layout : kernels::preferred_layout(kt);
  const ModelConfig& c = m->config_;
  m->layers_.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights& L = m->layers_[static_cast<size_t>(l)];
    L.attn_norm = to_f32(m->file_.tensor(b + "attn_norm.weight"));
    if (c.sub_norms) L.attn_sub_norm = to_f32(m->file_.tensor(b + "attn_sub_norm.weight"));
    L.ffn_norm = to_f32(m->file_.tensor(b + "ffn_norm.weight"));
    if (c.sub_norms) L.ffn_sub_norm = to_f32(m->file_.tensor(b + "ffn_sub_norm.weight"));
  }
  m->output_norm_ = to_f32(m->file_.tensor("output_norm.weight"));
  m->token_embd_.info = &m->file_.tensor("token_embd.weight");
  m->tied_ = c.tied_output;
  if (!m->tied_) m->output_.info = &m->file_.tensor("output.weight");
  if (options.int8_head) m->quantize_int8_head(pool);

  // Packed size, to decide on the cache.
  uint64_t packed = 0;
  for (const auto& t : m->file_.tensors()) {
    if (t.n_dims == 2 && t.name.find("blk.") == 0 && t.name.find("_norm") == std::string::npos) {
      packed += static_cast<uint64_t>(kernels::packed_group_bytes(m->layout_, t.dims[0])) *
                static_cast<uint64_t>((t.dims[1] + 15) / 16);
    }
  }
  const bool use_cache = options.cache == CacheMode::On ||
                         (options.cache == CacheMode::Auto && packed >= options.cache_min_bytes);
  LoadReport& rep = m->report_;
  if (use_cache) {
    const SourceIdentity id = identify_source(path);
    const std::string dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
    rep.cache_path = prepared_cache_path(dir, id, m->layout_, kt.isa);
    std::string why;
    if (auto cache = open_prepared_cache(rep.cache_path, id, m->layout_, kt.isa, &why)) {
      // Every packed linear must be in the cache with the shape the model needs.
      bool complete = cache->matrices.size() == static_cast<size_t>(4 * c.n_layer);
      for (int64_t l = 0; complete && l < c.n_layer; ++l) {
        LayerWeights& L = m->layers_[static_cast<size_t>(l)];
        const std::string b = "blk." + std::to_string(l) + ".";
        PackedLinear* slots[4] = {&L.qkv, &L.attn_out, &L.gate_up, &L.down};
        const char* names[4] = {"attn_qkv", "attn_output", "ffn_gate_up", "ffn_down"};
        const int64_t shapes[4][2] = {{c.n_embd + 2 * c.n_embd_kv(), c.n_embd},
                                      {c.n_embd, c.n_embd},
                                      {2 * c.n_ff, c.n_embd},
                                      {c.n_embd, c.n_ff}};
        for (int i = 0; i < 4 && complete; ++i) {
          const auto& [name, view] = cache->matrices[static_cast<size_t>(4 * l + i)];
          complete = name == b + names[i] && view.n == shapes[i][0] && view.k == shapes[i][1];
          slots[i]->name = name;
          slots[i]->view = view;
        }
      }
      if (complete) {
        m->cache_mapping_ = cache->mapping;
        rep.source = LoadReport::Source::CacheHit;
        rep.packed_bytes = packed;
        rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return m;
      }
      why = "does not match this model's shapes";
    }
    rep.cache_reason = why;
  }
  m->pack_all(pool, options);
  rep.packed_bytes = packed;
  if (use_cache) {
    std::vector<PreparedMatrix> mats;
    for (const PackedLinear* p : m->linears()) mats.push_back({p->name, &p->view});
    try {
      write_prepared_cache(rep.cache_path, identify_source(path), m->layout_, kt.isa, mats);
      rep.source = LoadReport::Source::CacheRebuilt;
    } catch (const std::exception& e) {
      rep.cache_reason += std::string("; not written: ") + e.what();
    }
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

}  // namespace bitnet::model
