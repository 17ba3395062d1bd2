#!/usr/bin/env bash
# Adaptive streaming, measured on the robustness bench's title (about 105 s of 1280x720, or
# of SIZE, e.g. SIZE=1920x1080):
#  1. cost: `leaktrace package --ladder LADDER` against one plain encode of the same ladder
#     (ffmpeg, the same x264 settings, no watermark), CPU and wall time side by side;
#  2. invisibility: PSNR-Y of each rendition's variants A and B against that plain encode;
#  3. identification: a leak of the lowest rendition, and a recording of a player that
#     switched between every rendition every few units, each attacked with the ffmpeg CLI,
#     analysed by `leaktrace extract` among INNOCENT+2 sessions.
# Usage: [SIZE=1920x1080] scripts/bench-abr.sh [LADDER=480,360] [INNOCENT_SESSIONS=100]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

LADDER=${1:-480,360}
INNOCENT=${2:-100}
BIN=$(release_binary)
EX=${BENCH_EXAMPLES:-$PWD/target/release/examples}
[ -n "${BENCH_EXAMPLES:-}" ] || cargo build --release --locked --example leak_session --example open_sessions >&2
WORK=$(mktemp -d /tmp/leaktrace-abr.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
cpu() { # LABEL COMMAND...: runs it, prints "LABEL wall user+sys" (seconds)
  local label=$1; shift
  /usr/bin/time -f "$label %e %U %S" -o "$WORK/time" "$@" >/dev/null
  awk '{ printf "%s %.1f %.1f\n", $1, $2, $3 + $4 }' "$WORK/time"
}
log "composing the test title"
SIZE=${SIZE:-1280x720}
compose_title "$WORK/title.mp4" "$SIZE"

DATA="$WORK/data"
"$BIN" --log-level warn --data-dir "$DATA" migrate >/dev/null
for u in leaker switcher crowd; do
  printf 'bench password\n' | "$BIN" --log-level warn --data-dir "$DATA" user add "$u" --role viewer --password-stdin >/dev/null
done

# 1. Cost. The ladder's sizes are those packaging picks (the source's shape, even widths).
log "packaging with and without the ladder"
read -r _ pack_wall pack_cpu <<<"$(cpu ladder "$BIN" --log-level warn --data-dir "$DATA" package "$WORK/title.mp4" --title abr --ladder "$LADDER" --json)"
read -r _ one_wall one_cpu <<<"$(cpu single "$BIN" --log-level warn --data-dir "$WORK/single" package "$WORK/title.mp4" --title single --ladder none --json)"
VIDEO=$(ls "$DATA/videos")
DIR="$DATA/videos/$VIDEO"
read -r UNITS N CRF PRESET < <(python3 -c "import json; m=json.load(open('$DIR/package.json'))['video']; print(m['unit_count'], m['unit_frames'], m['crf'], m['preset'])")
mapfile -t SIZES < <(python3 -c "
import json; m = json.load(open('$DIR/package.json'))
print(0, m['video']['width'], m['video']['height'], m['video'].get('bandwidth', 0))
for r in m.get('renditions', []): print(r['index'], r['width'], r['height'], r['bandwidth'])")
X264=(-c:v libx264 -preset "$PRESET" -crf "$CRF" -threads 2 -g "$N" -keyint_min "$N" -sc_threshold 0
  -forced-idr 1 -x264-params "keyint=$N:min-keyint=$N:scenecut=0:open-gop=0")
split="[0:v]split=${#SIZES[@]}"
for s in "${SIZES[@]}"; do read -r i _ _ _ <<<"$s"; split+="[s$i]"; done
chain="$split"; maps=()
for s in "${SIZES[@]}"; do
  read -r i w h _ <<<"$s"
  chain+=";[s$i]scale=$w:$h:flags=bicubic[o$i]"
  maps+=(-map "[o$i]" "${X264[@]}" "$WORK/plain-r$i.mp4")
done
read -r _ plain_wall plain_cpu <<<"$(cpu plain ffmpeg -nostdin -v error -y -i "$WORK/title.mp4" -filter_complex "$chain" "${maps[@]}")"

echo "Title: $UNITS units of 1 s, $SIZE, 25 fps; ladder $LADDER; $(nproc) cores, $(date -u +%F)."
echo
echo "| work | wall s | CPU s (user+sys) | CPU / plain ladder encode |"
echo "|---|---|---|---|"
for row in "plain encode of the ladder (ffmpeg, 1 variant per rendition, no mark)|$plain_wall|$plain_cpu" \
           "leaktrace package, top rendition only (2 variants)|$one_wall|$one_cpu" \
           "leaktrace package --ladder $LADDER (2 variants per rendition)|$pack_wall|$pack_cpu"; do
  IFS='|' read -r name wall c <<<"$row"
  echo "| $name | $wall | $c | $(python3 -c "print(f'{$c / $plain_cpu:.2f}x')") |"
done
echo

# 2. Invisibility per rendition.
psnr() {
  ffmpeg -nostdin -i "$1" -i "$2" -lavfi "[0:v]setpts=N[a];[1:v]setpts=N[b];[a][b]psnr" -f null - 2>&1 |
    sed -n 's/.*PSNR y:\([0-9.inf]*\).*average:\([0-9.inf]*\).*/\1/p'
}
join_rendition() { # INDEX VARIANT OUT
  local dir="$DIR/video" init
  [ "$1" = 0 ] || dir="$DIR/video-r$1"
  { cat "$dir/init.mp4"; for k in $(seq 1 "$UNITS"); do cat "$dir/$2/$k.m4s"; done; } >"$3"
}
echo "| rendition | size | bandwidth (A) | A PSNR-Y | B PSNR-Y |"
echo "|---|---|---|---|---|"
for s in "${SIZES[@]}"; do
  read -r i w h bw <<<"$s"
  join_rendition "$i" a "$WORK/a.mp4"; join_rendition "$i" b "$WORK/b.mp4"
  echo "| $i | ${w}x$h | $((bw / 1000)) kbit/s | $(psnr "$WORK/a.mp4" "$WORK/plain-r$i.mp4") | $(psnr "$WORK/b.mp4" "$WORK/plain-r$i.mp4") |"
done
echo

# 3. Leaks from the renditions.
PORT=$(free_port)
LEAKTRACE_MAX_CONCURRENT_SESSIONS=100000 LEAKTRACE_RIPPING_BURST_SECONDS=1e12 \
  "$BIN" --log-level warn --data-dir "$DATA" serve --bind "127.0.0.1:$PORT" >/dev/null &
PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"
ALL=$(for s in "${SIZES[@]}"; do read -r i _ <<<"$s"; printf '%s,' "$i"; done); ALL=${ALL%,}
LOWEST=$(read -r i _ <<<"${SIZES[-1]}"; echo "$i")
LEAKER=$("$EX/leak_session" "$BASE" leaker "bench password" "$(printf '%064x' 1)" "$VIDEO" "$UNITS" "$WORK/leaker" "$LOWEST")
SWITCHER=$("$EX/leak_session" "$BASE" switcher "bench password" "$(printf '%064x' 2)" "$VIDEO" "$UNITS" "$WORK/switcher" "$ALL")
"$EX/open_sessions" "$BASE" crowd "bench password" "$INNOCENT" "$VIDEO" >/dev/null
for _ in $(seq 3000); do [ -f "$DIR/reference/units/1.lts" ] && break; sleep 0.2; done
kill "${PIDS[0]}"; PIDS=()

# The switcher's recording: what the screen showed (every rendition scaled to SIZE), the
# rendition changing every 4 units in turn, encoded once.
python3 - "$WORK" "$N" "$ALL" "$SIZE" <<'PY'
import subprocess, sys
work, unit_frames, renditions, dims = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
w, h = (int(v) for v in dims.split("x"))
size = w * h * 3 // 2
decoders = [subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-i", f"{work}/switcher-r{r}.mp4",
    "-vf", f"scale={w}:{h}:flags=bicubic", "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"],
    stdout=subprocess.PIPE) for r in renditions]
