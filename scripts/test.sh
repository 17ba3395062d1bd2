#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 / Ubuntu machine: installs what is missing,
# checks formatting and lints, then runs every test against SQLite and against a throwaway
# PostgreSQL started here (and stopped again, whatever happens), with a Garage object store
# for the storage tests (built once, scripts/lib/garage.sh); runs the end-to-end suite a third
# time with every deployment's files in a bucket of one shared Garage (PostgreSQL, a prefix
# per test); then fuzzes the HTTP API against its OpenAPI document (scripts/fuzz-api.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/postgres.sh
. scripts/lib/garage.sh

ensure_rust
ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
ensure_garage

RESULTS=$(mktemp /tmp/leaktrace-test-results.XXXXXX)
BUCKET_DIR=$(mktemp -d /tmp/leaktrace-test-bucket.XXXXXX)
GARAGE_PID=""
cleanup() {
  stop_postgres
  [ -n "$GARAGE_PID" ] && kill "$GARAGE_PID" 2>/dev/null
  rm -rf "$RESULTS" "$BUCKET_DIR"
}
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

log "end-to-end tests with every file in a bucket (Garage), on PostgreSQL"
start_garage "$BUCKET_DIR"
LEAKTRACE_TEST_BACKEND=postgres LEAKTRACE_TEST_PG_URL="$PG_ADMIN_URL" \
  LEAKTRACE_TEST_STORAGE_URL=s3://leaktrace LEAKTRACE_TEST_STORAGE_ENDPOINT="$GARAGE_ENDPOINT" \
  LEAKTRACE_TEST_STORAGE_REGION=garage LEAKTRACE_TEST_STORAGE_KEY_ID="$GARAGE_KEY_ID" \
  LEAKTRACE_TEST_STORAGE_SECRET="$GARAGE_SECRET" \
  cargo test --locked --test it 2>&1 | tee -a "$RESULTS"
kill "$GARAGE_PID" 2>/dev/null || true
GARAGE_PID=""

log "API fuzzing (schemathesis against docs/openapi.json, every kind of caller)"
scripts/fuzz-api.sh 25

log "all tests passed on SQLite and PostgreSQL, on the data dir and in a bucket, and the API fuzzing found nothing"
# One closing line for every run together.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$RESULTS"
