#!/usr/bin/env bash
# Identification among many stored sessions through the real database path: the robustness
# title packaged, one session leaked through the real protocol, then SESSIONS more keyed
# sessions of the title written straight into the database (copies of the leaker's row with
# new ids), and `leaktrace extract` timed on a 60 s excerpt of the leak (x264 CRF 23), with
# its peak memory (max RSS). With BEFORE=/path/to/an/older/leaktrace, that binary is run on
# the same database and suspect, alternately. UNIT_SECONDS (default 1) and CODE (default
# uniform-v1) choose the packaging; EXCERPT_START and EXCERPT_SECONDS (default 20 and 60) the
# excerpt.
# Usage: [BEFORE=BIN] [UNIT_SECONDS=0.5] [CODE=tardos-v2] [EXCERPT_START=40 EXCERPT_SECONDS=30]
#        scripts/bench-sessions.sh [SESSIONS=1000000] [sqlite|postgres] [RUNS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh
. scripts/lib/postgres.sh

SESSIONS=${1:-1000000}
BACKEND=${2:-sqlite}
RUNS=${3:-2}
UNIT_SECONDS=${UNIT_SECONDS:-1}
CODE=${CODE:-uniform-v1}
EXCERPT_START=${EXCERPT_START:-20}
EXCERPT_SECONDS=${EXCERPT_SECONDS:-60}
BIN=$(release_binary)
# BENCH_EXAMPLES: a folder with leak_session built before (as BENCH_BIN for the binary).
EX=${BENCH_EXAMPLES:-$PWD/target/release/examples}
[ -n "${BENCH_EXAMPLES:-}" ] || cargo build --release --locked --example leak_session >&2
WORK=$(mktemp -d /tmp/leaktrace-sessions.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; stop_postgres; rm -rf "$WORK"; }
trap cleanup EXIT

DATA="$WORK/data"
DB=()
if [ "$BACKEND" = postgres ]; then
  start_postgres
  as_pg "$PG_BIN/psql" -q "$PG_ADMIN_URL" -c "CREATE DATABASE bench" >/dev/null
  DBURL="${PG_ADMIN_URL%/postgres}/bench"
  DB=(--database-url "$DBURL")
fi
lt() { "$BIN" --log-level warn --data-dir "$DATA" "${DB[@]}" "$@"; }

log "composing and packaging the test title"
compose_title "$WORK/title.mp4"
lt migrate >/dev/null
printf 'bench password\n' | lt user add leaker --role viewer --password-stdin >/dev/null
json=$(lt package "$WORK/title.mp4" --title sessions --unit-seconds "$UNIT_SECONDS" --segment-units 1 --code "$CODE" --ladder none --json)
VIDEO=$(echo "$json" | sed -n 's/.*"video_id":"\([^"]*\)".*/\1/p')
UNITS=$(echo "$json" | sed -n 's/.*"units":\([0-9]*\).*/\1/p')
PORT=$(free_port)
LEAKTRACE_RIPPING_BURST_SECONDS=1e12 lt serve --bind "127.0.0.1:$PORT" >/dev/null &
PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
LEAKER=$("$EX/leak_session" "http://127.0.0.1:$PORT" leaker "bench password" "$(printf '%064x' 1)" "$VIDEO" "$UNITS" "$WORK/leak.mp4")
for _ in $(seq 3000); do [ -f "$DATA/videos/$VIDEO/reference/units/1.lts" ] && break; sleep 0.2; done
kill "${PIDS[@]}"; PIDS=()

log "writing $SESSIONS keyed sessions of the title"
COLUMNS="user_id, device_id, video_id, state, server_public_key, sealed_server_secret, sealed_cek, client_address, segments_served, revoked_reason, created_at, keyed_at, last_activity_at, expires_at"
FROM="FROM stream_sessions WHERE id = '$LEAKER'"
if [ "$BACKEND" = postgres ]; then
  as_pg "$PG_BIN/psql" -q "$DBURL" -c "INSERT INTO stream_sessions (id, $COLUMNS)
    SELECT '5eed' || lpad(to_hex(x), 4, '0') || '-0000-4000-8000-' || lpad(to_hex(x), 12, '0'), $COLUMNS
    FROM generate_series(1, $SESSIONS) AS x, (SELECT $COLUMNS $FROM) AS leaker" >/dev/null
else
  python3 - "$DATA/leaktrace.db" <<PY
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("""WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $SESSIONS)
  INSERT INTO stream_sessions (id, $COLUMNS)
  SELECT printf('5eed%04x-0000-4000-8000-%012x', x % 65536, x), $COLUMNS
  FROM n, (SELECT $COLUMNS $FROM)""")
db.commit()
PY
fi
# The suspect: the excerpt, re-encoded with x264 CRF 23.
ffmpeg -nostdin -v error -y -i "$WORK/leak.mp4" -ss "$EXCERPT_START" -t "$EXCERPT_SECONDS" -c:v libx264 -preset fast -crf 23 -an "$WORK/suspect.mp4"

run() { # LABEL BINARY
  local out
  out=$( { /usr/bin/time -f "TIME %e %M" "$2" --log-level warn --data-dir "$DATA" "${DB[@]}" \
      extract "$WORK/suspect.mp4" --video "$VIDEO" --json; } 2>&1 )
  python3 - "$1" "$LEAKER" "$out" <<'PY'
import json, sys
label, leaker, out = sys.argv[1:4]
lines = out.strip().splitlines()
t = next(l for l in lines if l.startswith("TIME")).split()
r = json.loads(next(l for l in lines if l.startswith("{")))
best = r["matches"][0] if r["matches"] else {}
who = "the leaker" if best.get("session_id") == leaker else "another session"
print(f"| {label} | {r['sessions_compared']} | {t[1]} s | {int(t[2]) / 1024:.0f} MB | {r['verdict']}, {who}, {best.get('false_positive_probability', 1):.1e} |")
PY
}

echo "Title: $UNITS units of $UNIT_SECONDS s, $CODE; $((SESSIONS + 1)) keyed sessions on $BACKEND; suspect: $EXCERPT_SECONDS s excerpt from $EXCERPT_START s on, x264 CRF 23."
echo
echo "| build | sessions scored | wall time | max RSS | result |"
echo "|---|---|---|---|---|"
for _ in $(seq "$RUNS"); do
  run "this build" "$BIN"
  [ -n "${BEFORE:-}" ] && run "before" "$BEFORE"
done
