// ExecutionPlan (model/execution-plan.h): the operation list and fusions per configuration, and
// the arena: buffers live at the same operation never share bytes (checked op by op, independently
// of the allocator), every read is of a live buffer, and sharing makes the arena smaller than
// separate buffers.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "model/bitnet-b158.h"
#include "model/execution-plan.h"
#include "model/perf-ops.h"
#include "tools/dummy-model.h"

namespace bitnet::model {
namespace {

bool live_at(const PlanBufferInfo& b, int op) {
  return std::any_of(b.live.begin(), b.live.end(),
                     [&](const auto& r) { return r.first <= op && op <= r.second; });
}

void expect_sound(const ExecutionPlan& plan) {
  const auto& bufs = plan.buffers();
  for (int op = 0; op < static_cast<int>(plan.ops().size()); ++op) {
    for (PlanBuffer r : plan.ops()[static_cast<size_t>(op)].reads) {
      EXPECT_TRUE(live_at(bufs[static_cast<size_t>(r)], op))
          << bufs[static_cast<size_t>(r)].name << " read at op " << op << " but not live";
    }
    for (const auto& a : bufs) {
      for (const auto& b : bufs) {
        if (&a >= &b || !a.used || !b.used || !live_at(a, op) || !live_at(b, op)) continue;
        const bool disjoint = a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset;
        EXPECT_TRUE(disjoint) << a.name << " and " << b.name
                              << " share bytes while both live at op " << op;
      }
    }
  }
  for (const auto& b : bufs) {
    if (!b.used) continue;
    EXPECT_EQ(b.offset % 64, 0u) << b.name;
    EXPECT_LE(b.offset + b.bytes, plan.arena_bytes()) << b.name;
  }
  EXPECT_LT(plan.arena_bytes(), plan.unshared_bytes());
}

std::vector<std::string> names(const ExecutionPlan& p) {
  std::vector<std::string> n;
  for (const PlanOp& op : p.ops()) n.push_back(op.name);
  return n;
}

TEST(ExecutionPlan, FusedPlanOf2b4t) {
  const ModelConfig& cfg = find_dummy_preset("2b4t").config;
  for (int64_t rows : {1, 7, 256}) {
    PlanOptions o;
    o.max_rows = rows;
    const ExecutionPlan p(cfg, kernels::TernaryLayout::T1, o);
    EXPECT_EQ(p.fusions(),
              (std::vector<std::string>{"qkv", "gate_up", "norm_quant", "act_norm_quant"}));
    EXPECT_EQ(names(p),
              (std::vector<std::string>{
                  "embed", "attn_norm+quant", "qkv", "rope+kv+attention", "attn_sub_norm+quant",
                  "attn_out", "residual+ffn_norm+quant", "gate_up", "act+ffn_sub_norm+quant",
                  "down", "residual", "output_norm", "lm_head"}));
    EXPECT_FALSE(p.buffers()[static_cast<size_t>(PlanBuffer::Act)].used);
    expect_sound(p);
    // gate_up shares bytes with buffers dead by then (qkv, attn or the attention scores).
    const auto& gu = p.buffers()[static_cast<size_t>(PlanBuffer::GateUp)];
    bool shares = false;
    for (PlanBuffer other : {PlanBuffer::Qkv, PlanBuffer::Attn, PlanBuffer::Scores}) {
      const auto& b = p.buffers()[static_cast<size_t>(other)];
      shares = shares || (gu.offset < b.offset + b.bytes && b.offset < gu.offset + gu.bytes);
    }
    EXPECT_TRUE(shares) << rows << " rows";
    EXPECT_EQ(gu.bytes, static_cast<size_t>(rows * 2 * cfg.n_ff * 4 + 63) / 64 * 64);
  }
}

TEST(ExecutionPlan, UnfusedAndValidationPlans) {
  const ModelConfig& cfg = find_dummy_preset("2b4t").config;
  PlanOptions o;
  o.max_rows = 16;
  o.fused_norm_quant = false;
  const ExecutionPlan unfused(cfg, kernels::TernaryLayout::T2, o);
  EXPECT_EQ(unfused.fusions(), (std::vector<std::string>{"qkv", "gate_up"}));
  EXPECT_TRUE(unfused.buffers()[static_cast<size_t>(PlanBuffer::Act)].used);
  EXPECT_TRUE(unfused.buffers()[static_cast<size_t>(PlanBuffer::Q8)].used);
  EXPECT_EQ(names(unfused).size(), 14u);
  expect_sound(unfused);
  EXPECT_NE(unfused.describe().find("switched off"), std::string::npos);

  o.fused_norm_quant = true;
  o.quantize_activations = false;  // the validation mode: no int8 anywhere, no fusion
  const ExecutionPlan validation(cfg, kernels::TernaryLayout::T2, o);
  EXPECT_FALSE(validation.fused());
  EXPECT_FALSE(validation.buffers()[static_cast<size_t>(PlanBuffer::Q8)].used);
  expect_sound(validation);
  EXPECT_NE(validation.describe().find("need quantized activations"), std::string::npos);
}

// The rewrites on the architecture's layer: what runs is the unfused list rewritten, and the split
// form has q, k, v and gate, up as row ranges of the fused matrices.
TEST(ExecutionPlan, FusedAndSplitFormsAreRewritesOfTheLayer) {
  const ModelConfig& cfg = find_dummy_preset("tiny-1m").config;
  std::vector<PlanOp> layer = bitnet_b158_layer(cfg, kernels::TernaryLayout::T2, true);
  ASSERT_EQ(layer.size(), 11u);
  std::vector<PlanOp> fused = layer;
  fuse_norm_quant(fused);
  std::vector<std::string> n;
  for (const PlanOp& op : fused) n.push_back(op.name);
  EXPECT_EQ(n,
            (std::vector<std::string>{"attn_norm+quant", "qkv", "rope+kv+attention",
                                      "attn_sub_norm+quant", "attn_out", "residual+ffn_norm+quant",
                                      "gate_up", "act+ffn_sub_norm+quant", "down", "residual"}));
  EXPECT_EQ(fused[1].kind, OpKind::MatmulQ8);
  EXPECT_TRUE(fused[5].add_residual);
  std::vector<PlanOp> split = layer;
  split_linears(split, cfg);
  std::vector<std::pair<int64_t, int64_t>> rows;
  for (const PlanOp& op : split) {
    if (op.kind == OpKind::Linear && (op.linear == LinearId::Qkv || op.linear == LinearId::GateUp))
      rows.push_back({op.row0, op.row1});
  }
  const int64_t E = cfg.n_embd, KV = cfg.n_embd_kv(), F = cfg.n_ff;
  EXPECT_EQ(rows, (std::vector<std::pair<int64_t, int64_t>>{
                      {0, E}, {E, E + KV}, {E + KV, E + 2 * KV}, {0, F}, {F, 2 * F}}));
  PlanOptions o;
  o.fused_norm_quant = false;
  o.split_linears = true;
  const ExecutionPlan p(cfg, kernels::TernaryLayout::T2, o);
  EXPECT_EQ(p.ops().size(), 1 + split.size() + 2);  // embed, the layer, output_norm, lm_head
  expect_sound(p);
  o.fused_norm_quant = true;
  EXPECT_THROW(ExecutionPlan(cfg, kernels::TernaryLayout::T2, o), std::invalid_argument);
}

TEST(ExecutionPlan, DescribeListsOpsBuffersAndTheArena) {
  const ModelConfig& cfg = find_dummy_preset("tiny-1m").config;
  const ExecutionPlan p(cfg, kernels::TernaryLayout::T2, PlanOptions{});
  const std::string d = p.describe();
  for (const char* want :
       {"fusions applied: qkv gate_up norm_quant act_norm_quant", "residual+ffn_norm+quant",
        "activation arena:", "gate_up  offset", "live at ops"}) {
    EXPECT_NE(d.find(want), std::string::npos) << want << "\n" << d;
  }
}

}  // namespace
}  // namespace bitnet::model

namespace bitnet::model {
namespace {

// The ids the session and the scheduler time into the core monitor: one distinct name each.
TEST(PerfOps, EveryOperationHasOneDistinctName) {
  const auto names = perf_op_names();
  ASSERT_EQ(names.size(), static_cast<size_t>(PerfOp::kCount));
  std::set<std::string_view> seen(names.begin(), names.end());
  EXPECT_EQ(seen.size(), names.size());
  EXPECT_EQ(perf_op_name(PerfOp::LmHead), "lm_head");
  EXPECT_EQ(perf_op_name(PerfOp::kCount), "?");
}

}  // namespace
}  // namespace bitnet::model
