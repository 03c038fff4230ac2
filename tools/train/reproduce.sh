#!/usr/bin/env bash
# Reproduces the shipped default model (models/kjv-b158-4m.gguf, its agreement files and the
# model card's loss curves) from a fresh Debian 12 machine, and says how long it took.
#
#   bash tools/train/reproduce.sh [WORK_DIR]      (default build/train)
#
# Steps: Debian packages (bible-kjv for the text, python3-torch/numpy/sentencepiece, OpenBLAS so
# torch's matmuls are fast); corpus (tools/train/corpus.py); tokenizer (tokenizer.py); the ternary
# model and, at the same time with the same settings, the same architecture in full precision
# (train.py, one thread each, nice 19); `bitnet convert` of the ternary checkpoint to I2_S with F16
# embeddings; agreement files (agreement.py); the loss plot (plot.py). Seeds are fixed: on the same
# CPU and package versions the run is repeatable; another CPU's BLAS may round differently, so the
# weights can differ in the last bits and the result by noise.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
work="$(realpath -m "${1:-build/train}")"
name=kjv-b158-4m
py=/usr/bin/python3  # Debian's python, which has the Debian torch (not a pyenv/venv shim)
# The shipped model's settings (docs/MODELS.md). The runs were planned for 1600 steps and, as
# the shared machine turned out slower than planned, shortened twice: at step 600 to 1100 steps
# and at step 700 to 900. Each invocation below stops where that happened, the next resumes with
# the cosine decay recomputed for its --steps: this replays exactly what was done.
model_args=(--dim 256 --layers 4 --heads 4 --kv-heads 2 --ffn 768 --seq 256 --batch 8
            --warmup 100 --eval-every 100 --threads 1)
phases=("--steps 1600 --stop-after 600" "--resume --steps 1100 --stop-after 700"
        "--resume --steps 900")

echo "training the ternary and the full-precision model side by side (one thread each)..."
train() {  # OUT_DIR LOG extra-args...
  local out=$1 log=$2
  shift 2
  for phase in "${phases[@]}"; do
    # shellcheck disable=SC2086 # $phase is a list of options
    nice -n 19 $py tools/train/train.py --data "$work/data" --tokenizer "$work/tok" --out "$out" \
      "${model_args[@]}" $phase "$@" >>"$log" 2>&1 || return 1
  done
}
rm -f "$work/ternary.log" "$work/fp.log"
train "$work/ternary" "$work/ternary.log" --name "$name" --lr 3e-3 &
ternary=$!
train "$work/fp" "$work/fp.log" --fp --lr 2e-3 &
fp=$!
wait $ternary || { cat "$work/ternary.log"; exit 1; }
wait $fp || { cat "$work/fp.log"; exit 1; }
tail -n 2 "$work/ternary.log" "$work/fp.log"

build/bin/bitnet convert "$work/ternary/$name" -o "models/$name.gguf" --type i2_s --embd-type f16
$py tools/train/agreement.py --hf "$work/ternary/$name" --data "$work/data" \
  --gguf-name "$name.gguf" --out "models/$name"
$py tools/train/plot.py --run "ternary (b1.58)=$work/ternary/log.jsonl" \
  --run "full precision=$work/fp/log.jsonl" --out docs/img/kjv-b158-loss.svg \
  --title "$name: same architecture, same steps, ternary vs full precision"
build/bin/bitnet run -m "models/$name.gguf" -p "In the beginning God created" -n 32 --temp 0
echo "reproduced models/$name.gguf in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
