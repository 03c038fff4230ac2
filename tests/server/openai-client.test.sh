#!/usr/bin/env bash
# ctest ServeOpenAIClient: starts `bitnet serve` on tiny-1m on an ephemeral loopback port with an
# API key, runs openai-client.test.mjs (the official OpenAI Node client) against it, then stops
# the server with SIGTERM and checks that it exits 0.
# Usage: openai-client.test.sh BITNET_BINARY. Exits 77 (ctest: skipped) when node or the npm
# packages are missing (run `npm ci` in tests/server first; .ci/run does).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bitnet="$1"
if ! command -v node >/dev/null; then
  echo "SKIP: node is not installed" >&2
  exit 77
fi
if [ ! -d "$here/node_modules/openai" ]; then
  echo "SKIP: $here/node_modules/openai is missing; run 'npm ci' in $here" >&2
  exit 77
fi
tmp="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill -9 "$server" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$bitnet" gen-dummy --preset tiny-1m -o "$tmp/tiny-1m.gguf" >/dev/null
"$bitnet" serve -m "$tmp/tiny-1m.gguf" --port 0 -t 2 --api-key test-key 2>"$tmp/serve.err" &
server=$!
for _ in $(seq 200); do
  grep -q "bitnet serve: ready" "$tmp/serve.err" && break
  kill -0 "$server" 2>/dev/null || { cat "$tmp/serve.err" >&2; exit 1; }
  sleep 0.05
done
port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$tmp/serve.err" | head -1)"
[ -n "$port" ] || { echo "no port in:" >&2; cat "$tmp/serve.err" >&2; exit 1; }

status=0
BITNET_SERVE_URL="http://127.0.0.1:$port" BITNET_MODEL_ID=tiny-1m BITNET_API_KEY=test-key \
  timeout 120 node --test "$here/openai-client.test.mjs" || status=$?

kill -TERM "$server"
code=0
wait "$server" || code=$?
server=""
if [ "$code" -ne 0 ]; then
  echo "bitnet serve exited $code after SIGTERM:" >&2
  cat "$tmp/serve.err" >&2
  exit 1
fi
exit "$status"
