#!/usr/bin/env bash
# Peak memory of packaging a long 1080p title (frames must stream through, not accumulate).
# Usage: scripts/bench-memory.sh [MINUTES=10]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

MINUTES=${1:-10}
BIN=$(release_binary)
WORK=$(mktemp -d /tmp/leaktrace-memory.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SRC="$WORK/long-1080p.mp4"
ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=$((MINUTES * 60))" \
  -f lavfi -i "sine=frequency=300:sample_rate=48000:duration=$((MINUTES * 60))" \
  -c:v libx264 -preset ultrafast -crf 23 -pix_fmt yuv420p -c:a aac "$SRC"
/usr/bin/time -v "$BIN" --log-level warn --data-dir "$WORK/data" package "$SRC" --title long --ladder "${LADDER:-none}" --json \
  >"$WORK/out.json" 2>"$WORK/time.txt" || { cat "$WORK/time.txt" >&2; exit 1; }
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time.txt")
echo "| source | frames | wall time | peak RSS (MiB) |"
echo "|---|---|---|---|"
echo "| $MINUTES min 1920x1080 25 fps + AAC | $(sed -n 's/.*"frames":\([0-9]*\).*/\1/p' "$WORK/out.json") | $wall | $((rss / 1024)) |"
