#!/usr/bin/env bash
# Deterministic performance gate: instruction count of a fixed decode workload (the tiny-1m dummy
# model, 32-token prompt, 32 greedy steps, one thread) under valgrind's callgrind, compared with
# the committed baseline bench/baselines/callgrind-decode.txt. Fails on more than 2% growth.
# Wall time on this shared machine is too noisy for a CI gate; instruction counts are not.
#
# Valgrind does not emulate AVX-512, so under it the kernels dispatch to AVX2: the gate tracks the
# AVX2 path and everything around the kernels (norms, attention, quantizer, LM head).
#
#   bash scripts/perf-gate.sh            # check
#   bash scripts/perf-gate.sh --accept   # after an intended change: record the new count, then
#                                        # commit bench/baselines/callgrind-decode.txt with a
#                                        # message saying why it changed
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh valgrind
preset="${BITNET_PERF_GATE_PRESET:-release}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target bitnet decode-workload
work=build/perf-gate
mkdir -p "$work"
[ -f "$work/tiny-1m.gguf" ] || build/bin/bitnet gen-dummy --preset tiny-1m --seed 1 -o "$work/tiny-1m.gguf" >/dev/null
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
  --toggle-collect=bitnet_callgrind_region build/bin/decode-workload "$work/tiny-1m.gguf" 32 32 \
  >"$work/workload.log" 2>&1 || { cat "$work/workload.log"; exit 1; }
count=$(sed -n 's/^summary: //p' "$work/callgrind.out")
[ -n "$count" ] || { echo "perf-gate: no instruction count in $work/callgrind.out"; exit 1; }
baseline_file=bench/baselines/callgrind-decode.txt
if [ "${1:-}" = "--accept" ]; then
  echo "$count" >"$baseline_file"
  echo "perf-gate: recorded $count instructions in $baseline_file (commit it, saying why)"
  exit 0
fi
[ -f "$baseline_file" ] || { echo "perf-gate: no baseline $baseline_file (run with --accept)"; exit 1; }
baseline=$(tr -dc '0-9' <"$baseline_file")
python3 - "$count" "$baseline" <<'PY'
import sys
count, base = int(sys.argv[1]), int(sys.argv[2])
ratio = count / base
print(f"perf-gate: {count:,} instructions vs baseline {base:,} ({(ratio - 1) * 100:+.2f}%)")
if ratio > 1.02:
    print("perf-gate: FAILED: more than 2% growth. If intended, run `bash scripts/perf-gate.sh "
          "--accept` and commit bench/baselines/callgrind-decode.txt explaining why.")
    sys.exit(1)
PY
