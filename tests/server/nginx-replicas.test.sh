#!/usr/bin/env bash
# ctest Serve.NginxThreeReplicas: three `bitnet serve` replicas on tiny-1m behind Debian's nginx
# running deploy/nginx/nginx.conf (its ports replaced by free loopback ones, in a temporary
# prefix, not as a service); a load of completions through nginx (nginx-load.mjs), one replica
# killed with SIGKILL a quarter of the way in. Passes when no non-streamed request failed (nginx
# retried them on the other replicas) and every stream either completed or was cut by the kill
# (counted and printed); the two survivors must then serve alone, and the dead one must have been
# retried around (the access log shows requests that reached two replicas).
# Usage: nginx-replicas.test.sh BITNET_BINARY. Exits 77 (ctest: skipped) without nginx or node.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bitnet="$1"
nginx_bin="$(command -v nginx || true)"
[ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ]; then
  echo "SKIP: nginx is not installed (Debian: apt-get install nginx)" >&2
  exit 77
fi
if ! command -v node >/dev/null; then
  echo "SKIP: node is not installed" >&2
  exit 77
fi
tmp="$(mktemp -d)"
pids=()
nginx_pid=""
# nginx's master ends its workers on SIGTERM; SIGKILL would leave them running.
stop_nginx() {
  [ -n "$nginx_pid" ] || return 0
  local workers
  workers="$(pgrep -P "$nginx_pid" || true)"
  kill -TERM "$nginx_pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.05; done
  for p in $nginx_pid $workers; do kill -9 "$p" 2>/dev/null || true; done
  nginx_pid=""
}
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  stop_nginx
  rm -rf "$tmp"
}
trap cleanup EXIT

"$bitnet" gen-dummy --preset tiny-1m -o "$tmp/tiny-1m.gguf" >/dev/null
ports=()
for i in 1 2 3; do
  "$bitnet" serve -m "$tmp/tiny-1m.gguf" --port 0 -t 1 --parallel 4 2>"$tmp/replica$i.err" &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 200); do
    grep -q "bitnet serve: ready" "$tmp/replica$i.err" && break
    sleep 0.05
  done
  port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$tmp/replica$i.err")"
  [ -n "$port" ] || { echo "replica $i did not start:" >&2; cat "$tmp/replica$i.err" >&2; exit 1; }
  ports+=("$port")
done

# nginx on a free loopback port: try a few random ones (nginx cannot report an ephemeral port).
mkdir -p "$tmp/logs"
started=""
for _ in $(seq 20); do
  front=$((20000 + RANDOM % 40000))
  sed -e "s|127.0.0.1:8081|127.0.0.1:${ports[0]}|" -e "s|127.0.0.1:8082|127.0.0.1:${ports[1]}|" \
      -e "s|127.0.0.1:8083|127.0.0.1:${ports[2]}|" -e "s|listen 127.0.0.1:8080|listen 127.0.0.1:$front|" \
      -e "s|worker_processes auto|worker_processes 1|" \
      -e "s|    access_log off;|    access_log $tmp/logs/access.log bitnet_upstream;|" \
      "$root/deploy/nginx/nginx.conf" >"$tmp/nginx.conf"
  grep -q "127.0.0.1:$front" "$tmp/nginx.conf" || { echo "deploy/nginx/nginx.conf changed shape" >&2; exit 1; }
  "$nginx_bin" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/logs/error.log" \
    -g "daemon off; pid $tmp/nginx.pid;" 2>>"$tmp/nginx.out" &
  nginx_pid=$!
  for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$front/health" >/dev/null 2>&1; then started=1; break; fi
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$started" ] && break
  stop_nginx
done
if [ -z "$started" ]; then
  echo "nginx did not start:" >&2
  cat "$tmp/nginx.out" "$tmp/logs/error.log" >&2 2>/dev/null || true
  exit 1
fi

summary="$(URL="http://127.0.0.1:$front" REQUESTS=120 CONCURRENCY=12 KILL_AFTER=30 \
  KILL_PID="${pids[1]}" MAX_TOKENS=96 timeout 240 node "$here/nginx-load.mjs")"
echo "nginx three replicas, replica 2 killed mid-run: $summary"
retried="$(grep -c 'upstream=\[[^]]*, ' "$tmp/logs/access.log" || true)"
echo "requests that nginx sent to a second replica: $retried"

# Afterwards the two survivors serve every request.
after_failed=0
for i in $(seq 20); do
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$front/v1/completions" \
    -H 'Content-Type: application/json' -d "{\"prompt\":\"after $i\",\"max_tokens\":8}")"
  [ "$code" = 200 ] || after_failed=$((after_failed + 1))
done
echo "requests after the kill that failed: $after_failed of 20"

node -e '
  const s = JSON.parse(process.argv[1]);
  const fail = (m) => { console.error("FAIL: " + m); process.exit(1); };
  if (s.requests !== 120) fail(`sent ${s.requests} of 120`);
  if (s.killed_after === null) fail("the replica was not killed");
  if (s.non_streamed_failed !== 0) fail(`${s.non_streamed_failed} non-streamed requests failed`);
  if (s.streams_completed + s.streams_cut + s.streams_failed_before_first_event !== s.streamed)
    fail("streams unaccounted for");
  if (s.streams_completed === 0) fail("no stream completed");
' "$summary"
[ "$after_failed" -eq 0 ] || { echo "FAIL: $after_failed requests failed after the kill" >&2; exit 1; }
[ "$retried" -gt 0 ] || echo "note: no request needed a retry (the kill hit no request in flight)"
for i in 0 2; do kill -0 "${pids[$i]}" || { echo "FAIL: replica $((i + 1)) died" >&2; exit 1; }; done
echo PASS
