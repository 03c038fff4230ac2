#!/usr/bin/env bash
# Fuzzes the GGUF and safetensors readers and the HTTP API's request parser: builds
# fuzz/fuzz-gguf, fuzz/fuzz-safetensors and fuzz/fuzz-server-request with clang++ (libFuzzer, ASan,
# UBSan) in build-fuzz/, writes seed corpora (GgufWriter files, plus heads and shrunken copies of
# the reference fixtures when they are present; small hand-written safetensors files and request
# bodies), then fuzzes each target for BITNET_FUZZ_SECONDS (default 60).
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
  -DBITNET_BUILD_SERVER=OFF -DBITNET_WERROR=OFF >/dev/null
cmake --build build-fuzz --target fuzz-gguf fuzz-gguf-seeds fuzz-safetensors fuzz-server-request

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

# Request seeds: the first byte picks the endpoint (0 chat, 1 completions, 2 tokenize, 3 detokenize).
rq_corpus=build-fuzz/corpus/server-request
mkdir -p "$rq_corpus"
rq_seed() {  # rq_seed NAME SELECTOR BODY
  { printf "\\x$(printf %02x "$2")"; printf '%s' "$3"; } >"$rq_corpus/$1"
}
rq_seed chat 0 '{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user",'\
'"content":[{"type":"text","text":"Hi"}]},{"role":"assistant","content":null}],"max_tokens":8,'\
'"temperature":0.7,"top_p":0.9,"top_k":40,"min_p":0.05,"seed":1,"stop":["\n","END"],'\
'"presence_penalty":0.5,"frequency_penalty":-0.5,"stream":true,"stream_options":'\
'{"include_usage":true},"logprobs":true,"top_logprobs":3,"n":1}'
rq_seed completion 1 '{"prompt":"Once upon a time","max_tokens":16,"logprobs":2,"echo":false}'
rq_seed completion-ids 1 '{"prompt":[[4096,791,4062]],"stop":"x","best_of":1,"suffix":null}'
rq_seed tokenize 2 '{"content":"Hello <|eot_id|>","add_special":true,"with_pieces":true}'
rq_seed detokenize 3 '{"tokens":[4096,791,4062]}'

# -max_len covers the seeds (at most a few KiB) with room to grow; -timeout catches hangs and
# -rss_limit_mb huge allocations. libFuzzer exits non-zero on any finding.
build-fuzz/bin/fuzz-gguf -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/ "$corpus"
build-fuzz/bin/fuzz-safetensors -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/ "$st_corpus"
build-fuzz/bin/fuzz-server-request -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/ "$rq_corpus"
