#!/usr/bin/env bash
# Installs a built tree into a temporary prefix, builds examples/ against it with
# find_package(bitnet) as an outside project would, and runs the simple example.
#   scripts/test-install.sh BUILD_DIR [MODEL]
set -euo pipefail
build=${1:?usage: test-install.sh BUILD_DIR [MODEL]}
model=${2:-}
src="$(cd "$(dirname "$0")/.." && pwd)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bitnet-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/bitnet/engine.h"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$src/examples" -B "$tmp/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/build" -j1 >/dev/null
echo "built examples against $tmp/prefix"
if [[ -n "$model" && -f "$model" ]]; then
  out=$("$tmp/build/example-simple" "$model")
  echo "$out"
  [[ "$out" == *" List List List List List List List List List List List List List List List List" ]]
fi
# The installed bitnet finds the shipped default model in the prefix (share/bitnet-cxx/models/),
# not in the source tree.
if [[ -x "$tmp/prefix/bin/bitnet" ]]; then
  err=$("$tmp/prefix/bin/bitnet" run -p "And God said" -n 2 2>&1 >/dev/null)
  [[ "$err" == *"built-in default"*"$tmp/prefix/share/bitnet-cxx/models/"* ]] ||
    { echo "installed bitnet did not use the installed default model: $err"; exit 1; }
  echo "installed bitnet runs the installed default model"
fi
