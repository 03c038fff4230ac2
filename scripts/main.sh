#!/usr/bin/env bash
# The main job on its built-in default: build the bitnet program and generate text with the
# built-in default model - BitNet b1.58 2B4T shapes with RANDOM weights (no trained model is
# available offline), generated once (about 1.2 GB, ~10 s) into ~/.cache/bitnet-cxx. The text is
# meaningless; the speed is that of the real model's shapes. Extra arguments go to `bitnet run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target bitnet
exec build/bin/bitnet run -p "The capital of France is" -n 32 "$@"
