#!/usr/bin/env python3
"""Turns bench-kernels console output (with --benchmark_repetitions, median rows) into the
markdown tables of docs/PERFORMANCE.md.

  build/bin/bench-kernels --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
      > bench.txt && python3 scripts/bench-summary.py bench.txt
"""
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")


SUFFIX = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def number(raw):
    raw = raw.replace("/s", "")
    if raw and raw[-1] in SUFFIX:
        return float(raw[:-1]) * SUFFIX[raw[-1]]
    return float(raw)


def rows(path):
    header = []
    for line in open(path, encoding="utf-8"):
        line = ANSI.sub("", line).rstrip()
        if line.startswith("Benchmark"):
            header = line.split()[4:]  # after Benchmark Time CPU Iterations
            continue
        if "_median" not in line:
            continue
        f = line.split()
        name = f[0].replace("/real_time_median", "")
        time, unit = float(f[1]), f[2]
        vals = {}
        for key, raw in zip(header, f[6:6 + len(header)]):
            vals[key] = number(raw)
        yield name, time, unit, vals


def main(path):
    gemv, gemm, other = [], [], []
    for name, time, unit, v in rows(path):
        parts = name.split("/")
        if parts[0] == "Gemv":
            gemv.append((parts, time, unit, v))
        elif parts[0] == "Gemm":
            gemm.append((parts, time, unit, v))
        else:
            other.append((name, time, unit))
    print("| GEMV isa | layout | N x K | threads | time | weight GB/s | % of read bw | x scalar (1 thr) |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for p, t, u, v in gemv:
        print(f"| {p[1]} | {p[2]} | {p[3]} x {p[4]} | {p[5]} | {t:g} {u} | {v.get('wGBs', 0):.1f} | "
              f"{v.get('pct_bw', 0):.0f}% | {v.get('x_scalar', 0):.0f}" + " |")
    print()
    print("| GEMM isa | layout | M x N x K | threads | time | GOP/s | % of int8 peak |")
    print("|---|---|---|---:|---:|---:|---:|")
    for p, t, u, v in gemm:
        print(f"| {p[1]} | {p[2]} | {p[3]} x {p[4]} x {p[5]} | {p[6]} | {t:g} {u} | "
              f"{v.get('GOPs', 0):.0f} | {v.get('pct_peak', 0):.0f}% |")
    print()
    for name, t, u in other:
        print(f"- {name}: {t:g} {u}")


if __name__ == "__main__":
    main(sys.argv[1])
