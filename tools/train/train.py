#!/usr/bin/env python3
"""Trains a small BitNet b1.58 (or, with --fp, the same architecture in full precision).

Batches are random windows of the training split's token stream, each starting with BOS (as the
engine's prompts and llama-perplexity's chunks do); the target is the next token. AdamW with a
linear warm-up and a cosine decay to 10% of the peak rate; fixed seeds. Every --eval-every steps
the held-out loss is measured exactly as llama-perplexity computes it (checkpoint.perplexity:
chunks of --seq tokens, second half scored). Writes OUT/log.jsonl, OUT/state.pt (resumable with
--resume) and, for the ternary model, the Hugging Face checkpoint OUT/NAME (checkpoint.export).
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch

import checkpoint
import tokenizer
from model import BitNet, Config


def token_stream(sp, path):
    with open(path, encoding="ascii") as f:
        return np.array(tokenizer.encode(sp, f.read()), dtype=np.int64)


@torch.no_grad()
def heldout_loss(model, ids, bos, n_ctx, batch=16):
    """Mean NLL of llama-perplexity's scored positions (see checkpoint.perplexity), batched."""
    model.eval()
    n_chunk = len(ids) // n_ctx
    chunks = torch.from_numpy(ids[:n_chunk * n_ctx].reshape(n_chunk, n_ctx).copy())
    targets = chunks.clone()
    chunks[:, 0] = bos
    first = n_ctx // 2
    nll, n = 0.0, 0
    for i in range(0, n_chunk, batch):
        lp = torch.log_softmax(model(chunks[i:i + batch]).double(), dim=-1)
        tgt = targets[i:i + batch, first + 1:]
        nll -= lp[:, first:n_ctx - 1].gather(2, tgt[..., None]).sum().item()
        n += tgt.numel()
    model.train()
    return nll / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="directory with train.txt and heldout.txt")
    ap.add_argument("--tokenizer", required=True, help="directory with tokenizer.model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--fp", action="store_true", help="full precision (no ternary, no int8)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--max-train-tokens", type=int, default=0, help="use a slice (smoke runs)")
    ap.add_argument("--max-heldout-tokens", type=int, default=0)
    ap.add_argument("--name", default="bitnet-b158-kjv")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/state.pt (with a "
                    "different --steps the cosine decay is recomputed from there)")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="save the state and stop at this step (resume later with --resume)")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    sp = tokenizer.load(os.path.join(args.tokenizer, "tokenizer.model"))
    bos = sp.bos_id()
    train_ids = token_stream(sp, os.path.join(args.data, "train.txt"))
    held_ids = np.concatenate([[bos], token_stream(sp, os.path.join(args.data, "heldout.txt"))])
    if args.max_train_tokens:
        train_ids = train_ids[:args.max_train_tokens]
    if args.max_heldout_tokens:
        held_ids = held_ids[:args.max_heldout_tokens]
    cfg = Config(vocab=sp.get_piece_size(), dim=args.dim, layers=args.layers, heads=args.heads,
                 kv_heads=args.kv_heads, ffn=args.ffn, seq=args.seq, quant=not args.fp)
    model = BitNet(cfg)
    decay = [p for n, p in model.named_parameters() if p.ndim == 2]
    other = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    step, log_path, state_path = 0, os.path.join(args.out, "log.jsonl"), os.path.join(args.out,
                                                                                       "state.pt")
    elapsed_before = 0.0
    if args.resume and os.path.exists(state_path):
        st = torch.load(state_path)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        step, elapsed_before = st["step"], st["elapsed"]
        print(f"resumed at step {step}")
    elif os.path.exists(log_path):
        os.remove(log_path)
    print(f"{'ternary' if cfg.quant else 'full-precision'} model: {model.n_params()} parameters "
          f"({model.n_params() - cfg.vocab * cfg.dim} outside the embedding); train split "
          f"{len(train_ids)} tokens, held-out {len(held_ids)}; {args.steps} steps of "
          f"{args.batch} x {args.seq} tokens; {args.threads} thread(s)", flush=True)

    def lr_at(s):
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        p = (s - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    train_t = torch.from_numpy(train_ids)
    t0, losses = time.time(), []
    model.train()
    end = min(args.steps, args.stop_after) if args.stop_after else args.steps
    while step < end:
        starts = torch.randint(0, len(train_ids) - args.seq - 1, (args.batch,), generator=gen)
        win = torch.stack([train_t[s:s + args.seq + 1] for s in starts.tolist()])
        x, y = win[:, :-1].clone(), win[:, 1:]
        x[:, 0] = bos
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % args.eval_every == 0 or step == end:
            elapsed = elapsed_before + time.time() - t0
            held = heldout_loss(model, held_ids, bos, args.seq)
            rec = {"step": step, "tokens": step * args.batch * args.seq,
                   "train_loss": float(np.mean(losses)), "heldout_loss": held,
                   "heldout_ppl": math.exp(held), "lr": lr_at(step - 1), "elapsed_s": elapsed}
            losses = []
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(f"step {step:6d}  train {rec['train_loss']:.4f}  held-out {held:.4f} "
                  f"(ppl {rec['heldout_ppl']:.2f})  {rec['tokens'] / elapsed:.0f} tok/s  "
                  f"{elapsed / 60:.1f} min", flush=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "gen": gen.get_state(), "step": step, "elapsed": elapsed,
                        "cfg": cfg.to_dict()}, state_path + ".tmp")
            os.replace(state_path + ".tmp", state_path)
    if cfg.quant and step == args.steps:
        checkpoint.export(model, args.tokenizer, os.path.join(args.out, args.name), args.name)
    print(f"done: {step} steps in {(time.time() - t_start) / 60:.1f} min wall "
          f"(this invocation)", flush=True)


if __name__ == "__main__":
    main()
