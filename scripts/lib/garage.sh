# Garage (crates.io `garage`), the S3-compatible object store the storage tests run against
# (tests/it/common/garage.rs starts one per test). Built once with cargo into a cache outside
# the checkout (LEAKTRACE_TOOLS, default ~/.cache/leaktrace/tools), so clones and CI runs on
# the same machine reuse it. Built with only what the tests use (the SQLite metadata engine,
# bundled libraries): about 7 minutes on an idle 2-core machine (6 min 34 s measured).
# shellcheck shell=bash

GARAGE_VERSION=2.5.0

ensure_garage() {
  local root="${LEAKTRACE_TOOLS:-$HOME/.cache/leaktrace/tools}/garage-$GARAGE_VERSION-sqlite"
  if [ -n "${LEAKTRACE_GARAGE:-}" ] && [ -x "$LEAKTRACE_GARAGE" ]; then
    return 0
  fi
  if [ ! -x "$root/bin/garage" ]; then
    log "building Garage $GARAGE_VERSION once into $root (about 7 minutes on 2 cores)"
    cargo install garage --version "$GARAGE_VERSION" --locked --no-default-features \
      --features bundled-libs,sqlite --root "$root" >&2
  fi
  export LEAKTRACE_GARAGE="$root/bin/garage"
}
