#!/usr/bin/env python3
"""Files that let ctest check the engine against this trainer (tests/test-shipped-model.cpp).

From the exported checkpoint (checkpoint.Reference, float64) and the tokenizer library:
  heldout.txt            the held-out split, as trained on never
  heldout.ids            its SentencePiece ids (whole text, no BOS), uint16 little-endian
  logits.f32             float64 reference logits (int8 activation quantization), rounded to
                         float32, at a subset of the vocabulary columns, for fixed prompts and 16
                         greedy steps: rows = prompt rows, then one per greedy token 0..14
  logits-noaq.f32        the same rows without activation quantization
  agreement.json         prompts, tokens, greedy tokens, full-row argmax and top-2 margins, the
                         columns, and the held-out perplexity as llama-perplexity computes it
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch

import checkpoint
import tokenizer

# Candidates; the N_PROMPTS whose greedy continuations keep a top-2 margin >= 1.0 the longest
# are kept, so that the test's "greedy tokens identical where the margin allows" checks many steps.
CANDIDATES = ["In the beginning God created", "And Jesus answered and said unto them,",
              "The LORD is my shepherd;", "And God said unto Moses,",
              "Blessed are the poor in spirit:", "And it came to pass, when", "Thus saith the LORD",
              "Now the serpent was more subtil", "For God so loved the world,", "Hear, O Israel:",
              "And the children of Israel", "Then said Jesus unto his disciples,"]
N_PROMPTS = 3
N_GREEDY = 16
N_COLUMNS = 256


def greedy(ref, tokens, n):
    seq, out = list(tokens), []
    for _ in range(n):
        row = ref.logits(seq)[-1]
        out.append(int(torch.argmax(row)))  # ties: the lowest id
        seq.append(out[-1])
    return out


def top2_margin(rows):
    top = torch.topk(rows, 2, dim=-1).values
    return (top[:, 0] - top[:, 1]).tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hf", required=True, help="the exported checkpoint directory")
    ap.add_argument("--data", required=True, help="directory with heldout.txt")
    ap.add_argument("--gguf-name", required=True, help="file name of the converted model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-ctx", type=int, default=0, help="perplexity context (default: training)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    ref = checkpoint.Reference(args.hf)
    sp = tokenizer.load(os.path.join(args.hf, "tokenizer.model"))
    bos = sp.bos_id()
    n_ctx = args.n_ctx or ref.cfg.seq

    shutil.copy(os.path.join(args.data, "heldout.txt"), os.path.join(args.out, "heldout.txt"))
    with open(os.path.join(args.out, "heldout.txt"), encoding="ascii") as f:
        ids = tokenizer.encode(sp, f.read())
    np.array(ids, dtype="<u2").tofile(os.path.join(args.out, "heldout.ids"))
    ppl, scored = checkpoint.perplexity(ref.logits, [bos] + ids, bos, n_ctx)
    print(f"held-out: {len(ids)} tokens; float64 reference perplexity {ppl:.4f} "
          f"({scored} scored tokens, n_ctx {n_ctx})")

    ranked = []
    for text in CANDIDATES:
        toks = [bos] + tokenizer.encode(sp, text)
        gen = greedy(ref, toks, N_GREEDY)
        aq = ref.logits(toks + gen[:-1])
        gen_margin = top2_margin(aq[len(toks) - 1:])
        steady = next((i for i, m in enumerate(gen_margin) if m < 1.0), N_GREEDY)
        ranked.append((-steady, CANDIDATES.index(text), text, toks, gen, aq, gen_margin))
    prompts, rows_aq, rows_fp = [], [], []
    for _, _, text, toks, gen, aq, gen_margin in sorted(ranked)[:N_PROMPTS]:
        seq = toks + gen[:-1]
        fp = ref.logits(seq, act_quant=False)
        prompts.append({"text": text, "tokens": toks, "greedy_tokens": gen,
                        "greedy_text": sp.decode(gen), "greedy_top2_margin": gen_margin,
                        "argmax": torch.argmax(aq, -1).tolist(), "top2_margin": top2_margin(aq),
                        "argmax_no_act_quant": torch.argmax(fp, -1).tolist(),
                        "top2_margin_no_act_quant": top2_margin(fp), "rows": len(seq)})
        rows_aq.append(aq)
        rows_fp.append(fp)
        print(f"{text!r} -> {sp.decode(gen)!r}  (smallest greedy margin {min(gen_margin):.2f})")
    all_aq = torch.cat(rows_aq)
    # Columns: each row's 8 best tokens, then seeded random ones up to N_COLUMNS.
    cols = set(torch.topk(all_aq, 8, dim=-1).indices.flatten().tolist())
    rng = np.random.default_rng(14)
    for c in rng.permutation(ref.cfg.vocab):
        if len(cols) >= N_COLUMNS:
            break
        cols.add(int(c))
    cols = sorted(cols)
    sel = torch.tensor(cols)
    all_aq[:, sel].numpy().astype("<f4").tofile(os.path.join(args.out, "logits.f32"))
    torch.cat(rows_fp)[:, sel].numpy().astype("<f4").tofile(
        os.path.join(args.out, "logits-noaq.f32"))

    doc = {
        "about": "made by tools/train/agreement.py from the exported checkpoint; read by "
                 "tests/test-shipped-model.cpp",
        "model": args.gguf_name,
        "reference": "float64 forward of the exported values (tools/train/checkpoint.py "
                     "Reference): ternary codes x per-tensor scale, F16 embedding (tied head), F32 "
                     "norms; BitLinear inputs quantized per token to int8 (127 / absmax, round half "
                     "to even) except in the *_no_act_quant entries",
        "heldout": {"text": "heldout.txt", "ids": "heldout.ids", "ids_dtype": "uint16 LE",
                    "n_tokens": len(ids),
                    "tokenizer": f"sentencepiece {getattr(tokenizer.spm, '__version__', '?')} "
                                 "encode(whole text), no BOS"},
        "perplexity": {"n_ctx": n_ctx, "value": ppl, "scored_tokens": scored,
                       "semantics": "llama-perplexity: [BOS] + ids, n_chunk = n_tokens / n_ctx, "
                                    "each chunk's first token replaced by BOS, from an empty "
                                    "cache, mean -log p(token[j+1]) for j in [n_ctx/2, n_ctx-1)"},
        "logits": {"file": "logits.f32", "file_no_act_quant": "logits-noaq.f32",
                   "dtype": "float32 LE, row-major [rows of all prompts in order][columns]",
                   "columns": cols, "prompts": prompts},
    }
    with open(os.path.join(args.out, "agreement.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
