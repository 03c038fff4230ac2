#!/usr/bin/env bash
# Fuzzes the GGUF reader: builds fuzz/fuzz-gguf with clang++ (libFuzzer, ASan, UBSan) in
# build-fuzz/, writes a seed corpus (GgufWriter files, plus heads and shrunken copies of the
# reference fixtures when they are present), then fuzzes for BITNET_FUZZ_SECONDS (default 60).
# Exits non-zero when the fuzzer finds a crash, leak, timeout or sanitizer report; the input that
# caused it is left in build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${BITNET_FUZZ_SECONDS:-60}"
ref="${BITNET_REFERENCE_DIR:-$(pwd)/../shared/reference}"
bash scripts/deps.sh clang libclang-rt-14-dev

# No -Werror here: warnings are enforced by the GCC builds of scripts/test.sh; this build only needs
# to run the fuzzer.
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBITNET_BUILD_FUZZ=ON -DBITNET_BUILD_TESTS=OFF -DBITNET_BUILD_BENCH=OFF -DBITNET_BUILD_CLI=OFF \
  -DBITNET_WERROR=OFF >/dev/null
cmake --build build-fuzz --target fuzz-gguf fuzz-gguf-seeds

corpus=build-fuzz/corpus/gguf
mkdir -p "$corpus" build-fuzz/crashes
if [ -d "$ref" ]; then
  build-fuzz/bin/fuzz-gguf-seeds "$corpus" "$ref"
else
  echo "fuzz.sh: no reference data at $ref; seeding from GgufWriter files only" >&2
  build-fuzz/bin/fuzz-gguf-seeds "$corpus"
fi

# -max_len covers the seeds (at most a few KiB) with room to grow; -timeout catches hangs and
# -rss_limit_mb huge allocations. libFuzzer exits non-zero on any finding.
build-fuzz/bin/fuzz-gguf -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/ "$corpus"
