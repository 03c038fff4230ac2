#include "model/execution-plan.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <stdexcept>

#include "model/bitnet-b158.h"

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
    case PlanBuffer::Rope:
      return "rope";
    case PlanBuffer::Rows:
      return "rows";
    case PlanBuffer::Scores:
      return "scores";
    case PlanBuffer::HeadRows:
      return "head_rows";
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

bool reads(const PlanOp& op, PlanBuffer b) {
  return std::find(op.reads.begin(), op.reads.end(), b) != op.reads.end();
}

// The quantized matmul that replaces a Linear once its input is quantized by the operation before.
PlanOp matmul_of(const PlanOp& linear) {
  PlanOp mm = linear;
  mm.kind = OpKind::MatmulQ8;
  mm.reads = {PlanBuffer::Q8};
  mm.scratch.clear();
  const size_t cut = mm.detail.rfind(", quantizes its input");
  if (cut != std::string::npos) mm.detail.erase(cut);
  return mm;
}

}  // namespace

void fuse_norm_quant(std::vector<PlanOp>& layer) {
  using B = PlanBuffer;
  std::vector<PlanOp> out;
  for (size_t i = 0; i < layer.size(); ++i) {
    const PlanOp& op = layer[i];
    const bool next_linear = i + 1 < layer.size() && layer[i + 1].kind == OpKind::Linear;
    const bool next_next_linear = i + 2 < layer.size() && layer[i + 2].kind == OpKind::Linear;
    if (op.kind == OpKind::Residual && i + 1 < layer.size() && layer[i + 1].kind == OpKind::Norm &&
        reads(layer[i + 1], B::X) && next_next_linear) {
      // x += tmp, rmsnorm(x), BitLinear -> one pass per row writing x and the int8 rows.
      PlanOp nq;
      nq.kind = OpKind::NormQuant;
      nq.name = "residual+" + layer[i + 1].name + "+quant";
      nq.detail = "fused: x += tmp, rmsnorm(x) " + layer[i + 1].name + ", int8 quantization";
      nq.reads = {B::X, B::Tmp};
      nq.writes = {B::X, B::Q8};
      nq.scratch = {B::Rows};
      nq.norm = layer[i + 1].norm;
      nq.add_residual = true;
      nq.timer = PerfOp::Norm;
      out.push_back(nq);
      out.push_back(matmul_of(layer[i + 2]));
      i += 2;
    } else if (op.kind == OpKind::Norm && next_linear) {
      PlanOp nq;
      nq.kind = OpKind::NormQuant;
      nq.name = op.name + "+quant";
      nq.detail = "fused: " + op.detail.substr(op.detail.find('=') + 2) + ", int8 quantization";
      nq.reads = op.reads;
      nq.writes = {B::Q8};
      nq.scratch = {B::Rows};
      nq.norm = op.norm;
      nq.timer = PerfOp::Norm;
      out.push_back(nq);
      out.push_back(matmul_of(layer[i + 1]));
      i += 1;
    } else if (op.kind == OpKind::ActNorm && next_linear) {
      PlanOp aq = op;
      aq.kind = OpKind::ActNormQuant;
      aq.name = op.name + "+quant";
      aq.detail = "fused: " + op.detail.substr(op.detail.find('=') + 2) + ", int8 quantization";
      aq.writes = {B::Q8};
      aq.scratch = {B::Rows};
      out.push_back(aq);
      out.push_back(matmul_of(layer[i + 1]));
      i += 1;
    } else {
      out.push_back(op);
    }
  }
  layer = std::move(out);
}

void split_linears(std::vector<PlanOp>& layer, const ModelConfig& cfg) {
  const int64_t E = cfg.n_embd, KV = cfg.n_embd_kv(), F = cfg.n_ff;
  for (int64_t r : {E, KV, F}) {
    if (r % kernels::kGroupRows != 0) {
      throw std::invalid_argument("split linears: " + std::to_string(r) +
                                  " rows is not a whole number of packed row groups");
    }
  }
  std::vector<PlanOp> out;
  for (const PlanOp& op : layer) {
    if (op.kind != OpKind::Linear ||
        (op.linear != LinearId::Qkv && op.linear != LinearId::GateUp)) {
      out.push_back(op);
      continue;
    }
    struct Part {
      const char* name;
      int64_t r0, r1;
    };
    const std::vector<Part> parts =
        op.linear == LinearId::Qkv
            ? std::vector<Part>{{"q", 0, E}, {"k", E, E + KV}, {"v", E + KV, E + 2 * KV}}
            : std::vector<Part>{{"gate", 0, F}, {"up", F, 2 * F}};
    for (const Part& p : parts) {
      PlanOp part = op;
      part.name = p.name;
      part.detail = "rows " + std::to_string(p.r0) + ".." + std::to_string(p.r1) + " of " +
                    op.detail + " (split: quantizes its input again)";
      part.row0 = p.r0;
      part.row1 = p.r1;
      out.push_back(part);
    }
  }
  layer = std::move(out);
}

