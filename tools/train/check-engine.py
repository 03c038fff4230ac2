#!/usr/bin/env python3
"""The engine (`bitnet`) against agreement.py's files for any exported model: the same checks and
tolerances as tests/test-shipped-model.cpp (reference README section 8), for the smoke run and
for checking a new model before it is shipped. Exits 1 on any failure."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bitnet", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--agreement", required=True)
    args = ap.parse_args()
    d = args.agreement
    a = json.load(open(os.path.join(d, "agreement.json")))
    bad = []

    want = np.fromfile(os.path.join(d, a["heldout"]["ids"]), "<u2")
    got = np.array(run([args.bitnet, "tokenize", "-m", args.model, "-f",
                        os.path.join(d, a["heldout"]["text"]), "--no-bos",
                        "--no-parse-special"]).split(), dtype=np.int64)
    same = len(got) == len(want) and bool((got == want).all())
    print(f"tokenization of the held-out text: {len(got)} vs {len(want)} ids, identical: {same}")
    if not same:
        bad.append("tokenization")

    cols = np.array(a["logits"]["columns"])
    ref = np.fromfile(os.path.join(d, a["logits"]["file"]), "<f4").reshape(-1, len(cols))
    ref_fp = np.fromfile(os.path.join(d, a["logits"]["file_no_act_quant"]),
                         "<f4").reshape(-1, len(cols))
    row0 = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o")
        for p in a["logits"]["prompts"]:
            R, toks, greedy = p["rows"], p["tokens"], p["greedy_tokens"]
            run([args.bitnet, "logits", "-m", args.model, "--tokens", ",".join(map(str, toks)),
                 "--greedy", str(len(greedy)), "--kv", "f32", "-t", "1", "-o", out])
            e = json.load(open(out + ".json"))
            V = e["n_vocab"]
            x = np.fromfile(out + ".f32", "<f4").reshape(-1, V)
            must = next((i for i, m in enumerate(p["greedy_top2_margin"]) if m < 1.0), len(greedy))
            same = next((i for i, (u, v) in enumerate(zip(e["greedy_tokens"], greedy)) if u != v),
                        len(greedy))
            valid = min(R, len(toks) + same)
            dd = x[:valid, cols] - ref[row0:row0 + valid]
            rms, mx = float(np.sqrt((dd ** 2).mean())), float(abs(dd).max())
            top1 = [int(np.argmax(x[r])) == p["argmax"][r] for r in range(valid)
                    if p["top2_margin"][r] >= 1.0]
            ok = same >= must and rms <= 0.20 and mx <= 1.0 and all(top1)
            print(f"{p['text']!r}: greedy {same}/{len(greedy)} identical (required {must}), "
                  f"max |d| {mx:.3g}, rms {rms:.3g}, top-1 {sum(top1)}/{len(top1)}: "
                  f"{'ok' if ok else 'FAIL'}")
            if not ok:
                bad.append(f"logits {p['text']!r}")
            seq = toks + greedy[:-1]
            run([args.bitnet, "logits", "-m", args.model, "--tokens", ",".join(map(str, seq)),
                 "--no-act-quant", "--kv", "f32", "-t", "1", "-o", out])
            x = np.fromfile(out + ".f32", "<f4").reshape(-1, V)
            mx = float(abs(x[:, cols] - ref_fp[row0:row0 + R]).max())
            print(f"  without activation quantization: max |d| {mx:.3g} (limit 1e-3)")
            if mx > 1e-3:
                bad.append(f"no-act-quant {p['text']!r}")
            row0 += R

    ppl = a["perplexity"]
    text = run([args.bitnet, "perplexity", "-m", args.model, "-f",
                os.path.join(d, a["heldout"]["text"]), "-c", str(ppl["n_ctx"]), "-t", "2"])
    got = float(re.search(r"perplexity: ([0-9.]+)", text).group(1))
    rel = got / ppl["value"] - 1
    print(f"held-out perplexity: engine {got:.4f}, trainer {ppl['value']:.4f} ({rel:+.3%})")
    if abs(rel) > 0.005:
        bad.append("perplexity")
    if bad:
        sys.exit("engine and trainer disagree: " + ", ".join(bad))
    print("engine and trainer agree")


if __name__ == "__main__":
    main()
