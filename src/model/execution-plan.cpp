#include "model/execution-plan.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace bitnet::model {
namespace {

constexpr size_t kAlign = 64;

size_t align_up(size_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

const char* buffer_name(PlanBuffer b) {
  switch (b) {
    case PlanBuffer::X:
      return "x";
    case PlanBuffer::H:
      return "h";
    case PlanBuffer::Qkv:
      return "qkv";
    case PlanBuffer::Attn:
      return "attn";
    case PlanBuffer::Tmp:
      return "tmp";
    case PlanBuffer::GateUp:
      return "gate_up";
    case PlanBuffer::Act:
      return "act";
    case PlanBuffer::Q8:
      return "q8";
    case PlanBuffer::kCount:
      break;
  }
  return "?";
}

bool overlap(const PlanBufferInfo& a, const PlanBufferInfo& b) {
  for (const auto& [a0, a1] : a.live) {
    for (const auto& [b0, b1] : b.live) {
      if (a0 <= b1 && b0 <= a1) return true;
    }
  }
  return false;
}

std::string mib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

ExecutionPlan::ExecutionPlan(const ModelConfig& cfg, kernels::TernaryLayout layout,
                             const PlanOptions& options)
    : cfg_(cfg), opt_(options), layout_(layout) {
  const int64_t R = std::max<int64_t>(1, opt_.max_rows), E = cfg.n_embd, F = cfg.n_ff;
  const int64_t KV = cfg.n_embd_kv();
  q8_k_ = std::max(E, F);
  const auto f32 = [&](int64_t cols) { return align_up(static_cast<size_t>(R * cols) * 4); };
  buffers_.resize(static_cast<size_t>(PlanBuffer::kCount));
  const size_t sizes[] = {
      f32(E),          f32(E),
      f32(E + 2 * KV), f32(E),
      f32(E),          f32(2 * F),
      f32(F),          align_up(static_cast<size_t>(R * q8_k_)) + align_up(R * 4) * 2};
  for (size_t i = 0; i < buffers_.size(); ++i) {
    buffers_[i].id = static_cast<PlanBuffer>(i);
    buffers_[i].name = buffer_name(buffers_[i].id);
    buffers_[i].bytes = sizes[i];
  }

  using B = PlanBuffer;
  const std::string lay = kernels::layout_name(layout);
  auto mm = [&](int64_t n, int64_t k, const char* what) {
    return "ternary matmul [" + std::to_string(n) + " x " + std::to_string(k) + "] " + lay + ", " +
           what;
  };
  add("embed", "x = token_embd[token]", {}, {B::X});
  if (fused()) {
    add("attn_norm+quant", "fused: rmsnorm(x) attn_norm, int8 quantization per row", {B::X},
        {B::Q8});
    add("qkv", mm(E + 2 * KV, E, "fused q|k|v"), {B::Q8}, {B::Qkv});
  } else {
    add("attn_norm", "h = rmsnorm(x) attn_norm", {B::X}, {B::H});
    add("qkv",
        mm(E + 2 * KV, E, "fused q|k|v") +
            (opt_.quantize_activations ? ", quantizes h" : ", float (validation)"),
        {B::H}, {B::Qkv});
  }
  add("rope+kv+attention", "rope q and k, store k and v in the KV pages, softmax(q k^T) v",
      {B::Qkv}, {B::Attn});
  if (fused()) {
    add("attn_sub_norm+quant",
        cfg.sub_norms ? "fused: rmsnorm(attn) attn_sub_norm, int8 quantization"
                      : "fused: int8 quantization (no sub-norm)",
        {B::Attn}, {B::Q8});
    add("attn_out", mm(E, E, "output projection"), {B::Q8}, {B::Tmp});
    add("residual+ffn_norm+quant", "fused: x += tmp, rmsnorm(x) ffn_norm, int8 quantization",
        {B::X, B::Tmp}, {B::X, B::Q8});
    add("gate_up", mm(2 * F, E, "fused gate|up"), {B::Q8}, {B::GateUp});
    add("act+ffn_sub_norm+quant",
        std::string("fused: ") + (cfg.activation == FfnActivation::Relu2 ? "relu^2" : "silu") +
            "(gate) * up, ffn_sub_norm, int8 quantization",
        {B::GateUp}, {B::Q8});
    add("down", mm(E, F, "down projection"), {B::Q8}, {B::Tmp});
  } else {
    add("attn_sub_norm", "h = rmsnorm(attn) attn_sub_norm", {B::Attn}, {B::H});
    add("attn_out", mm(E, E, "output projection"), {B::H}, {B::Tmp});
    add("residual", "x += tmp", {B::X, B::Tmp}, {B::X});
    add("ffn_norm", "h = rmsnorm(x) ffn_norm", {B::X}, {B::H});
    add("gate_up", mm(2 * F, E, "fused gate|up"), {B::H}, {B::GateUp});
    add("act+ffn_sub_norm",
        std::string("act = ") + (cfg.activation == FfnActivation::Relu2 ? "relu^2" : "silu") +
            "(gate) * up, rmsnorm(act) ffn_sub_norm",
        {B::GateUp}, {B::Act});
    add("down", mm(E, F, "down projection"), {B::Act}, {B::Tmp});
  }
  add("residual", "x += tmp", {B::X, B::Tmp}, {B::X});
  add("output_norm", "h = rmsnorm(x) output_norm (rows that want logits)", {B::X}, {B::H});
  add("lm_head", "logits = h . output^T", {B::H}, {});

  // The residual stream crosses layers: live from the embedding to the output norm.
  PlanBufferInfo& x = buffers_[static_cast<size_t>(B::X)];
  x.live = {{0, static_cast<int>(ops_.size()) - 1}};
  // Unquantized linears quantize their input inside the matmul into q8, live only there.
  if (opt_.quantize_activations && !fused()) {
    PlanBufferInfo& q8 = buffers_[static_cast<size_t>(B::Q8)];
    q8.used = true;
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (ops_[i].detail.find("ternary matmul") == 0) {
        q8.live.push_back({static_cast<int>(i), static_cast<int>(i)});
      }
    }
  }
  assign_offsets();
}

void ExecutionPlan::add(std::string name, std::string detail, std::vector<PlanBuffer> reads,
                        std::vector<PlanBuffer> writes) {
  const int i = static_cast<int>(ops_.size());
  for (PlanBuffer b : reads) {
    PlanBufferInfo& info = buffers_[static_cast<size_t>(b)];
    if (!info.live.empty()) info.live.back().second = i;
  }
  for (PlanBuffer b : writes) {
    PlanBufferInfo& info = buffers_[static_cast<size_t>(b)];
    info.used = true;
    const bool also_read = std::find(reads.begin(), reads.end(), b) != reads.end();
    if (!also_read) info.live.push_back({i, i});
  }
  ops_.push_back({std::move(name), std::move(detail), std::move(reads), std::move(writes)});
}

void ExecutionPlan::assign_offsets() {
  std::vector<size_t> order(buffers_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Largest first, ties in buffer order. (std::sort, not stable_sort: stable_sort takes a
  // temporary buffer from nothrow operator new, which the allocation-counting tests do not
  // replace.)
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return buffers_[a].bytes > buffers_[b].bytes ||
           (buffers_[a].bytes == buffers_[b].bytes && a < b);
  });
  std::vector<size_t> placed;
  arena_bytes_ = 0;
  for (size_t i : order) {
    PlanBufferInfo& b = buffers_[i];
    if (!b.used) continue;
    std::vector<std::pair<size_t, size_t>> taken;  // [begin, end) of buffers live at once
    for (size_t j : placed) {
      if (overlap(b, buffers_[j])) {
        taken.push_back({buffers_[j].offset, buffers_[j].offset + buffers_[j].bytes});
      }
    }
    std::sort(taken.begin(), taken.end());
    size_t off = 0;
    for (const auto& [t0, t1] : taken) {
      if (off + b.bytes <= t0) break;
      off = std::max(off, t1);
    }
    b.offset = off;
    placed.push_back(i);
    arena_bytes_ = std::max(arena_bytes_, off + b.bytes);
  }
}

std::vector<std::string> ExecutionPlan::fusions() const {
  std::vector<std::string> f = {"qkv", "gate_up"};
  if (fused()) {
    f.push_back("norm_quant");
    f.push_back("act_norm_quant");
  }
  return f;
}

size_t ExecutionPlan::unshared_bytes() const {
  size_t n = 0;
  for (const PlanBufferInfo& b : buffers_) n += b.used ? b.bytes : 0;
  return n;
}

size_t ExecutionPlan::q8_scale_offset() const {
  return offset(PlanBuffer::Q8) +
         align_up(static_cast<size_t>(std::max<int64_t>(1, opt_.max_rows) * q8_k_));
}

size_t ExecutionPlan::q8_sum_offset() const {
  return q8_scale_offset() + align_up(static_cast<size_t>(std::max<int64_t>(1, opt_.max_rows)) * 4);
}

std::string ExecutionPlan::describe() const {
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "execution plan: %lld rows per step, %s activations\n",
                static_cast<long long>(opt_.max_rows),
                opt_.quantize_activations ? "int8-quantized" : "float (validation mode)");
  s += buf;
  s += "fusions applied:";
  for (const std::string& f : fusions()) {
    s += ' ';
    s += f;
  }
  if (!fused()) {
    s += opt_.quantize_activations ? " (norm_quant and act_norm_quant switched off)"
                                   : " (norm_quant and act_norm_quant need quantized activations)";
  }
  s += "\n\noperations (the layer block runs " + std::to_string(cfg_.n_layer) + " times):\n";
  for (size_t i = 0; i < ops_.size(); ++i) {
    const PlanOp& op = ops_[i];
    std::string io;
    for (size_t r = 0; r < op.reads.size(); ++r) {
      if (r) io += ',';
      io += buffer_name(op.reads[r]);
    }
    io += " -> ";
    for (size_t w = 0; w < op.writes.size(); ++w) {
      if (w) io += ',';
      io += buffer_name(op.writes[w]);
    }
    if (op.name == "lm_head") io += "logits";
    const bool layer = i >= 1 && i + 2 < ops_.size();
    std::snprintf(buf, sizeof buf, "  %2zu %s %-24s %-18s %s\n", i, layer ? "|" : " ",
                  op.name.c_str(), io.c_str(), op.detail.c_str());
    s += buf;
  }
  s += "\nactivation arena: " + mib(arena_bytes_) + " (separate buffers: " + mib(unshared_bytes()) +
       ")\n";
  for (const PlanBufferInfo& b : buffers_) {
    if (!b.used) continue;
    std::string live;
    for (const auto& [a, z] : b.live) {
      if (!live.empty()) live += ' ';
      live += std::to_string(a);
      live += "..";
      live += std::to_string(z);
    }
    std::snprintf(buf, sizeof buf, "  %-8s offset %10zu  size %10zu  live at ops %s\n",
                  b.name.c_str(), b.offset, b.bytes, live.c_str());
    s += buf;
  }
  return s;
}

}  // namespace bitnet::model
