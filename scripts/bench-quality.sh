#!/usr/bin/env bash
# Watermark invisibility: for each clip, PSNR and SSIM of variant A and of variant B against
# an unmarked encode made with the same libx264 settings, and the PSNR between A and B.
# Usage: scripts/bench-quality.sh [CLIP ...]   (default: sample, shared clips, generated flat clips)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

BIN=$(release_binary)
WORK=$(mktemp -d /tmp/leaktrace-quality.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
if [ $# -gt 0 ]; then CLIPS=("$@"); else mapfile -t CLIPS < <(bench_clips "$WORK"); fi

# "PSNR_Y PSNR_avg" of A against B (frames paired by order).
psnr() {
  ffmpeg -nostdin -i "$1" -i "$2" -lavfi "[0:v]setpts=N[a];[1:v]setpts=N[b];[a][b]psnr" -f null - 2>&1 |
    sed -n 's/.*PSNR y:\([0-9.inf]*\).*average:\([0-9.inf]*\).*/\1 \2/p'
}
ssim() {
  ffmpeg -nostdin -i "$1" -i "$2" -lavfi "[0:v]setpts=N[a];[1:v]setpts=N[b];[a][b]ssim" -f null - 2>&1 |
    sed -n 's/.*All:\([0-9.]*\).*/\1/p'
}

echo "| clip | frames | A PSNR-Y | A PSNR avg | A SSIM | B PSNR-Y | B PSNR avg | B SSIM | A vs B PSNR-Y |"
echo "|---|---|---|---|---|---|---|---|---|"
for clip in "${CLIPS[@]}"; do
  data="$WORK/data-$(basename "$clip")"
  json=$("$BIN" --log-level warn --data-dir "$data" package "$clip" --title "$(basename "$clip")" --ladder none --json)
  id=$(echo "$json" | sed -n 's/.*"video_id":"\([^"]*\)".*/\1/p')
  dir="$data/videos/$id"
  frames=$(echo "$json" | sed -n 's/.*"frames":\([0-9]*\).*/\1/p')
  unit=$(python3 -c "import json,sys; m=json.load(open('$dir/package.json'))['video']; print(m['unit_frames'], m['crf'], m['preset'], m['frame_rate'][0], m['frame_rate'][1])")
  read -r n crf preset fr_num fr_den <<<"$unit"
  join_variant "$dir" a "$WORK/a.mp4"
  join_variant "$dir" b "$WORK/b.mp4"
  # The unmarked reference: the same frames, the same encoder settings, no watermark.
  ffmpeg -nostdin -v error -y -i "$clip" -an -vf "fps=$fr_num/$fr_den,scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p" \
    -c:v libx264 -preset "$preset" -crf "$crf" -g "$n" -keyint_min "$n" -sc_threshold 0 \
    -forced-idr 1 -x264-params "keyint=$n:min-keyint=$n:scenecut=0:open-gop=0" "$WORK/plain.mp4"
  read -r ay aavg <<<"$(psnr "$WORK/a.mp4" "$WORK/plain.mp4")"
  read -r by bavg <<<"$(psnr "$WORK/b.mp4" "$WORK/plain.mp4")"
  read -r aby _ <<<"$(psnr "$WORK/a.mp4" "$WORK/b.mp4")"
  echo "| $(basename "$clip") | $frames | $ay | $aavg | $(ssim "$WORK/a.mp4" "$WORK/plain.mp4") | $by | $bavg | $(ssim "$WORK/b.mp4" "$WORK/plain.mp4") | $aby |"
done