encoder = subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
    "-s", dims, "-r", "25", "-i", "-", "-c:v", "libx264", "-preset", "fast", "-crf", "18",
    f"{work}/switched.mp4"], stdin=subprocess.PIPE)
n = 0
while True:
    frames = [d.stdout.read(size) for d in decoders]
    if any(len(f) < size for f in frames):
        break
    encoder.stdin.write(frames[(n // unit_frames // 4) % len(frames)])
    n += 1
encoder.stdin.close(); encoder.wait()
PY

CANDIDATES=$((INNOCENT + 2))
echo "$CANDIDATES candidate sessions; each copy's leaker is the session that made it."
echo
echo "| copy and attack | unit accuracy | z | false-positive probability | verdict | best innocent FPP | extract time |"
echo "|---|---|---|---|---|---|---|"
X264_ATTACK=(-c:v libx264 -preset fast)
for copy in "lowest rendition ($(read -r _ w h _ <<<"${SIZES[-1]}"; echo "${w}x$h"))|$WORK/leaker-r$LOWEST.mp4|$LEAKER" \
            "recording switching between all renditions every 4 s|$WORK/switched.mp4|$SWITCHER"; do
  IFS='|' read -r what file session <<<"$copy"
  for attack in "as leaked|" "H.264 CRF 28|-crf 28" "H.264 CRF 35|-crf 35" "640x360, CRF 28|-vf scale=640:360 -crf 28" \
                "crop 5% per side, 854x480, CRF 28|-vf crop=iw*0.9:ih*0.9,scale=854:480 -crf 28" \
                "sped up 5 %, CRF 28|-vf setpts=PTS/1.05,fps=25 -crf 28"; do
    name=${attack%%|*}; args=${attack#*|}
    out="$WORK/attacked.mp4"
    if [ -z "$args" ]; then cp "$file" "$out"; else
      # shellcheck disable=SC2086
      ffmpeg -nostdin -v error -y -i "$file" $args "${X264_ATTACK[@]}" -an "$out"
    fi
    start=$(date +%s.%N)
    result=$("$BIN" --log-level warn --data-dir "$DATA" extract "$out" --video "$VIDEO" --json || echo '{}')
    took=$(python3 -c "import time; print(f'{time.time() - $start:.1f} s')")
    result_row "$session" "$what: $name" "$took" "$result"
  done
done
