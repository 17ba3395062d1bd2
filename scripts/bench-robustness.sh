#!/usr/bin/env bash
# Robustness of leak identification against what pirates do, end to end:
# a title of about 105 s (the bundled sample, the development clip bikes.mp4, and
# generated content), packaged; INNOCENT+4 sessions streamed through the real protocol; the
# leaked copy of session 1 attacked with the ffmpeg CLI; `leaktrace extract` on each copy.
# Prints per attack: unit accuracy of the leaker's code, its z score and false-positive
# probability, the verdict, the best innocent's false-positive probability and the time.
# With BEFORE=/path/to/an/older/leaktrace, each attacked copy is also analysed by that binary
# and its figures printed beside (same title, sessions and copy: a change side by side).
# Usage: [BEFORE=BIN] [PACKAGE_ARGS=...] [KEEP_WORK=1] scripts/bench-robustness.sh
#        [INNOCENT_SESSIONS=100] [ATTACK_FILTER=.]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

INNOCENT=${1:-100}
FILTER=${2:-.}
BIN=$(release_binary)
# BENCH_EXAMPLES: a folder with leak_session and open_sessions built before.
EX=${BENCH_EXAMPLES:-$PWD/target/release/examples}
[ -n "${BENCH_EXAMPLES:-}" ] || cargo build --release --locked --example leak_session --example open_sessions >&2
WORK=$(mktemp -d /tmp/leaktrace-robustness.XXXXXX)
PIDS=()
# KEEP_WORK=1 keeps the title, its sessions and every attacked copy (named by its row number)
# for analysing again with another build: `leaktrace --data-dir WORK/data extract WORK/NN.mp4`.
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log "composing the test title"
compose_title "$WORK/title.mp4"

DATA="$WORK/data"
"$BIN" --log-level warn --data-dir "$DATA" migrate >/dev/null
for u in leaker viewer2 viewer3 viewer4 crowd; do
  printf 'bench password\n' | "$BIN" --log-level warn --data-dir "$DATA" user add "$u" --role viewer --password-stdin >/dev/null
done
# PACKAGE_ARGS: more options of `leaktrace package`, e.g. "--code tardos-v2" (the table under
# the collusion-resistant code).
# shellcheck disable=SC2086
json=$("$BIN" --log-level warn --data-dir "$DATA" package "$WORK/title.mp4" --title robustness --ladder none ${PACKAGE_ARGS:-} --json)
VIDEO=$(echo "$json" | sed -n 's/.*"video_id":"\([^"]*\)".*/\1/p')
UNITS=$(echo "$json" | sed -n 's/.*"units":\([0-9]*\).*/\1/p')
# The segments a player fetches: as many as units unless each holds two (--segment-units 2).
SEGMENTS=$(echo "$json" | sed -n 's/.*"segments":\([0-9]*\).*/\1/p')
SEGMENTS=${SEGMENTS:-$UNITS}
log "packaged $VIDEO: $UNITS units in $SEGMENTS segments"

PORT=$(free_port)
LEAKTRACE_MAX_CONCURRENT_SESSIONS=100000 LEAKTRACE_RIPPING_BURST_SECONDS=1e12 \
  "$BIN" --log-level warn --data-dir "$DATA" serve --bind "127.0.0.1:$PORT" >/dev/null &
PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"
LEAKER=$("$EX/leak_session" "$BASE" leaker "bench password" "$(printf '%064x' 1)" "$VIDEO" "$SEGMENTS" "$WORK/leak.mp4")
i=2
for u in viewer2 viewer3 viewer4; do
  "$EX/leak_session" "$BASE" "$u" "bench password" "$(printf '%064x' $i)" "$VIDEO" "$SEGMENTS" "$WORK/$u.mp4" >/dev/null
  i=$((i + 1))
done
"$EX/open_sessions" "$BASE" crowd "bench password" "$INNOCENT" "$VIDEO" >/dev/null
# The server's worker builds the title's reference store (queued by packaging); extraction
# uses it once it is there.
for _ in $(seq 3000); do [ -f "$DATA/videos/$VIDEO/reference/units/1.lts" ] && break; sleep 0.2; done
[ -f "$DATA/videos/$VIDEO/reference/units/1.lts" ] || die "the reference store was not built"
kill "${PIDS[0]}"; PIDS=()
CANDIDATES=$((INNOCENT + 4))

