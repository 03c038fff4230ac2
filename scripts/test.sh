#!/usr/bin/env bash
# Builds everything in build/ (library, CLI, tests, benchmarks) and runs every test with ctest.
# With CI set, compiler warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
werror=OFF
[ -n "${CI:-}" ] && werror=ON
cmake --preset release -DBITNET_WERROR=$werror >/dev/null
cmake --build --preset release
ctest --preset release -j "$(nproc)"
