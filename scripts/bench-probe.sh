#!/usr/bin/env bash
# What checking uploads in a limited child process costs (limits.isolate_probe): the same
# suspect (the bundled 1280x720 sample) submitted N times, one after the other, to two servers
# side by side in one run, one checking in process and one in a child; the submission's
# latency as the crawler sees it (upload, hashing, the FFmpeg check, the case recorded).
# Usage: scripts/bench-probe.sh [N=40]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

N=${1:-40}
BIN=$(release_binary)
WORK=$(mktemp -d /tmp/leaktrace-probe.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

start() { # NAME ISOLATE -> prints the base URL
  local name=$1 isolate=$2 port
  "$BIN" --log-level warn --data-dir "$WORK/$name" migrate >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  LEAKTRACE_ISOLATE_PROBE=$isolate LEAKTRACE_WORKERS=0 \
    "$BIN" --log-level warn --data-dir "$WORK/$name" serve --bind "127.0.0.1:$port" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  echo "http://127.0.0.1:$port"
}
IN=$(start inprocess false)
OUT=$(start isolated true)
KEY_IN=$("$BIN" --log-level warn --data-dir "$WORK/inprocess" apikey create bench | tail -n 1)
KEY_OUT=$("$BIN" --log-level warn --data-dir "$WORK/isolated" apikey create bench | tail -n 1)

submit() { # BASE KEY -> seconds
  curl -fsS -o /dev/null -w '%{time_total}\n' -H "X-API-Key: $2" \
    -F "file=@samples/bigbuckbunny.mp4;type=video/mp4" "$1/api/verify-watermark/"
}
for _ in 1 2 3; do submit "$IN" "$KEY_IN" >/dev/null; submit "$OUT" "$KEY_OUT" >/dev/null; done
: >"$WORK/in.txt"; : >"$WORK/out.txt"
# Interleaved, so that both see the same machine.
for _ in $(seq "$N"); do
  submit "$IN" "$KEY_IN" >>"$WORK/in.txt"
  submit "$OUT" "$KEY_OUT" >>"$WORK/out.txt"
done
python3 - "$WORK/in.txt" "$WORK/out.txt" "$N" <<'PY'
import statistics, sys
a = sorted(float(x) * 1000 for x in open(sys.argv[1]))
b = sorted(float(x) * 1000 for x in open(sys.argv[2]))
p = lambda v, q: v[min(len(v) - 1, round((len(v) - 1) * q))]
print(f"{sys.argv[3]} submissions of a 1.0 MiB 1280x720 H.264 file each, interleaved")
print()
print("| upload check | p50 ms | p95 ms | mean ms |")
print("|---|---|---|---|")
for name, v in (("in the server process", a), ("in a limited child process", b)):
    print(f"| {name} | {p(v, .5):.1f} | {p(v, .95):.1f} | {statistics.mean(v):.1f} |")
print()
print(f"child / in process: p50 {p(b, .5) / p(a, .5):.2f}x, mean {statistics.mean(b) / statistics.mean(a):.2f}x, "
      f"{statistics.mean(b) - statistics.mean(a):.1f} ms more per upload")
PY