X264=(-c:v libx264 -preset fast)
attacks=(
  "H.264 CRF 23|${X264[*]} -crf 23"
  "H.264 CRF 28|${X264[*]} -crf 28"
  "H.264 CRF 35|${X264[*]} -crf 35"
  "H.264 CRF 40|${X264[*]} -crf 40"
  "H.265 CRF 28|-c:v libx265 -preset fast -crf 28 -x265-params log-level=error"
  "H.265 CRF 32|-c:v libx265 -preset fast -crf 32 -x265-params log-level=error"
  "VP9 CRF 40|-c:v libvpx-vp9 -crf 40 -b:v 0 -deadline realtime -cpu-used 8"
  "downscale 2/3 (854x480), CRF 23|-vf scale=854:480 ${X264[*]} -crf 23"
  "downscale 1/2 = 360 lines (640x360), CRF 23|-vf scale=640:360 ${X264[*]} -crf 23"
  "downscale to 240 lines, CRF 23|-vf scale=-2:240 ${X264[*]} -crf 23"
  "crop 5% per side, rescaled, CRF 23|-vf crop=iw*0.9:ih*0.9,scale=1280:720 ${X264[*]} -crf 23"
  "crop 10% per side, rescaled, CRF 23|-vf crop=iw*0.8:ih*0.8,scale=1280:720 ${X264[*]} -crf 23"
  "letterbox (1280x540 in 1280x720), CRF 23|-vf scale=1280:540,pad=1280:720:0:90 ${X264[*]} -crf 23"
  "brightness/contrast/gamma/saturation, CRF 23|-vf eq=brightness=0.06:contrast=1.2:gamma=1.2:saturation=1.3 ${X264[*]} -crf 23"
  "added noise, CRF 23|-vf noise=alls=12:allf=t ${X264[*]} -crf 23"
  "24 fps, CRF 23|-vf fps=24 ${X264[*]} -crf 23"
  "30 fps, CRF 23|-vf fps=30 ${X264[*]} -crf 23"
  "excerpt 60 s, CRF 23|-ss 20 -t 60 ${X264[*]} -crf 23"
  "excerpt 30 s, CRF 23|-ss 40 -t 30 ${X264[*]} -crf 23"
  "excerpt 30 s, CRF 28|-ss 40 -t 30 ${X264[*]} -crf 28"
  "chained: H.265 CRF 28, then 1/2 + H.264 CRF 28|CHAIN"
  "sped up 5 % (re-timed to 25 fps), CRF 23|-vf setpts=PTS/1.05,fps=25 ${X264[*]} -crf 23"
  "slowed down 4 %, CRF 23|-vf setpts=PTS*1.04,fps=25 ${X264[*]} -crf 23"
  "sped up 15 %, CRF 23|-vf setpts=PTS/1.15,fps=25 ${X264[*]} -crf 23"
  "slowed down 13 % (0.87x), CRF 23|-vf setpts=PTS/0.87,fps=25 ${X264[*]} -crf 23"
  "sped up 10 % + crop 5 % + 854x480, CRF 23|-vf setpts=PTS/1.1,fps=25,crop=iw*0.9:ih*0.9,scale=854:480 ${X264[*]} -crf 23"
  "1 frame in 7 dropped and re-timed (drift), CRF 23|-vf select=not(eq(mod(n\,7)\,3)),setpts=N/25/TB ${X264[*]} -crf 23"
  "10 s cut out + 8 s of other material inserted, CRF 23|CUTINSERT"
  "mirrored (horizontal flip), CRF 23|-vf hflip ${X264[*]} -crf 23"
  "upside down (vertical flip), CRF 23|-vf vflip ${X264[*]} -crf 23"
  "mirrored + crop 5 % + 640x360, CRF 23|-vf hflip,crop=iw*0.9:ih*0.9,scale=640:360 ${X264[*]} -crf 23"
  "turned 3 degrees, cropped to hide the corners, CRF 23|-vf rotate=3*PI/180,crop=iw*0.88:ih*0.88,scale=1280:720 ${X264[*]} -crf 23"
  "turned -5 degrees, cropped, 854x480, CRF 23|-vf rotate=-5*PI/180,crop=iw*0.84:ih*0.84,scale=854:480 ${X264[*]} -crf 23"
  "camera off-axis (perspective), CRF 23|-vf perspective=x0=W*0.04:y0=H*0.03:x1=W*0.98:y1=0:x2=0:y2=H*0.97:x3=W*0.96:y3=H ${X264[*]} -crf 23"
  "sped up 5 % + mirrored + turned 2 degrees + 854x480, CRF 28|-vf setpts=PTS/1.05,fps=25,hflip,rotate=2*PI/180,crop=iw*0.92:ih*0.92,scale=854:480 ${X264[*]} -crf 28"
  "half a turn (both flips at once), CRF 23|-vf hflip,vflip ${X264[*]} -crf 23"
  "sped up 12 % and re-timed to 30 fps, CRF 23|-vf setpts=PTS/1.12,fps=30 ${X264[*]} -crf 23"
  "slowed down 15 % (0.85x) and re-timed to 24 fps, CRF 23|-vf setpts=PTS/0.85,fps=24 ${X264[*]} -crf 23"
  "speed wandering between 0.93x and 1.07x, CRF 23|-vf setpts=(N/25+sin(N/375))/TB,fps=25 ${X264[*]} -crf 23"
  "1 frame in 11 duplicated and re-timed (0.91x), CRF 23|-vf fps=27.5,setpts=N/25/TB,fps=25 ${X264[*]} -crf 23"
  "12 s intro, 10 s removed, 6 s advert inserted, CRF 23|INTROAD"
  "turned 5 degrees, black corners left in, CRF 23|-vf rotate=5*PI/180 ${X264[*]} -crf 23"
  "camera off-axis, twice as strong, CRF 23|-vf perspective=x0=W*0.08:y0=H*0.06:x1=W*0.95:y1=H*0.02:x2=W*0.02:y2=H*0.94:x3=W*0.92:y3=H ${X264[*]} -crf 23"
  "shrunk to 70 % and placed off-centre on black, CRF 23|-vf scale=896:504,pad=1280:720:300:150 ${X264[*]} -crf 23"
  "turned -4 degrees + off-axis + 640x360, CRF 28|-vf rotate=-4*PI/180,crop=iw*0.86:ih*0.86,perspective=x0=W*0.03:y0=0:x1=W:y1=H*0.02:x2=0:y2=H:x3=W*0.97:y3=H*0.98,scale=640:360 ${X264[*]} -crf 28"
  "upside down + crop 10 % + 854x480, sped up 8 %, CRF 30|-vf setpts=PTS/1.08,fps=25,vflip,crop=iw*0.8:ih*0.8,scale=854:480 ${X264[*]} -crf 30"
  "mirrored + slowed 6 % + 24 fps, 45 s excerpt, CRF 26|-ss 30 -t 45 -vf hflip,setpts=PTS*1.06,fps=24 ${X264[*]} -crf 26"
  "cut from the top-left corner to 85 %, rescaled, CRF 23|-vf crop=iw*0.85:ih*0.85:0:0,scale=1280:720 ${X264[*]} -crf 23"
  "cut from the bottom-right corner to 75 %, 854x480, CRF 23|-vf crop=iw*0.75:ih*0.75:iw*0.25:ih*0.25,scale=854:480 ${X264[*]} -crf 23"
  "mirrored + cut from the right edge to 80 %, CRF 23|-vf hflip,crop=iw*0.8:ih*0.8:iw*0.2:ih*0.1,scale=1280:720 ${X264[*]} -crf 23"
  "sped up 7 % + cut from the top-right corner to 80 % + 640x360, CRF 28|-vf setpts=PTS/1.07,fps=25,crop=iw*0.8:ih*0.8:iw*0.2:0,scale=640:360 ${X264[*]} -crf 28"
  "squeezed to 4:3 (960x720), CRF 23|-vf scale=960:720 ${X264[*]} -crf 23"
  "4:3 centre cut, pillarboxed, CRF 23|-vf crop=960:720,pad=1280:720:160:0 ${X264[*]} -crf 23"
  "logo box burnt in + greyscale, CRF 23|-vf drawbox=x=40:y=40:w=260:h=90:color=white@0.8:t=fill,hue=s=0 ${X264[*]} -crf 23"
  "60 fps, CRF 23|-vf fps=60 ${X264[*]} -crf 23"
)

