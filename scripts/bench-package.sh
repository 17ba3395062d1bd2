#!/usr/bin/env bash
# Packaging cost: wall time of `leaktrace package` against one plain libx264 encode of the
# same source at the same settings, measured alternately in one run (two variants make 2x the
# floor; the target is <= 2.3x). Also reports peak memory of packaging, and the bytes a viewer
# receives per second of video (the mean over the variants' folders) against the plain encode's.
# Usage: [PACKAGE_ARGS=...] scripts/bench-package.sh [SECONDS=60] [REPEATS=2]
# PACKAGE_ARGS: more options of `leaktrace package`, e.g. "--unit-seconds 0.5 --segment-units 2"
# (the plain encode keeps 1 s GOPs: the ratio then includes what the option costs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

SECONDS_LONG=${1:-60}
REPEATS=${2:-2}
BIN=$(release_binary)
WORK=$(mktemp -d /tmp/leaktrace-cost.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SRC="$WORK/source.mp4"
# A 720p title with audio: the sample clip looped.
ffmpeg -nostdin -v error -y -stream_loop -1 -i samples/bigbuckbunny.mp4 -t "$SECONDS_LONG" \
  -c:v libx264 -preset veryfast -crf 16 -c:a aac "$SRC"
read -r crf preset <<<"$(python3 -c "
import re;t=open('forensics/src/media/encode.rs').read()
print(re.search(r'DEFAULT_CRF: u8 = (\d+)',t)[1], re.search(r'DEFAULT_PRESET: &str = \"(\w+)\"',t)[1])")"
n=25 # unit frames at 25 fps, 1 s units

elapsed() { # prints "seconds maxrss_kib" of a command
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" || { cat "$WORK/stderr" >&2; exit 1; }
  cat "$WORK/time"
}

plain_runs=(); package_runs=(); package_rss=()
for i in $(seq 1 "$REPEATS"); do
  read -r t _ <<<"$(elapsed ffmpeg -nostdin -v error -y -i "$SRC" -an -c:v libx264 -preset "$preset" -crf "$crf" \
    -g $n -keyint_min $n -sc_threshold 0 -forced-idr 1 -x264-params "keyint=$n:min-keyint=$n:scenecut=0:open-gop=0" \
    -movflags frag_keyframe+empty_moov+default_base_moof "$WORK/plain.mp4")"
  plain_runs+=("$t")
  rm -rf "$WORK/data"
  # shellcheck disable=SC2086
  read -r t rss <<<"$(elapsed "$BIN" --log-level warn --data-dir "$WORK/data" package "$SRC" --title "cost $i" --ladder none ${PACKAGE_ARGS:-})"
  package_runs+=("$t"); package_rss+=("$rss")
done
plain_bytes=$(stat -c %s "$WORK/plain.mp4")
# What a session receives: one variant of each segment, on average the mean of the variants.
variant_bytes=$(for d in "$WORK"/data/videos/*/video/*/; do du -sb "$d" | cut -f1; done \
  | awk '{s += $1; n += 1} END {printf "%d", s / n}')

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
p=$(median "${plain_runs[@]}"); q=$(median "${package_runs[@]}"); r=$(median "${package_rss[@]}")
echo "| source | plain libx264 encode (s) | leaktrace package (s) | ratio | package peak RSS (MiB) |"
echo "|---|---|---|---|---|"
awk -v s="$SECONDS_LONG" -v pr="$preset" -v c="$crf" -v p="$p" -v q="$q" -v r="$r" 'BEGIN {
  printf "| %s s 1280x720 25 fps + AAC, preset %s, CRF %s | %s | %s | %.2fx | %d |\n", s, pr, c, p, q, q / p, r / 1024 }'
echo "(runs: plain ${plain_runs[*]}; package ${package_runs[*]})${PACKAGE_ARGS:+; packaged with $PACKAGE_ARGS}"
awk -v p="$plain_bytes" -v v="$variant_bytes" 'BEGIN {
  printf "Video bytes a session receives: %d (mean over the variants) against the plain encode'"'"'s %d: %+.1f %%\n", v, p, (v / p - 1) * 100 }'
