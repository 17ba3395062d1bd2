#!/usr/bin/env bash
# Fuzzes the HTTP API against its OpenAPI document (docs/openapi.json, served at
# /api/openapi.json) with schemathesis, once per kind of caller: no credentials, a viewer's
# user token, a device token, an analyst, a legal account, an admin and a crawler's API key.
# Fails on any server error (5xx), a status the document does not list, a body, header or
# content type that breaks it, invalid input that is accepted, a route that ignores its
# authentication (the checks: scripts/lib/schemathesis.toml), a panic in the server's log, or
# a server that stops answering.
#
# Usage: scripts/fuzz-api.sh [MAX_EXAMPLES]     (per operation and caller; default 25)
# Needs the debug binary (built here when missing) and python3-venv; schemathesis is
# installed once into target/tools/schemathesis. Reports: target/fuzz-api/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

EXAMPLES=${1:-25}
SCHEMATHESIS_VERSION=4.32.5
VENV=target/tools/schemathesis
OUT=target/fuzz-api
BIN=target/debug/leaktrace

if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
[ -x "$BIN" ] || cargo build --locked --bin leaktrace

work=$(mktemp -d /tmp/leaktrace-fuzz.XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
data="$work/data"
lt() { "$BIN" --data-dir "$data" --log-level warn "$@"; }
for who in vic:viewer ann:analyst lee:legal ada:admin; do
  echo "fuzzing password" | lt user add "${who%%:*}" --role "${who##*:}" --password-stdin >/dev/null
done
api_key=$(lt apikey create crawler | tail -n 1)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# A generous failure budget: 429s are documented, but they would hide the routes behind them.
LEAKTRACE_AUTH_FAILURES_MAX=1000000 LEAKTRACE_DEMO_API=true \
  "$BIN" --data-dir "$data" --log-level warn serve --bind "127.0.0.1:$port" \
  >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$base/healthz" >/dev/null

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
login() {
  curl -fsS -H 'Content-Type: application/json' \
    -d "{\"username\": \"$1\", \"password\": \"fuzzing password\"}" "$base/api/auth/login/" |
    json_field user_token
}
# A device of vic's with a P-256 proof key (its uncompressed point, base64), as a page makes.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/device.pem" 2>/dev/null
device_key=$(openssl ec -in "$work/device.pem" -pubout -outform DER 2>/dev/null | tail -c 65 | base64 -w0)
viewer=$(login vic)
device=$(curl -fsS -H 'Content-Type: application/json' -H "Authorization: Bearer $viewer" \
  -d "{\"device_fingerprint\": \"$(printf 'f%.0s' $(seq 64))\", \"device_public_key\": \"$device_key\"}" \
  "$base/api/register-device/" | json_field device_token)

mkdir -p "$OUT"
failed=()
run() {
  local name=$1
  shift
  log "schemathesis as $name ($EXAMPLES examples per operation)"
  if ! SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=scripts/lib "$VENV/bin/st" \
      --config-file scripts/lib/schemathesis.toml run "$base/api/openapi.json" \
      --max-examples "$EXAMPLES" --workers 1 --seed 20261203 --no-color \
      --generation-database none --request-timeout 30 \
      --exclude-path-regex '^/(assets/.*|api/docs/|watch/|analyst/|legal/|admin/)?$' \
      --report junit --report-junit-path "$OUT/$name.xml" "$@" >"$OUT/$name.log" 2>&1; then
    failed+=("$name")
    tail -n 60 "$OUT/$name.log"
  else
    tail -n 5 "$OUT/$name.log"
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server stopped while fuzzing as $name:" >&2
    tail -n 40 "$work/server.log" >&2
    exit 1
  fi
}
# The device token lives 5 minutes: its run comes first. A signed-in caller does not fuzz its
# own logout (that would sign it out for the rest of its run); the anonymous run covers it.
keep=(--exclude-path /api/auth/logout/)
run device -H "Authorization: Bearer $device" "${keep[@]}"
run anonymous
run viewer -H "Authorization: Bearer $viewer" "${keep[@]}"
run analyst -H "Authorization: Bearer $(login ann)" "${keep[@]}"
run legal -H "Authorization: Bearer $(login lee)" "${keep[@]}"
run admin -H "Authorization: Bearer $(login ada)" "${keep[@]}"
run crawler -H "X-API-Key: $api_key"

if grep -q "panicked" "$work/server.log"; then
  echo "the server log has a panic:" >&2
  grep -B2 -A10 "panicked" "$work/server.log" >&2
  exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "schemathesis found failures as: ${failed[*]} (logs in $OUT/)" >&2
  exit 1
fi
log "schemathesis: every caller, no failure"
