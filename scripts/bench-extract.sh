#!/usr/bin/env bash
# Extraction time of a 60 s 720p suspect, side by side in one run: the same suspect analysed
# with the title's reference store (written at packaging time; only the suspect is decoded)
# and without it (store moved aside: both variants decoded too), alternating, RUNS times each.
# Also prints the store's size beside the variants', the packaging time and the time the
# server's worker takes to build the store after packaging.
# With BEFORE=/path/to/an/older/leaktrace, each run also times that binary on the same data
# dir and suspect, so a change is measured side by side with what it replaces.
# Usage: [BEFORE=BIN] scripts/bench-extract.sh [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

RUNS=${1:-3}
BIN=$(release_binary)
cargo build --release --locked --example leak_session >&2
EX="$PWD/target/release/examples"
WORK=$(mktemp -d /tmp/leaktrace-extract.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
seconds_since() { python3 -c "import time; print(f'{time.time() - $1:.1f}')"; }

log "composing and packaging the test title"
compose_title "$WORK/title.mp4"
DATA="$WORK/data"
"$BIN" --log-level warn --data-dir "$DATA" migrate >/dev/null
printf 'bench password\n' | "$BIN" --log-level warn --data-dir "$DATA" user add leaker --role viewer --password-stdin >/dev/null
start=$(date +%s.%N)
json=$("$BIN" --log-level warn --data-dir "$DATA" package "$WORK/title.mp4" --title extract --ladder none --json)
PACKAGE_TIME=$(seconds_since "$start")
VIDEO=$(echo "$json" | sed -n 's/.*"video_id":"\([^"]*\)".*/\1/p')
UNITS=$(echo "$json" | sed -n 's/.*"units":\([0-9]*\).*/\1/p')
TITLE_DIR="$DATA/videos/$VIDEO"

PORT=$(free_port)
LEAKTRACE_RIPPING_BURST_SECONDS=1e12 "$BIN" --log-level warn --data-dir "$DATA" serve --bind "127.0.0.1:$PORT" >/dev/null &
PIDS+=($!)
start=$(date +%s.%N)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# The worker builds the reference store (a job queued by packaging).
for _ in $(seq 3000); do [ -f "$TITLE_DIR/reference/units/1.lts" ] && break; sleep 0.2; done
[ -f "$TITLE_DIR/reference/units/1.lts" ] || die "the reference store was not built"
STORE_TIME=$(seconds_since "$start")
"$EX/leak_session" "http://127.0.0.1:$PORT" leaker "bench password" "$(printf '%064x' 1)" "$VIDEO" "$UNITS" "$WORK/leak.mp4" >/dev/null
kill "${PIDS[@]}"; PIDS=()
# The suspect: 60 s from 20 s on, re-encoded with x264 CRF 23 (1500 frames of 1280x720).
ffmpeg -nostdin -v error -y -i "$WORK/leak.mp4" -ss 20 -t 60 -c:v libx264 -preset fast -crf 23 -an "$WORK/suspect.mp4"

run() { # LABEL [BINARY]
  local start took verdict bin=${2:-$BIN}
  start=$(date +%s.%N)
  verdict=$("$bin" --log-level warn --data-dir "$DATA" extract "$WORK/suspect.mp4" --video "$VIDEO" --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["verdict"], "z=%.2f" % r["matches"][0]["score"])')
  took=$(seconds_since "$start")
  echo "| $1 | $took s | $verdict |"
}

echo "Title: $UNITS units of 1 s, 1280x720, 25 fps; packaged in $PACKAGE_TIME s; store built by the worker in $STORE_TIME s."
echo "Store: $(du -sh "$TITLE_DIR/reference/units" | cut -f1); variants A+B: $(du -shc "$TITLE_DIR/video/a" "$TITLE_DIR/video/b" | tail -1 | cut -f1)."
echo
echo "| reference | wall time | result |"
echo "|---|---|---|"
for _ in $(seq "$RUNS"); do
  run "store (suspect decoded only)"
  [ -n "${BEFORE:-}" ] && run "store, before" "$BEFORE"
  mv "$TITLE_DIR/reference/units" "$WORK/units-aside"
  run "no store (both variants decoded)"
  [ -n "${BEFORE:-}" ] && run "no store, before" "$BEFORE"
  mv "$WORK/units-aside" "$TITLE_DIR/reference/units"
done
