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

# Starts a one-node Garage on free loopback ports with its files in DIR, one bucket
# `leaktrace` and one key allowed on it; exports GARAGE_PID, GARAGE_ENDPOINT, GARAGE_KEY_ID and
# GARAGE_SECRET (the caller stops it: kill "$GARAGE_PID"). Needs ensure_garage first.
start_garage() { # DIR
  local dir=$1 s3 rpc secret node key i
  mkdir -p "$dir"
  s3=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rpc=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  secret=$(openssl rand -hex 32)
  cat >"$dir/garage.toml" <<CONF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
CONF
  "$LEAKTRACE_GARAGE" -c "$dir/garage.toml" server >"$dir/garage.log" 2>&1 &
  GARAGE_PID=$!
  local g=("$LEAKTRACE_GARAGE" -c "$dir/garage.toml")
  for i in $(seq 300); do
    node=$("${g[@]}" node id -q 2>/dev/null | cut -d@ -f1) && [ -n "$node" ] && break
    [ "$i" = 300 ] && { log "Garage did not start: see $dir/garage.log"; return 1; }
    sleep 0.1
  done
  # `node id` reads the key file, which exists before the RPC listens: wait for the RPC.
  for i in $(seq 300); do
    "${g[@]}" status >/dev/null 2>&1 && break
    [ "$i" = 300 ] && { log "Garage's RPC did not come up: see $dir/garage.log"; return 1; }
    sleep 0.1
  done
  "${g[@]}" layout assign -z dc1 -c 1G "$node" >/dev/null
  "${g[@]}" layout apply --version 1 >/dev/null
  "${g[@]}" bucket create leaktrace >/dev/null
  key=$("${g[@]}" key create leaktrace)
  "${g[@]}" bucket allow --read --write --owner leaktrace --key leaktrace >/dev/null
  GARAGE_ENDPOINT="http://127.0.0.1:$s3"
  GARAGE_KEY_ID=$(sed -n 's/^Key ID: *//p' <<<"$key")
  GARAGE_SECRET=$(sed -n 's/^Secret key: *//p' <<<"$key")
  export GARAGE_PID GARAGE_ENDPOINT GARAGE_KEY_ID GARAGE_SECRET
}
