# A throwaway PostgreSQL for the test suite (sourced by scripts/test.sh).
# start_postgres sets PG_ADMIN_URL; stop_postgres is safe to call at any time.

PG_DIR=""
PG_BIN=""

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
  PG_DIR=$(mktemp -d /tmp/leaktrace-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" --username=postgres --auth=trust --no-locale -N >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  local port tries=0
  while :; do
    port=$(( 20000 + RANDOM % 40000 ))
    tries=$((tries + 1))
    port_is_free "$port" || continue
    if as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
         -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 -c synchronous_commit=off -c full_page_writes=off" \
         start >/dev/null; then
      break
    fi
    [ $tries -lt 5 ] || { cat "$PG_DIR/server.log" >&2; die "cannot start PostgreSQL"; }
  done
  PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
  log "PostgreSQL $(basename "$(dirname "$PG_BIN")") running on 127.0.0.1:$port"
}

stop_postgres() {
  if [ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  PG_DIR=""
}
