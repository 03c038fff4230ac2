#!/usr/bin/env bash
# The main job on its built-in default: build the bitnet program, then check every kernel variant
# this CPU runs against the scalar reference and print a short speed summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target bitnet
exec build/bin/bitnet selftest "$@"
