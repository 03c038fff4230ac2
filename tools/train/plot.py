#!/usr/bin/env python3
"""Loss curves of training runs (train.py's log.jsonl) as an SVG: training loss (mean over each
evaluation interval) and held-out loss (llama-perplexity's scored positions) against tokens seen."""
import argparse
import json
import math

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=LOG.jsonl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    runs = [(r.split("=", 1)[0], read(r.split("=", 1)[1])) for r in args.run]
    W, H, L, R, T, B = 760, 440, 64, 190, 36, 48
    xmax = max(rec["tokens"] for _, rs in runs for rec in rs)
    ys = [rec[k] for _, rs in runs for rec in rs for k in ("train_loss", "heldout_loss")]
    ylo, yhi = math.floor(min(ys) * 2) / 2, math.ceil(min(max(ys), min(ys) + 4) * 2) / 2
    sx = lambda x: L + (W - L - R) * x / xmax
    sy = lambda y: T + (H - T - B) * (1 - (min(y, yhi) - ylo) / (yhi - ylo))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="20" font-size="14">{args.title}</text>']
    y = ylo
    while y <= yhi + 1e-9:
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
                   f'stroke="#ddd"/><text x="{L - 6}" y="{sy(y) + 4:.1f}" '
                   f'text-anchor="end">{y:.1f}</text>')
        y += 0.5
    step = 10 ** math.floor(math.log10(xmax / 4))
    step *= 2 if xmax / step > 10 else 1
    x = 0
    while x <= xmax:
        out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{T}" y2="{H - B}" '
                   f'stroke="#eee"/><text x="{sx(x):.1f}" y="{H - B + 16}" '
                   f'text-anchor="middle">{x / 1e6:g}M</text>')
        x += step
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 10}" text-anchor="middle">tokens seen</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(T + H - B) / 2})">loss (nats per token)</text>')
    ly = T + 8
    for i, (label, rs) in enumerate(runs):
        c = COLORS[i % len(COLORS)]
        for key, dash, name in (("train_loss", "", "train"), ("heldout_loss", "6,4", "held-out")):
            pts = " ".join(f"{sx(r['tokens']):.1f},{sy(r[key]):.1f}" for r in rs)
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" '
                       f'stroke-dasharray="{dash}" points="{pts}"/>')
            out.append(f'<line x1="{W - R + 12}" x2="{W - R + 40}" y1="{ly}" y2="{ly}" '
                       f'stroke="{c}" stroke-width="2" stroke-dasharray="{dash}"/>'
                       f'<text x="{W - R + 46}" y="{ly + 4}">{label} {name}</text>')
            ly += 20
    out.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" '
               f'stroke="#333"/></svg>')
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
