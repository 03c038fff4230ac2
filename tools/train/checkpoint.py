"""The Hugging Face-style checkpoint of a trained model, and a float64 reference forward of it.

export() writes config.json (BitNetForCausalLM, hidden_act relu2, quantization_config bitnet /
autobitlinear), model.safetensors and the tokenizer files. Linear weights are stored in the packed
ternary form of microsoft/bitnet-b1.58-2B-4T: uint8 [out/4, in], the 2-bit field k of byte [r][c]
holding T[k*out/4 + r][c] + 1, with <name>.weight_scale (F32 [1]) multiplying the output. The
embedding is F16 (what the engine's GGUF holds), norms F32.

Reference reads that directory back (its own safetensors parser) and runs the graph of model.py
in float64 on exactly the stored values: codes * scale, the F16 embedding, the F32 norms. With
act_quant=True every BitLinear input is quantized per token to int8 as the engine does.
"""
import json
import math
import os
import shutil
import struct

import numpy as np
import torch
import torch.nn.functional as F

from model import Config, ternary, rmsnorm, rope_tables, attention

LINEARS = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
           "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
           "down": "mlp.down_proj"}
NORMS = {"attn_norm": "input_layernorm", "attn_sub_norm": "self_attn.attn_sub_norm",
         "ffn_norm": "post_attention_layernorm", "ffn_sub_norm": "mlp.ffn_sub_norm"}
DTYPES = {np.dtype(np.uint8): "U8", np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    inv = {v: k for k, v in DTYPES.items()}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        b, e = h["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=inv[h["dtype"]]).reshape(h["shape"])
    return out


def pack_ternary(t):
    """codes [out, in] in {-1, 0, 1} -> uint8 [out/4, in] (see the module comment)."""
    t = (t.astype(np.int64) + 1).astype(np.uint8)
    q = t.shape[0] // 4
    return (t[:q] | (t[q:2 * q] << 2) | (t[2 * q:3 * q] << 4) | (t[3 * q:] << 6)).astype(np.uint8)


def unpack_ternary(p):
    return np.concatenate([((p >> (2 * k)) & 3).astype(np.int8) - 1 for k in range(4)])


def export(model, tokenizer_dir, out_dir, name):
    cfg = model.cfg
    if not cfg.quant:
        raise ValueError("only a ternary (quant=True) model has a BitNet checkpoint")
    os.makedirs(out_dir, exist_ok=True)
    t = {"model.embed_tokens.weight": model.embed.detach().float().numpy().astype(np.float16)}
    for i, b in enumerate(model.blocks):
        p = f"model.layers.{i}."
        for key, hf in NORMS.items():
            t[p + hf + ".weight"] = getattr(b, key).detach().float().numpy()
        for key, hf in LINEARS.items():
            codes, s = ternary(getattr(b, key).detach().float())
            t[p + hf + ".weight"] = pack_ternary(codes.to(torch.int8).numpy())
            t[p + hf + ".weight_scale"] = np.array([s.item()], dtype=np.float32)
    t["model.norm.weight"] = model.out_norm.detach().float().numpy()
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    config = {
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "name": name,
        "hidden_act": "relu2", "hidden_size": cfg.dim, "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads, "num_key_value_heads": cfg.kv_heads,
        "intermediate_size": cfg.ffn, "vocab_size": cfg.vocab, "max_position_embeddings": cfg.seq,
        "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.eps, "tie_word_embeddings": True,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16",
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                "quantization_mode": "offline"},
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for fn in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        shutil.copy(os.path.join(tokenizer_dir, fn), os.path.join(out_dir, fn))


class Reference:
    """The exported checkpoint run in float64 (see the module comment)."""

    def __init__(self, hf_dir):
        with open(os.path.join(hf_dir, "config.json")) as f:
            c = json.load(f)
        self.cfg = Config(vocab=c["vocab_size"], dim=c["hidden_size"],
                          layers=c["num_hidden_layers"], heads=c["num_attention_heads"],
                          kv_heads=c["num_key_value_heads"], ffn=c["intermediate_size"],
                          seq=c["max_position_embeddings"], rope_theta=c["rope_theta"],
                          eps=c["rms_norm_eps"])
        t = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
        d = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))
        self.embed = d(t["model.embed_tokens.weight"])
        self.out_norm = d(t["model.norm.weight"])
        self.layers = []
        for i in range(self.cfg.layers):
            p = f"model.layers.{i}."
            L = {k: d(t[p + hf + ".weight"]) for k, hf in NORMS.items()}
            for k, hf in LINEARS.items():
                L[k] = (d(unpack_ternary(t[p + hf + ".weight"])),
                        float(t[p + hf + ".weight_scale"].reshape(-1)[0]))
            self.layers.append(L)

    def lin(self, x, act_quant, *names_and_layer):
        *names, L = names_and_layer
        if act_quant:
            s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
            q = (x * s).round().clamp(-128, 127)
            outs = [(q @ L[n][0].T) / s * L[n][1] for n in names]
        else:
            outs = [(x @ L[n][0].T) * L[n][1] for n in names]
        return outs if len(outs) > 1 else outs[0]

    @torch.no_grad()
    def logits(self, tokens, act_quant=True):
        """tokens: list of ids -> float64 logits [len, vocab], causal over the whole list."""
        c = self.cfg
        cos, sin = rope_tables(c, len(tokens), torch.float64)
        x = self.embed[torch.tensor(tokens)][None]
        for L in self.layers:
            h = rmsnorm(x, L["attn_norm"], c.eps)
            q, k, v = self.lin(h, act_quant, "q", "k", "v", L)
            a = attention(c, q, k, v, cos, sin)
            x = x + self.lin(rmsnorm(a, L["attn_sub_norm"], c.eps), act_quant, "o", L)
            h = rmsnorm(x, L["ffn_norm"], c.eps)
            g, u = self.lin(h, act_quant, "gate", "up", L)
            m = rmsnorm(F.relu(g).pow(2) * u, L["ffn_sub_norm"], c.eps)
            x = x + self.lin(m, act_quant, "down", L)
        return (rmsnorm(x, self.out_norm, c.eps) @ self.embed.T)[0]


def perplexity(logits_fn, ids, bos, n_ctx):
    """llama.cpp's llama-perplexity on ids (the text's tokens, BOS already in front when the model
    adds one): chunks of n_ctx tokens, the first replaced by BOS, each from an empty context; the
    mean of -log p(token[j + 1]) over j in [n_ctx / 2, n_ctx - 1). Returns (ppl, n_scored)."""
    n_chunk = len(ids) // n_ctx
    if n_chunk < 2:
        raise ValueError(f"{len(ids)} tokens: llama-perplexity needs at least 2 * n_ctx")
    nll, n = 0.0, 0
    first = n_ctx // 2
    for c in range(n_chunk):
        chunk = list(ids[c * n_ctx:(c + 1) * n_ctx])
        chunk[0] = bos
        lp = torch.log_softmax(logits_fn(chunk).double(), dim=-1)
        tgt = torch.tensor(ids[c * n_ctx + first + 1:(c + 1) * n_ctx])
        nll -= lp[first:n_ctx - 1].gather(1, tgt[:, None]).sum().item()
        n += n_ctx - 1 - first
    return math.exp(nll / n), n
