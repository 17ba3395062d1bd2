#!/usr/bin/env bash
# Runs leaktrace on this machine: installs missing system packages, builds a release binary,
# migrates the database (SQLite in ./data unless DATABASE_URL says otherwise), creates an
# admin account and packages the bundled sample on the first run, and serves on
# 127.0.0.1:8080 until interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

ensure_rust
ensure_packages "${BUILD_PACKAGES[@]}"

log "building leaktrace (release; the first build takes several minutes)"
cargo build --release --locked --bin leaktrace
BIN=target/release/leaktrace
export LEAKTRACE_DATA_DIR="${LEAKTRACE_DATA_DIR:-data}"
BIND="${LEAKTRACE_BIND:-127.0.0.1:8080}"

"$BIN" migrate

creds="$LEAKTRACE_DATA_DIR/demo-credentials.txt"
if [ ! -f "$creds" ]; then
  password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 20)
  if printf '%s\n' "$password" | "$BIN" user add admin --role admin --password-stdin; then
    (umask 077 && printf 'admin\t%s\n' "$password" >"$creds")
  else
    log "an 'admin' user already exists; keeping it"
  fi
fi

# The bundled sample, packaged once (a taken title is refused before any work).
if ! out=$("$BIN" package samples/bigbuckbunny.mp4 --title "Big Buck Bunny" 2>&1); then
  if ! grep -q "already exists" <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "packaging the sample failed"
  fi
else
  printf '%s\n' "$out" | grep -v INFO || true
fi

cat <<INFO

  leaktrace is starting on http://$BIND/   (health: http://$BIND/healthz)
  Admin account: 'admin', its password is in $creds (owner-only file).
  Pages: /watch/ (viewer; admins may watch too), /analyst/, /legal/, /admin/ (users, keys,
  packaging, security events). Add users there or with:
               $BIN user add NAME --role viewer|analyst|legal|admin --password-stdin
  Crawler key: $BIN apikey create NAME
  Stop with Ctrl-C.

INFO
exec "$BIN" serve --bind "$BIND"
