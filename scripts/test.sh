#!/usr/bin/env bash
# Builds everything in build/ (library, CLI, tests, benchmarks) and runs every test with ctest.
# With CI set, compiler warnings are errors. The last lines say how many tests were skipped and
# why (the conformance tests need ../shared/reference, or BITNET_REFERENCE_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
werror=OFF
[ -n "${CI:-}" ] && werror=ON
cmake --preset release -DBITNET_WERROR=$werror >/dev/null
cmake --build --preset release
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
ctest --preset release -j "$(nproc)" 2>&1 | tee "$log" || status=$?
skipped=$(grep -c '(Skipped)' "$log" || true)
ref="${BITNET_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference}"
echo
if [ "$skipped" -gt 0 ]; then
  echo "SKIPPED: $skipped tests did not run (listed above as '(Skipped)'; each one's reason is in"
  echo "  build/Testing/Temporary/LastTest.log)."
  if [ ! -d "$ref" ]; then
    echo "  The reference data is absent: $ref not found. The conformance tests read the"
    echo "  golden files there (see README.md, 'Reference data'); set BITNET_REFERENCE_DIR."
  fi
else
  echo "No test was skipped (reference data: $ref)."
fi
exit $status
