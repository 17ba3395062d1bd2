#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 / Ubuntu machine: installs what is missing,
# checks formatting and lints, then runs every test against SQLite and against a throwaway
# PostgreSQL started here (and stopped again, whatever happens), with a Garage object store
# for the storage tests (built once, scripts/lib/garage.sh), then fuzzes the HTTP API
# against its OpenAPI document (scripts/fuzz-api.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/postgres.sh
. scripts/lib/garage.sh

ensure_rust
ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
ensure_garage

RESULTS=$(mktemp /tmp/leaktrace-test-results.XXXXXX)
cleanup() { stop_postgres; rm -f "$RESULTS"; }
trap cleanup EXIT
trap "exit 130" INT TERM
start_postgres

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "tests on SQLite"
LEAKTRACE_TEST_BACKEND=sqlite cargo test --workspace --locked 2>&1 | tee -a "$RESULTS"

log "tests on PostgreSQL"
LEAKTRACE_TEST_BACKEND=postgres LEAKTRACE_TEST_PG_URL="$PG_ADMIN_URL" \
  cargo test --workspace --locked 2>&1 | tee -a "$RESULTS"

log "API fuzzing (schemathesis against docs/openapi.json, every kind of caller)"
scripts/fuzz-api.sh 25

log "all tests passed on SQLite and PostgreSQL, and the API fuzzing found nothing"
# One closing line for both runs together.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$RESULTS"
