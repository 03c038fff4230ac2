#!/usr/bin/env bash
# The main job on its built-in default: build the bitnet program and generate text with the
# built-in default model, models/kjv-b158-4m.gguf - a small BitNet b1.58 (ternary weights, int8
# activations) trained from scratch in this repository on the King James Bible (tools/train,
# docs/MODELS.md). It answers in the Bible's English. Extra arguments go to `bitnet run`
# (-m MODEL for another model; -p, -n, --temp, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target bitnet
exec build/bin/bitnet run --display-prompt -p "And God said unto Moses," -n 48 "$@"
