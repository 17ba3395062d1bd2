#!/usr/bin/env bash
# Fuzzes the parsers that see untrusted bytes with cargo-fuzz (libFuzzer, AddressSanitizer,
# debug assertions and overflow checks on), each target for a bounded time: the ISOBMFF box
# reader and session marker (isobmff), the multipart form reading of uploads (multipart), the
# signature check of submitted report PDFs (report_check), JWT verification (tokens) and
# device proof keys (device_key). See fuzz/src/lib.rs for what each drives.
#
# Every input libFuzzer reports (crash, overflow, out-of-memory, timeout, leak) is copied
# into fuzz/regressions/<target>/, which the stable regression tests replay
# (tests/fuzz_regressions.rs of formats, report and shared; fuzz/tests/ for multipart); the
# script then exits non-zero, after all targets ran. It ends with a Markdown table
# (target, executions, seconds, crashes) for docs/BENCHMARKS.md.
#
# Usage: scripts/fuzz-parsers.sh [SECONDS_PER_TARGET]     (default 60)
#   FUZZ_TARGETS="isobmff tokens"   only these targets (default: all, `cargo fuzz list`)
#   FUZZ_TOOLCHAIN=nightly          the toolchain cargo-fuzz builds with (default nightly)
# Needs a nightly toolchain (rustup toolchain install nightly); cargo-fuzz is installed when
# missing. New corpus inputs accumulate in fuzz/corpus/<target>/ (ignored by git beside the
# seed-* files); logs: target/fuzz-parsers/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

SECONDS_PER_TARGET=${1:-60}
[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || die "SECONDS_PER_TARGET must be a positive whole number"
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
OUT=target/fuzz-parsers

ensure_rust
command -v rustup >/dev/null || die "rustup not found: cargo-fuzz needs a nightly toolchain"
rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1 \
  || die "no $TOOLCHAIN toolchain: rustup toolchain install $TOOLCHAIN"
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  mapfile -t targets < <(cargo "+$TOOLCHAIN" fuzz list)
fi
[ ${#targets[@]} -gt 0 ] || die "no fuzz targets in fuzz/"

mkdir -p "$OUT"
rows=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  logfile="$OUT/$t.log"
  # Built just before its run (the first build takes a while), so that the time counted is
  # fuzzing; a target that does not build is an error row, and the others still run.
  log "building $t ($TOOLCHAIN, address sanitizer)"
  if ! cargo "+$TOOLCHAIN" fuzz build "$t" >"$logfile" 2>&1; then
    grep -m 3 '^error' "$logfile" >&2 || true
    log "$t does not build: see $logfile"
    rows+=("| $t | 0 | 0 | error |")
    failed=1
    continue
  fi
  log "fuzzing $t for ${SECONDS_PER_TARGET}s"
  started=$SECONDS
  status=0
  cargo "+$TOOLCHAIN" fuzz run "$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    >>"$logfile" 2>&1 || status=$?
  # Executions and seconds as libFuzzer counts them ("Done N runs in S second(s)"); after a
  # crash, its final stats and the wall-clock time of the run.
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$logfile" | tail -n 1)
  [ -n "$took" ] || took=$((SECONDS - started))
  execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$logfile" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$logfile" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$logfile" | tail -n 1)
  [ -n "$execs" ] || execs="?"
  crashes=0
  while read -r artifact; do
    [ -f "$artifact" ] || continue
    mkdir -p "fuzz/regressions/$t"
    cp "$artifact" "fuzz/regressions/$t/"
    crashes=$((crashes + 1))
    log "$t: kept $(basename "$artifact") in fuzz/regressions/$t/"
  done < <(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$logfile" | sort -u)
  if [ "$status" -ne 0 ]; then
    failed=1
    if [ "$crashes" -eq 0 ]; then
      crashes="error"
      log "$t: cargo fuzz failed (exit $status) without a crashing input: see $logfile"
    else
      grep -m 1 -E '^(==[0-9]+==ERROR|thread .* panicked)' "$logfile" >&2 || true
      log "$t: $crashes crashing input(s), log: $logfile"
    fi
  fi
  rows+=("| $t | $execs | $took | $crashes |")
done

printf '\n| target | executions | seconds | crashes |\n|---|---:|---:|---:|\n'
printf '%s\n' "${rows[@]}"
printf '\n(cargo-fuzz, %s s per target, %s, %s)\n' "$SECONDS_PER_TARGET" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(date -u +%Y-%m-%d)"
[ "$failed" -eq 0 ] || die "fuzzing found crashes (see fuzz/regressions/) or failed"
