#!/usr/bin/env bash
# CI's check that the trainer has not rotted (about two minutes on 2 cores): the real corpus and
# tokenizer steps, then a tiny model trained for a few steps on a slice of the corpus, exported,
# converted by `bitnet convert`, loaded and run by the engine, and compared with the trainer's
# float64 forward on the held-out tokenization and logits (tools/train/check-engine.py).
#
#   bash tools/train/smoke.sh [WORK_DIR]     (needs build/bin/bitnet; default WORK_DIR build/train-smoke)
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
work="$(realpath -m "${1:-build/train-smoke}")"
py=/usr/bin/python3
bash scripts/deps.sh python3-torch python3-numpy python3-sentencepiece libopenblas0-pthread \
  bible-kjv bible-kjv-text
[ -x build/bin/bitnet ] || cmake --build --preset release --target bitnet
rm -rf "$work"
mkdir -p "$work"
$py tools/train/corpus.py --out "$work/data"
$py tools/train/tokenizer.py --train "$work/data/train.txt" --out "$work/tok" --vocab 1024
$py tools/train/train.py --data "$work/data" --tokenizer "$work/tok" \
  --out "$work/run" --name smoke --dim 64 --layers 2 --heads 2 --kv-heads 1 --ffn 128 \
  --seq 64 --batch 8 --steps 60 --warmup 10 --eval-every 30 --lr 3e-3 --threads 2 \
  --max-train-tokens 200000 --max-heldout-tokens 2048
build/bin/bitnet convert "$work/run/smoke" -o "$work/smoke.gguf" --type i2_s --embd-type f16
build/bin/bitnet run -m "$work/smoke.gguf" -p "In the beginning" -n 16 --temp 0 -t 2
$py tools/train/agreement.py --hf "$work/run/smoke" --data "$work/data" --gguf-name smoke.gguf \
  --out "$work/agreement"
$py tools/train/check-engine.py --bitnet build/bin/bitnet --model "$work/smoke.gguf" \
  --agreement "$work/agreement"
echo "trainer smoke passed in $((SECONDS - start)) s"
