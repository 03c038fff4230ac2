#!/usr/bin/env bash
# Fuzzes the GGUF and safetensors readers: builds fuzz/fuzz-gguf and fuzz/fuzz-safetensors with
# clang++ (libFuzzer, ASan, UBSan) in build-fuzz/, writes seed corpora (GgufWriter files, plus
# heads and shrunken copies of the reference fixtures when they are present; small hand-written
# safetensors files), then fuzzes each target for BITNET_FUZZ_SECONDS (default 60).
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
cmake --build build-fuzz --target fuzz-gguf fuzz-gguf-seeds fuzz-safetensors

corpus=build-fuzz/corpus/gguf
mkdir -p "$corpus" build-fuzz/crashes
if [ -d "$ref" ]; then
  build-fuzz/bin/fuzz-gguf-seeds "$corpus" "$ref"
else
  echo "fuzz.sh: no reference data at $ref; seeding from GgufWriter files only" >&2
  build-fuzz/bin/fuzz-gguf-seeds "$corpus"
fi

# safetensors seeds: u64 little-endian header length, JSON header, data section.
st_corpus=build-fuzz/corpus/safetensors
mkdir -p "$st_corpus"
st_seed() {  # st_seed FILE HEADER DATA_BYTES
  local n=${#2} le="" i
  for i in 0 1 2 3 4 5 6 7; do le+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255))); done
  { printf "$le"; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$st_corpus/$1"
}
st_seed empty '{}' 0
st_seed meta '{"__metadata__":{"format":"pt"}}' 0
st_seed dtypes '{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},'\
'"b":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"c":{"dtype":"F32","shape":[],'\
'"data_offsets":[10,14]},"d":{"dtype":"U8","shape":[3,1],"data_offsets":[14,17]},'\
'"e":{"dtype":"I8","shape":[0],"data_offsets":[17,17]},"f":{"dtype":"F64","shape":[1],'\
'"data_offsets":[17,25]}}' 25
st_seed packed '{"w.weight":{"dtype":"U8","shape":[4,8],"data_offsets":[32,64]},'\
'"w.weight_scale":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}' 64

# -max_len covers the seeds (at most a few KiB) with room to grow; -timeout catches hangs and
# -rss_limit_mb huge allocations. libFuzzer exits non-zero on any finding.
build-fuzz/bin/fuzz-gguf -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/ "$corpus"
build-fuzz/bin/fuzz-safetensors -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/ "$st_corpus"
