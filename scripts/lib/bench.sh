# Helpers for the benchmark scripts (sourced).

# The release binary, built if missing or stale.
release_binary() {
  cargo build --release --locked --bin leaktrace >&2
  echo "$PWD/target/release/leaktrace"
}

# Joins a packaged title's init segment and every unit of one variant (a or b) into a file.
join_variant() { # DIR VARIANT OUT
  local dir=$1 variant=$2 out=$3 n
  n=$(ls "$dir/video/$variant" | wc -l)
  { cat "$dir/video/init.mp4"; for k in $(seq 1 "$n"); do cat "$dir/video/$variant/$k.m4s"; done; } >"$out"
}

# The test clips: the bundled sample, the shared clips when present, and two generated ones
# (flat animation: lavfi testsrc2, and colour bars with a moving flat box).
bench_clips() { # WORKDIR
  local w=$1
  echo "$PWD/samples/bigbuckbunny.mp4"
  [ -f ../shared/media/bikes.mp4 ] && echo "$(cd ../shared/media && pwd)/bikes.mp4"
  ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=8" \
    -pix_fmt yuv420p -c:v libx264 -crf 10 "$w/flat-testsrc2.mp4"
  ffmpeg -nostdin -v error -y -f lavfi -i "smptebars=size=1280x720:rate=25:duration=8" \
    -vf "drawbox=x='mod(t*160\,1100)':y=300:w=160:h=160:color=red@1:t=fill" \
    -pix_fmt yuv420p -c:v libx264 -crf 10 "$w/flat-bars.mp4"
  echo "$w/flat-testsrc2.mp4"
  echo "$w/flat-bars.mp4"
}
