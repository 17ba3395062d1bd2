#!/usr/bin/env bash
# A bounded load on one leaktrace server on loopback, as its users make it (examples/load.rs):
# VIEWERS viewers sign in, register a device, open a session, complete the key exchange and
# play UNITS one-second units at real-time pace, each decrypted and checked; CRAWLERS crawlers
# submit a suspect file each and poll their case until it is analysed; an admin polls the
# console's lists every 2 s. Arrivals are spread over RAMP seconds. Prints a markdown table:
# requests, statuses and p50/p95/p99/max latency per route, errors (anything but 2xx and the
# designed 429s), completed viewers and crawlers, and the server's resident memory (peak and
# at the end).
#
# Usage: scripts/bench-load.sh [VIEWERS=500] [CRAWLERS=50] [UNITS=60] [RAMP=30] [BACKEND=sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

VIEWERS=${1:-500}
CRAWLERS=${2:-50}
UNITS=${3:-60}
RAMP=${4:-30}
BACKEND=${5:-sqlite}
BIN=$(release_binary)
cargo build --release --locked --example load >&2
LOAD="$PWD/target/release/examples/load"
WORK=$(mktemp -d /tmp/leaktrace-load.XXXXXX)
SERVER=
SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  [ "$BACKEND" = postgres ] && stop_postgres
  rm -rf "$WORK"
}
trap cleanup EXIT
DB_ARGS=()
if [ "$BACKEND" = postgres ]; then
  . scripts/lib/postgres.sh
  start_postgres
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE leaktrace_load" >/dev/null
  DB_ARGS=(--database-url "${PG_ADMIN_URL%/*}/leaktrace_load")
fi
DATA="$WORK/data"
lt() { "$BIN" --log-level warn --data-dir "$DATA" "${DB_ARGS[@]}" "$@"; }

# A title of UNITS + 10 s (960x540, 25 fps) and a suspect: its first 10 s, re-encoded smaller.
log "packaging a $((UNITS + 10)) s title"
ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=960x540:rate=25:duration=$((UNITS + 10))" \
  -pix_fmt yuv420p -c:v libx264 -preset veryfast -crf 20 "$WORK/source.mp4"
ffmpeg -nostdin -v error -y -i "$WORK/source.mp4" -t 10 -vf scale=640:360 -c:v libx264 -crf 26 "$WORK/suspect.mp4"
lt migrate >/dev/null
VIDEO=$(lt package "$WORK/source.mp4" --title load --ladder none --json | sed -n 's/.*"video_id":"\([^"]*\)".*/\1/p')
echo "load admin password" | lt user add ada --role admin --password-stdin >/dev/null
API_KEY=$(lt apikey create crawlers | tail -n 1)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
# Started directly (not through `lt`), so that $! is the server itself, whose memory is read.
"$BIN" --log-level warn --data-dir "$DATA" "${DB_ARGS[@]}" serve --bind "127.0.0.1:$PORT" \
  >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.1; done
ADMIN=$(curl -fsS -H 'Content-Type: application/json' \
  -d '{"username": "ada", "password": "load admin password"}' "$BASE/api/auth/login/" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["user_token"])')
log "creating $VIEWERS viewer accounts"
seq 0 $((VIEWERS - 1)) | xargs -P 8 -I{} curl -fsS -o /dev/null -H "Authorization: Bearer $ADMIN" \
  -H 'Content-Type: application/json' \
  -d '{"username": "load-{}", "role": "viewer", "password": "load password"}' "$BASE/api/admin/users/"

# The server's resident memory, every half second.
( while kill -0 "$SERVER" 2>/dev/null; do
    awk '/^VmRSS/ { print $2 }' "/proc/$SERVER/status" 2>/dev/null
    sleep 0.5
  done >"$WORK/rss.txt" ) &
SAMPLER=$!
RSS_BEFORE=$(awk '/^VmRSS/ { print $2 }' "/proc/$SERVER/status")

log "load: $VIEWERS viewers x $UNITS units, $CRAWLERS crawlers, arrivals over $RAMP s ($BACKEND)"
"$LOAD" "$BASE" "$VIDEO" 1.0 "$UNITS" "$VIEWERS" "$CRAWLERS" "$RAMP" "$WORK/suspect.mp4" \
  "$API_KEY" "$ADMIN" >"$WORK/summary.json"
RSS_END=$(awk '/^VmRSS/ { print $2 }' "/proc/$SERVER/status")
RSS_HWM=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVER/status")

python3 - "$WORK/summary.json" "$RSS_BEFORE" "$RSS_HWM" "$RSS_END" "$BACKEND" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
before, hwm, end, backend = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print(f"{s['viewers']} viewers ({s['viewers_completed']} completed), {s['crawlers']} crawlers "
      f"({s['crawlers_completed']} completed) in {s['seconds']:.0f} s on {backend}; "
      f"errors (not 2xx, not a designed 429): {s['errors']}; 429s: {s['throttled_429']}; "
      f"server RSS {before / 1024:.0f} MiB before, peak {hwm / 1024:.0f} MiB, {end / 1024:.0f} MiB after")
print()
print("| route | requests | statuses | p50 ms | p95 ms | p99 ms | max ms |")
print("|---|---|---|---|---|---|---|")
for route, r in s["routes"].items():
    statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
    print(f"| {route} | {r['requests']} | {statuses} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
          f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} |")
if s["failures"]:
    print()
    print("first failures: " + "; ".join(s["failures"][:5]))
sys.exit(1 if s["errors"] else 0)
PY
