#include "model/bitnet-b158.h"

#include <string>

namespace bitnet::model {

std::vector<PlanOp> bitnet_b158_layer(const ModelConfig& cfg, kernels::TernaryLayout layout,
                                      bool quantize) {
  using B = PlanBuffer;
  const int64_t E = cfg.n_embd, F = cfg.n_ff, KV = cfg.n_embd_kv();
  const std::string lay = kernels::layout_name(layout);
  const std::string how = quantize ? ", quantizes its input" : ", float (validation)";
  const std::vector<B> q8 = quantize ? std::vector<B>{B::Q8} : std::vector<B>{};
  auto linear = [&](const char* name, LinearId id, int64_t n, int64_t k, const char* what, B in,
                    B out, PerfOp timer) {
    PlanOp op;
    op.kind = OpKind::Linear;
    op.name = name;
    op.detail = "ternary matmul [" + std::to_string(n) + " x " + std::to_string(k) + "] " + lay +
                ", " + what + how;
    op.reads = {in};
    op.writes = {out};
    op.scratch = q8;
    op.linear = id;
    op.timer = timer;
    return op;
  };
  auto norm = [&](const char* name, NormId id, std::string detail, B in, B out) {
    PlanOp op;
    op.kind = OpKind::Norm;
    op.name = name;
    op.detail = std::move(detail);
    op.reads = {in};
    op.writes = {out};
    op.norm = id;
    op.timer = PerfOp::Norm;
    return op;
  };
  auto residual = [] {
    PlanOp op;
    op.kind = OpKind::Residual;
    op.name = "residual";
    op.detail = "x += tmp";
    op.reads = {B::X, B::Tmp};
    op.writes = {B::X};
    op.timer = PerfOp::Residual;
    return op;
  };
  PlanOp attention;
  attention.kind = OpKind::Attention;
  attention.name = "rope+kv+attention";
  attention.detail = std::string("rope (") + (cfg.rope_style == RopeStyle::Neox ? "neox" : "norm") +
                     ") on q and k, store k and v in the KV pages, softmax(q k^T) v";
  attention.reads = {B::Qkv, B::Rope};
  attention.writes = {B::Attn};
  attention.scratch = {B::Scores};
  attention.timer = PerfOp::Attention;
  PlanOp act;
  act.kind = OpKind::ActNorm;
  act.name = "act+ffn_sub_norm";
  act.detail = std::string("act = ") +
               (cfg.activation == FfnActivation::Relu2 ? "relu^2" : "silu") + "(gate) * up" +
               (cfg.sub_norms ? ", rmsnorm(act) ffn_sub_norm" : " (no sub-norm)");
  act.reads = {B::GateUp};
  act.writes = {B::Act};
  act.norm = NormId::FfnSub;
  act.timer = PerfOp::FfnAct;

  return {
      norm("attn_norm", NormId::Attn, "h = rmsnorm(x) attn_norm", B::X, B::H),
      linear("qkv", LinearId::Qkv, E + 2 * KV, E, "fused q|k|v", B::H, B::Qkv, PerfOp::MatmulQkv),
      attention,
      norm("attn_sub_norm", NormId::AttnSub,
           cfg.sub_norms ? "h = rmsnorm(attn) attn_sub_norm" : "h = attn (no sub-norm)", B::Attn,
           B::H),
      linear("attn_out", LinearId::AttnOut, E, E, "output projection", B::H, B::Tmp,
             PerfOp::MatmulAttnOut),
      residual(),
      norm("ffn_norm", NormId::Ffn, "h = rmsnorm(x) ffn_norm", B::X, B::H),
      linear("gate_up", LinearId::GateUp, 2 * F, E, "fused gate|up", B::H, B::GateUp,
             PerfOp::MatmulGateUp),
      act,
      linear("down", LinearId::Down, E, F, "down projection", B::Act, B::Tmp, PerfOp::MatmulDown),
      residual(),
  };
}

}  // namespace bitnet::model