echo "Title: $UNITS units (1280x720, 25 fps); $CANDIDATES candidate sessions; leaker = session 1 ($LEAKER)${PACKAGE_ARGS:+; packaged with $PACKAGE_ARGS}."
[ "${KEEP_WORK:-0}" = 1 ] && log "title $VIDEO; copies kept as $WORK/NN.mp4 in row order"
echo
echo "| attack | unit accuracy | z | false-positive probability | verdict | best innocent FPP | extract time |"
echo "|---|---|---|---|---|---|---|"
[ -n "${BEFORE:-}" ] && echo "(each attack: this build's row, then the BEFORE build's, marked 'before')"
for entry in "${attacks[@]}"; do
  name=${entry%%|*}; args=${entry#*|}
  echo "$name" | grep -qE "$FILTER" || continue
  out="$WORK/attacked.mp4"
  if [ "$args" = CHAIN ]; then
    ffmpeg -nostdin -v error -y -i "$WORK/leak.mp4" -c:v libx265 -preset fast -crf 28 -x265-params log-level=error "$WORK/step1.mp4"
    ffmpeg -nostdin -v error -y -i "$WORK/step1.mp4" -vf scale=640:360 "${X264[@]}" -crf 28 "$out"
  elif [ "$args" = INTROAD ]; then
    # 12 s of other material first, the title 0-50 s, a 6 s advert, then the title from 60 s on.
    ffmpeg -nostdin -v error -y -i "$WORK/leak.mp4" -f lavfi -t 12 -i "testsrc2=size=1280x720:rate=25" \
      -f lavfi -t 6 -i "mandelbrot=size=1280x720:rate=25:start_scale=0.5" \
      -filter_complex "[1:v]format=yuv420p,setsar=1[i];[0:v]trim=0:50,setpts=PTS-STARTPTS[a];[2:v]format=yuv420p,setsar=1[ad];[0:v]trim=60,setpts=PTS-STARTPTS[b];[i][a][ad][b]concat=n=4:v=1:a=0[out]" \
      -map "[out]" "${X264[@]}" -crf 23 "$out"
  elif [ "$args" = CUTINSERT ]; then
    # Title 0-30 s, 8 s of material the title does not have, then the title from 40 s on.
    ffmpeg -nostdin -v error -y -i "$WORK/leak.mp4" -f lavfi -t 8 -i "cellauto=size=1280x720:rate=25" \
      -filter_complex "[0:v]trim=0:30,setpts=PTS-STARTPTS[a];[0:v]trim=40,setpts=PTS-STARTPTS[b];[1:v]format=yuv420p,setsar=1[c];[a][c][b]concat=n=3:v=1:a=0[out]" \
      -map "[out]" "${X264[@]}" -crf 23 "$out"
  else
    # shellcheck disable=SC2086
    ffmpeg -nostdin -v error -y -i "$WORK/leak.mp4" $args -an "$out"
  fi
  row=$((${row:-0} + 1))
  [ "${KEEP_WORK:-0}" = 1 ] && cp "$out" "$WORK/$(printf %02d "$row").mp4"
  for bin in "$BIN" ${BEFORE:+"$BEFORE"}; do
  label=$name
  [ "$bin" = "$BIN" ] || label="$name (before)"
  start=$(date +%s.%N)
  result=$("$bin" --log-level warn --data-dir "$DATA" extract "$out" --video "$VIDEO" --json || echo '{}')
  took=$(python3 -c "import time; print(f'{time.time() - $start:.1f} s')")
  result_row "$LEAKER" "$label" "$took" "$result"
  done
done
