#!/usr/bin/env bash
# Segment delivery under load, side by side in one run on this machine:
#   - leaktrace: every request authenticated (device JWT + user + session + device binding),
#     paced, counted in the database and encrypted with AES-256-GCM under the session's CEK;
#   - nginx: the same plain segment bytes as static files, sendfile on, no authentication;
#   - the CPU's AES-256-GCM ceiling (openssl speed) as the physical limit;
#   - per-request overhead: one connection on the status endpoint (token check + session
#     lookup) and on a segment request, p50/p99.
# wrk (Debian package) drives both with CONNECTIONS connections spread over as many sessions.
# Usage: scripts/bench-delivery.sh [SECONDS=20] [CONNECTIONS=200]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh

SECONDS_RUN=${1:-20}
CONNS=${2:-200}
ensure_packages wrk nginx-light
BIN=$(release_binary)
cargo build --release --locked --example open_sessions >&2
OPEN="$PWD/target/release/examples/open_sessions"
WORK=$(mktemp -d /tmp/leaktrace-delivery.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A title: the bundled sample (1280x720, 1-second units).
DATA="$WORK/data"
"$BIN" --log-level warn --data-dir "$DATA" migrate >/dev/null
printf 'bench password\n' | "$BIN" --log-level warn --data-dir "$DATA" user add bench --role viewer --password-stdin >/dev/null
VIDEO=$("$BIN" --log-level warn --data-dir "$DATA" package samples/bigbuckbunny.mp4 --title bench --json |
  sed -n 's/.*"video_id":"\([^"]*\)".*/\1/p')
UNITS=$(ls "$DATA/videos/$VIDEO/video/a" | wc -l)
SEG_BYTES=$(( $(cat "$DATA"/videos/"$VIDEO"/video/a/*.m4s | wc -c) / UNITS ))

# leaktrace, with limits that let a load generator through (monitoring stays on: the pace
# check and the activity update run on every request).
LT_PORT=$(free_port)
LEAKTRACE_MAX_CONCURRENT_SESSIONS=100000 LEAKTRACE_RIPPING_BURST_SECONDS=1e12 \
  "$BIN" --log-level warn --data-dir "$DATA" serve --bind "127.0.0.1:$LT_PORT" >/dev/null &
PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$LT_PORT/healthz" >/dev/null && break; sleep 0.1; done
"$OPEN" "http://127.0.0.1:$LT_PORT" bench "bench password" "$CONNS" "$VIDEO" >"$WORK/sessions.txt"

# nginx: the same bytes (variant A) as static files.
NG_PORT=$(free_port)
mkdir -p "$WORK/www/seg" "$WORK/nginx"
cp "$DATA"/videos/"$VIDEO"/video/a/*.m4s "$WORK/www/seg/"
# nginx's workers drop root: let them read the files.
chmod 755 "$WORK" && chmod -R a+rX "$WORK/www"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 127.0.0.1:$NG_PORT; root $WORK/www; default_type application/octet-stream; }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
PIDS+=("$(cat "$WORK/nginx/nginx.pid")")

# wrk scripts: connection i requests the units of session i in turn.
cat >"$WORK/leaktrace.lua" <<LUA
local sessions = {}
for line in io.lines("$WORK/sessions.txt") do
  local id, token = line:match("(%S+) (%S+)")
  sessions[#sessions + 1] = {id = id, token = token}
end
local counter = 0
function setup(thread) thread:set("offset", counter); counter = counter + 1 end
local n = 0
request = function()
  n = n + 1
  local s = sessions[((n * 7 + offset) % #sessions) + 1]
  local unit = (n % $UNITS) + 1
  return wrk.format("GET", "/api/video/stream/" .. s.id .. "/" .. unit .. "/",
    {["Authorization"] = "Bearer " .. s.token})
end
LUA
cat >"$WORK/nginx.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/seg/" .. ((n % $UNITS) + 1) .. ".m4s")
end
LUA
cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("RESULT %.0f %.1f %.3f %.3f %d %d\n", summary.requests / s,
    summary.bytes / s / 1048576, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
cat "$WORK/report.lua" >>"$WORK/leaktrace.lua"
cat "$WORK/report.lua" >>"$WORK/nginx.lua"

run_wrk() { # URL SCRIPT CONNECTIONS
  local threads=$(( $3 < 2 ? $3 : 2 ))
  wrk -t"$threads" -c"$3" -d"${SECONDS_RUN}s" --latency -s "$2" "$1" | sed -n 's/^RESULT //p'
}
log "wrk: leaktrace, $CONNS connections, ${SECONDS_RUN}s"
read -r lt_rps lt_mbs lt_p50 lt_p99 lt_bad lt_err <<<"$(run_wrk "http://127.0.0.1:$LT_PORT" "$WORK/leaktrace.lua" "$CONNS")"
log "wrk: nginx, $CONNS connections, ${SECONDS_RUN}s"
read -r ng_rps ng_mbs ng_p50 ng_p99 ng_bad ng_err <<<"$(run_wrk "http://127.0.0.1:$NG_PORT" "$WORK/nginx.lua" "$CONNS")"

# Per-request overhead: one connection, one session.
read -r sid token < <(head -1 "$WORK/sessions.txt")
cat >"$WORK/status.lua" <<LUA
request = function()
  return wrk.format("GET", "/api/security/status/$sid/", {["Authorization"] = "Bearer $token"})
end
LUA
cat "$WORK/report.lua" >>"$WORK/status.lua"
cat >"$WORK/health.lua" <<LUA
request = function() return wrk.format("GET", "/readyz") end
LUA
cat "$WORK/report.lua" >>"$WORK/health.lua"
log "wrk: per-request overhead, 1 connection"
read -r st_rps _ st_p50 st_p99 _ _ <<<"$(run_wrk "http://127.0.0.1:$LT_PORT" "$WORK/status.lua" 1)"
read -r hz_rps _ hz_p50 hz_p99 _ _ <<<"$(run_wrk "http://127.0.0.1:$LT_PORT" "$WORK/health.lua" 1)"

# The AES-256-GCM ceiling of this CPU, 16 KiB blocks, one core.
aes=$(openssl speed -evp aes-256-gcm -seconds 3 -bytes 16384 2>/dev/null | awk '/^AES-256-GCM|^aes-256-gcm/ {print $NF}' | tail -1)
aes_mbs=$(python3 -c "v='$aes'.rstrip('k'); print(f'{float(v)*1000/1048576:.0f}')")

ratio=$(python3 -c "print(f'{$lt_mbs/$ng_mbs:.2f}')")
echo "Segment delivery, $CONNS connections over $CONNS sessions, ${SECONDS_RUN} s each, mean segment $((SEG_BYTES / 1024)) KiB, $(nproc) cores (server and wrk share them)"
echo
echo "| server | requests/s | MiB/s | p50 ms | p99 ms | non-2xx | socket errors |"
echo "|---|---|---|---|---|---|---|"
echo "| leaktrace (auth + session + pace + AES-256-GCM per response) | $lt_rps | $lt_mbs | $lt_p50 | $lt_p99 | $lt_bad | $lt_err |"
echo "| nginx 1.x static files, sendfile | $ng_rps | $ng_mbs | $ng_p50 | $ng_p99 | $ng_bad | $ng_err |"
echo "| leaktrace / nginx (MiB/s) | | $ratio | | | | |"
echo
echo "AES-256-GCM ceiling (openssl speed -evp aes-256-gcm, 16 KiB blocks, one core): $aes_mbs MiB/s"
echo
echo "| one connection | requests/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
echo "| GET /api/security/status/{id}/ (token + user + session checks) | $st_rps | $st_p50 | $st_p99 |"
echo "| GET /readyz (HTTP + one database ping + one folder check) | $hz_rps | $hz_p50 | $hz_p99 |"
