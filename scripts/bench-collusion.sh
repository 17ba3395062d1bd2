#!/usr/bin/env bash
# Collusion on real video: a title of about 31 minutes (generated once, see compose_long_title,
# and kept in target/media/), packaged under the Tardos code with UNIT_SECONDS units; for 1
# leaker and 2, 3 and 4 colluders and every strategy, the coalition's copy built from the
# variants its members received, re-encoded at CRF 23, extracted, and its colluders looked for
# among 1,000,000 sessions (see forensics/examples/collusion_video.rs). Prints a Markdown
# table: the minutes of copy after which the first and all colluders are named.
# Usage: scripts/bench-collusion.sh [UNIT_SECONDS=1] [CASES=] [SEGMENT_UNITS=1]
# (CASES: e.g. 2, 3:minority, 2:average,4:majority; SEGMENT_UNITS 2: two units per segment,
# four variants of each). What extraction read of each copy is kept in the work folder: a
# later run scores the same copies again; remove target/bench/collusion-*/readings to redo them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

UNIT_SECONDS=${1:-1}
CASES=${2:-}
SEGMENT_UNITS=${3:-1}
TITLE="$PWD/target/media/long-title-31min.mp4"
if [ ! -f "$TITLE" ]; then
  log "composing the 31-minute title (once)"
  mkdir -p "$(dirname "$TITLE")"
  compose_long_title "$TITLE.part.mp4" 31
  mv "$TITLE.part.mp4" "$TITLE"
fi
WORK="$PWD/target/bench/collusion-$UNIT_SECONDS"
[ "$SEGMENT_UNITS" = 1 ] || WORK="$WORK-x$SEGMENT_UNITS"
cargo build --release --locked -p forensics --example collusion_video >&2
"$PWD/target/release/examples/collusion_video" "$TITLE" "$WORK" "$UNIT_SECONDS" "$CASES" "$SEGMENT_UNITS"
