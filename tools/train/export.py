#!/usr/bin/env python3
"""Exports a saved training state (train.py's OUT/state.pt) as the Hugging Face checkpoint that
`bitnet convert` reads (checkpoint.export) - for a run that was stopped or is still going."""
import argparse

import torch

import checkpoint
from model import BitNet, Config


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--tokenizer", required=True, help="directory with the tokenizer files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    st = torch.load(args.state)
    model = BitNet(Config(**st["cfg"]))
    model.load_state_dict(st["model"])
    checkpoint.export(model, args.tokenizer, args.out, args.name)
    print(f"exported step {st['step']} to {args.out}")


if __name__ == "__main__":
    main()
