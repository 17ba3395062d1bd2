# Garage (crates.io `garage`), the S3-compatible object store the storage tests run against
# (tests/it/common/garage.rs starts one per test). Built once with cargo into a cache outside
# the checkout (LEAKTRACE_TOOLS, default ~/.cache/leaktrace/tools), so clones and CI runs on
# the same machine reuse it; the first build takes about 15-20 minutes on 2 cores.
# shellcheck shell=bash

GARAGE_VERSION=2.5.0

ensure_garage() {
  local root="${LEAKTRACE_TOOLS:-$HOME/.cache/leaktrace/tools}/garage-$GARAGE_VERSION"
  if [ -n "${LEAKTRACE_GARAGE:-}" ] && [ -x "$LEAKTRACE_GARAGE" ]; then
    return 0
  fi
  if [ ! -x "$root/bin/garage" ]; then
    log "building Garage $GARAGE_VERSION once into $root (about 15-20 minutes on 2 cores)"
    cargo install garage --version "$GARAGE_VERSION" --locked --root "$root" >&2
  fi
  export LEAKTRACE_GARAGE="$root/bin/garage"
}