ExecutionPlan::ExecutionPlan(const ModelConfig& cfg, kernels::TernaryLayout layout,
                             const PlanOptions& options)
    : cfg_(cfg), opt_(options), layout_(layout) {
  if (opt_.split_linears && (!opt_.quantize_activations || opt_.fused_norm_quant)) {
    throw std::invalid_argument(
        "split linears need quantized activations and the norm fusions off");
  }
  const int64_t R = std::max<int64_t>(1, opt_.max_rows), E = cfg.n_embd, F = cfg.n_ff;
  const int64_t KV = cfg.n_embd_kv(), T = std::max(1, opt_.threads);
  const int64_t n_ctx = opt_.n_ctx > 0 ? opt_.n_ctx : cfg.n_ctx_train;
  q8_k_ = std::max(E, F);
  scores_stride_ = (cfg.n_head / cfg.n_head_kv * n_ctx + 15) / 16 * 16;
  head_stride_ = (E + 15) / 16 * 16;
  const auto f32 = [&](int64_t rows, int64_t cols) {
    return align_up(static_cast<size_t>(rows * cols) * 4);
  };
  buffers_.resize(static_cast<size_t>(PlanBuffer::kCount));
  const size_t sizes[] = {f32(R, E),
                          f32(R, E),
                          f32(R, E + 2 * KV),
                          f32(R, E),
                          f32(R, E),
                          f32(R, 2 * F),
                          f32(R, F),
                          align_up(static_cast<size_t>(R * q8_k_)) + align_up(R * 4) * 2,
                          align_up(static_cast<size_t>(R * cfg.rope_dim) * 8),
                          f32(T, q8_k_),
                          f32(T, scores_stride_),
                          f32(T, head_stride_)};
  static_assert(std::size(sizes) == static_cast<size_t>(PlanBuffer::kCount));
  for (size_t i = 0; i < buffers_.size(); ++i) {
    buffers_[i].id = static_cast<PlanBuffer>(i);
    buffers_[i].name = buffer_name(buffers_[i].id);
    buffers_[i].bytes = sizes[i];
  }

  using B = PlanBuffer;
  PlanOp embed;
  embed.kind = OpKind::Embed;
  embed.name = "embed";
  embed.detail = "x = token_embd[token]; each row's RoPE angles";
  embed.writes = {B::X, B::Rope};
  embed.timer = PerfOp::Embed;
  ops_.push_back(embed);
  std::vector<PlanOp> layer = bitnet_b158_layer(cfg, layout, opt_.quantize_activations);
  if (fused()) fuse_norm_quant(layer);
  if (opt_.split_linears) split_linears(layer, cfg);
  ops_.insert(ops_.end(), layer.begin(), layer.end());
  PlanOp norm;
  norm.kind = OpKind::OutputNorm;
  norm.name = "output_norm";
  norm.detail = "h = rmsnorm(x) output_norm (rows that want logits)";
  norm.reads = {B::X};
  norm.writes = {B::H};
  norm.norm = NormId::Output;
  norm.timer = PerfOp::Norm;
  ops_.push_back(norm);
  PlanOp head;
  head.kind = OpKind::LmHead;
  head.name = "lm_head";
  head.detail = "logits = h . output^T";
  head.reads = {B::H};
  head.scratch = {B::HeadRows};
  if (opt_.quantize_activations) head.scratch.push_back(B::Q8);  // the int8 head's input rows
  head.timer = PerfOp::LmHead;
  ops_.push_back(head);

  derive_lifetimes();
  assign_offsets();
}

void ExecutionPlan::derive_lifetimes() {
  const int last = static_cast<int>(ops_.size()) - 1;
  for (int i = 0; i <= last; ++i) {
    const PlanOp& op = ops_[static_cast<size_t>(i)];
    for (PlanBuffer b : op.reads) {
      PlanBufferInfo& info = buffers_[static_cast<size_t>(b)];
      if (!info.live.empty()) info.live.back().second = i;
    }
    for (PlanBuffer b : op.writes) {
      PlanBufferInfo& info = buffers_[static_cast<size_t>(b)];
      info.used = true;
      if (!reads(op, b)) info.live.push_back({i, i});
    }
    for (PlanBuffer b : op.scratch) {
      PlanBufferInfo& info = buffers_[static_cast<size_t>(b)];
      info.used = true;
      info.live.push_back({i, i});
    }
  }
  // The residual stream and the RoPE table cross layers: live from the embedding to the end.
  for (PlanBuffer b : {PlanBuffer::X, PlanBuffer::Rope}) {
    buffers_[static_cast<size_t>(b)].live = {{0, last}};
  }
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
  std::vector<std::string> f;
  if (!opt_.split_linears) f = {"qkv", "gate_up"};
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
  char buf[320];
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
  if (opt_.split_linears) s += " (q|k|v and gate|up split: benchmark only)";
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
    if (op.kind == OpKind::LmHead) io += "logits";
    const bool layer = i >= layer_begin() && i < layer_end();
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
