"""BitNet b1.58 (the 2B4T graph) at small size, in PyTorch, for quantization-aware training.

Graph (the engine's, ../../src/model/bitnet-b158.cpp; reference README section 4):
  x = embed[token]
  per layer: h = rmsnorm(x) * attn_norm
             q, k, v = BL_q(h), BL_k(h), BL_v(h); rope (NEOX pairs (i, i + d/2)) on q, k
             a = softmax(q k^T / sqrt(d) + causal) v        (GQA: head h reads kv head h // group)
             x = x + BL_o(rmsnorm(a) * attn_sub_norm)
             h = rmsnorm(x) * ffn_norm
             x = x + BL_down(rmsnorm(relu(BL_gate(h))^2 * BL_up(h)) * ffn_sub_norm)
  logits = (rmsnorm(x) * out_norm) embed^T                    (tied head, not quantized)
BitLinear BL(x) with one scale per weight tensor: w_s = max(mean|W|, 1e-5),
T = clamp(round(W / w_s), -1, 1); per token s = 127 / max(max|x|, 1e-5),
q = clamp(round(x s), -128, 127); y = (T q) / s * w_s. Training passes gradients straight through
both roundings (STE). With quant=False the same module is a full-precision transformer.
"""
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    vocab: int = 4096
    dim: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 768
    seq: int = 256
    rope_theta: float = 10000.0
    eps: float = 1e-5
    quant: bool = True  # ternary weights + int8 activations; False: full precision

    @property
    def head_dim(self):
        return self.dim // self.heads

    def to_dict(self):
        return asdict(self)


def act_quant(x):
    """x rounded to its per-token int8 grid (values q / s)."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


def ternary(w):
    """(codes in {-1, 0, 1}, scale) of one weight tensor by absmean."""
    s = w.abs().mean().clamp(min=1e-5)
    return (w / s).round().clamp(-1, 1), s


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(cfg, n, dtype=torch.float32):
    half = cfg.head_dim // 2
    inv = cfg.rope_theta ** (-torch.arange(half, dtype=torch.float64) * 2.0 / cfg.head_dim)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rope(x, cos, sin):
    """x [B, H, T, d]: NEOX rotation of the pairs (i, i + d/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def attention(cfg, q, k, v, cos, sin):
    """q [B, T, H*d], k, v [B, T, Hkv*d] -> [B, T, H*d], causal."""
    B, T, _ = q.shape
    d = cfg.head_dim
    q = rope(q.view(B, T, cfg.heads, d).transpose(1, 2), cos[:T], sin[:T])
    k = rope(k.view(B, T, cfg.kv_heads, d).transpose(1, 2), cos[:T], sin[:T])
    v = v.view(B, T, cfg.kv_heads, d).transpose(1, 2)
    group = cfg.heads // cfg.kv_heads
    if group > 1:
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    a = torch.softmax(scores, dim=-1) @ v
    return a.transpose(1, 2).reshape(B, T, cfg.heads * d)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        E, KV, Fd = cfg.dim, cfg.head_dim * cfg.kv_heads, cfg.ffn
        self.cfg = cfg
        self.attn_norm = nn.Parameter(torch.ones(E))
        self.attn_sub_norm = nn.Parameter(torch.ones(E))
        self.ffn_norm = nn.Parameter(torch.ones(E))
        self.ffn_sub_norm = nn.Parameter(torch.ones(Fd))
        # nn.Linear layout [out, in], as Hugging Face stores them.
        self.q = nn.Parameter(torch.empty(E, E))
        self.k = nn.Parameter(torch.empty(KV, E))
        self.v = nn.Parameter(torch.empty(KV, E))
        self.o = nn.Parameter(torch.empty(E, E))
        self.gate = nn.Parameter(torch.empty(Fd, E))
        self.up = nn.Parameter(torch.empty(Fd, E))
        self.down = nn.Parameter(torch.empty(E, Fd))

    def linears(self):
        return {"q": self.q, "k": self.k, "v": self.v, "o": self.o, "gate": self.gate,
                "up": self.up, "down": self.down}

    def lin(self, x, *ws):
        """x times each weight in ws (one activation quantization of x shared by all)."""
        if self.cfg.quant:
            x = x + (act_quant(x) - x).detach()
            parts = []
            for w in ws:
                t, s = ternary(w)
                parts.append(w + (t * s - w).detach())
        else:
            parts = list(ws)
        y = F.linear(x, torch.cat(parts) if len(parts) > 1 else parts[0])
        return y.split([w.shape[0] for w in ws], dim=-1) if len(ws) > 1 else y

    def forward(self, x, cos, sin):
        c = self.cfg
        h = rmsnorm(x, self.attn_norm, c.eps)
        q, k, v = self.lin(h, self.q, self.k, self.v)
        a = attention(c, q, k, v, cos, sin)
        x = x + self.lin(rmsnorm(a, self.attn_sub_norm, c.eps), self.o)
        h = rmsnorm(x, self.ffn_norm, c.eps)
        g, u = self.lin(h, self.gate, self.up)
        return x + self.lin(rmsnorm(F.relu(g).pow(2) * u, self.ffn_sub_norm, c.eps), self.down)


class BitNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Parameter(torch.empty(cfg.vocab, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.out_norm = nn.Parameter(torch.ones(cfg.dim))
        cos, sin = rope_tables(cfg, cfg.seq)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.embed, std=0.02)
        for b in self.blocks:
            for name, w in b.linears().items():
                std = 0.02 / math.sqrt(2 * self.cfg.layers) if name in ("o", "down") else 0.02
                nn.init.normal_(w, std=std)

    def forward(self, tokens):
        x = self.embed[tokens]
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        return F.linear(rmsnorm(x, self.out_norm, self.cfg.eps), self.embed)

    def n_params(self):
        return sum(p.numel() for p in self.parameters())
