#!/usr/bin/env bash
# Segment delivery under load, side by side in one run on this machine:
#   - leaktrace: every request authenticated (device JWT + user + session + device binding),
#     paced, counted and encrypted with AES-256-GCM under the session's CEK; titles in the data
#     dir (folder) and then in an S3 bucket (a local Garage) read through a warm local cache;
#   - nginx: the same plain segment bytes as static files, sendfile on, no authentication;
#   - the CPU's AES-256-GCM ceiling (openssl speed) as the physical limit;
#   - per-request overhead: one connection on the status endpoint (token check + session
#     lookup) and on /readyz.
# Fair on a 2-core machine: the server (leaktrace or nginx, every thread) is pinned to core 0
# and wrk to core 1 (taskset), so the load generator never takes the server's CPU. Server CPU
# time per segment is read from /proc before and after each run. With PROFILE=1 (default) a
# perf profile (cpu-clock samples, call graphs) of leaktrace at 200 connections is summarised.
# Usage: scripts/bench-delivery.sh [SECONDS=15]
#   CONNECTIONS="50 200 500"  BACKENDS="folder s3"  PROFILE=1  PERF_OUT=FILE (keeps perf.data)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/bench.sh
. scripts/lib/garage.sh

SECONDS_RUN=${1:-15}
CONN_LIST=${CONNECTIONS:-"50 200 500"}
BACKENDS=${BACKENDS:-"folder s3"}
PROFILE=${PROFILE:-1}
ensure_packages wrk nginx-light >&2
[ "$PROFILE" = 1 ] && ensure_packages linux-perf >&2
if [ "$(nproc)" -ge 2 ]; then SERVER_CPU=0 LOAD_CPU=1; else SERVER_CPU=0 LOAD_CPU=0; fi
MAX_CONNS=$(tr ' ' '\n' <<<"$CONN_LIST" | sort -n | tail -1)
BIN=$(release_binary)
cargo build --release --locked --example open_sessions >&2
OPEN="$PWD/target/release/examples/open_sessions"
WORK=$(mktemp -d /tmp/leaktrace-delivery.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# A title: the bundled sample (1280x720, 1-second units).
DATA="$WORK/data"
lt() { "$BIN" --log-level warn --data-dir "$DATA" "$@"; }
lt migrate >/dev/null
printf 'bench password\n' | lt user add bench --role viewer --password-stdin >/dev/null
VIDEO=$(lt package samples/bigbuckbunny.mp4 --title bench --ladder none --json | sed -n 's/.*"video_id":"\([^"]*\)".*/\1/p')
UNITS=$(ls "$DATA/videos/$VIDEO/video/a" | wc -l)
SEG_BYTES=$(( $(cat "$DATA"/videos/"$VIDEO"/video/a/*.m4s | wc -c) / UNITS ))

# CPU seconds (user + system, every thread) of the processes PIDS..., from /proc.
cpu_seconds() {
  local total=0 p t
  for p in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat")
    total=$((total + t))
  done
  python3 -c "print($total / $(getconf CLK_TCK))"
}

cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("RESULT %d %.0f %.1f %.3f %.3f %d %d\n", summary.requests, summary.requests / s,
    summary.bytes / s / 1048576, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
# Connection i requests the units of session i in turn (leaktrace) or the same files (nginx).
write_leaktrace_lua() { # SESSIONS_FILE OUT
  cat >"$2" <<LUA
local sessions = {}
for line in io.lines("$1") do
  local id, token = line:match("(%S+) (%S+)")
  sessions[#sessions + 1] = {id = id, token = token}
end
local n = 0
local counter = 0
function setup(thread) thread:set("offset", counter); counter = counter + 1 end
request = function()
  n = n + 1
  local s = sessions[((n * 7 + offset) % #sessions) + 1]
  local unit = (n % $UNITS) + 1
  return wrk.format("GET", "/api/video/stream/" .. s.id .. "/" .. unit .. "/",
    {["Authorization"] = "Bearer " .. s.token})
end
LUA
  cat "$WORK/report.lua" >>"$2"
}
cat >"$WORK/nginx.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/seg/" .. ((n % $UNITS) + 1) .. ".m4s")
end
LUA
cat "$WORK/report.lua" >>"$WORK/nginx.lua"

# One wrk run pinned to the load core; prints "requests rps MiB/s p50 p99 non2xx errors cpu_us"
# where cpu_us is the server's CPU time per request.
run_wrk() { # URL SCRIPT CONNECTIONS SERVER_PID...
  local url=$1 script=$2 conns=$3 before after out
  shift 3
  before=$(cpu_seconds "$@")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${SECONDS_RUN}s" --latency -s "$script" "$url" | sed -n 's/^RESULT //p')
  after=$(cpu_seconds "$@")
  read -r reqs rest <<<"$out"
  echo "$reqs $rest $(python3 -c "print(f'{($after - $before) * 1e6 / max($reqs, 1):.0f}')")"
}

# leaktrace on the server core, with limits that let a load generator through (monitoring
# stays on: the pace reservation and the activity count run on every request).
start_leaktrace() { # PORT [ENV...]
  local port=$1
  shift
  env LEAKTRACE_MAX_CONCURRENT_SESSIONS=100000 LEAKTRACE_RIPPING_BURST_SECONDS=1e12 "$@" \
    taskset -c "$SERVER_CPU" "$BIN" --log-level warn --data-dir "$DATA" serve --bind "127.0.0.1:$port" >/dev/null &
  LT_PID=$!
  PIDS+=("$LT_PID")
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.1; done
  log "leaktrace did not start"
  return 1
}

# One session's video units fetched in turn over one connection: "mean_ms max_ms".
fetch_pass() { # PORT SESSION TOKEN
  local args=() k
  for k in $(seq 1 "$UNITS"); do args+=(-o /dev/null "http://127.0.0.1:$1/api/video/stream/$2/$k/"); done
  taskset -c "$LOAD_CPU" curl -fsS -H "Authorization: Bearer $3" -w '%{time_total}\n' "${args[@]}" |
    python3 -c 'import sys; t=[float(x)*1000 for x in sys.stdin.read().split()]; print(f"{sum(t)/len(t):.2f} {max(t):.2f}")'
}

declare -A ROWS
PROFILE_TEXT=""
bench_leaktrace() { # BACKEND [ENV...]
  local backend=$1 port sessions conns
  shift
  port=$(free_port)
  start_leaktrace "$port" "$@"
  sessions="$WORK/sessions-$backend.txt"
  taskset -c "$LOAD_CPU" "$OPEN" "http://127.0.0.1:$port" bench "bench password" "$MAX_CONNS" "$VIDEO" >"$sessions"
  write_leaktrace_lua "$sessions" "$WORK/leaktrace-$backend.lua"
  # First fetches: one session's units in turn, each the first time this server serves it
  # (from the bucket, or from the data dir), then again (from memory).
  read -r sid token < <(head -1 "$sessions")
  ROWS["first $backend"]=$(fetch_pass "$port" "$sid" "$token")
  ROWS["again $backend"]=$(fetch_pass "$port" "$sid" "$token")
  if [ "$backend" = s3 ]; then
    # Warm the cache: every unit of both variants fetched once from the bucket.
    log "warming the local cache from the bucket"
    SECONDS_RUN=5 run_wrk "http://127.0.0.1:$port" "$WORK/leaktrace-$backend.lua" 50 "$LT_PID" >/dev/null
  fi
  for conns in $CONN_LIST; do
    log "wrk: leaktrace ($backend), $conns connections, ${SECONDS_RUN}s"
    ROWS["$backend $conns"]=$(run_wrk "http://127.0.0.1:$port" "$WORK/leaktrace-$backend.lua" "$conns" "$LT_PID")
  done
  if [ "$backend" = folder ]; then
    read -r sid token < <(head -1 "$sessions")
    cat >"$WORK/status.lua" <<LUA
request = function()
  return wrk.format("GET", "/api/security/status/$sid/", {["Authorization"] = "Bearer $token"})
end
LUA
    cat "$WORK/report.lua" >>"$WORK/status.lua"
    printf 'request = function() return wrk.format("GET", "/readyz") end\n' >"$WORK/ready.lua"
    cat "$WORK/report.lua" >>"$WORK/ready.lua"
    log "wrk: per-request overhead, 1 connection"
    ROWS[status]=$(run_wrk "http://127.0.0.1:$port" "$WORK/status.lua" 1 "$LT_PID")
    ROWS[ready]=$(run_wrk "http://127.0.0.1:$port" "$WORK/ready.lua" 1 "$LT_PID")
    if [ "$PROFILE" = 1 ]; then
      log "perf: leaktrace at 200 connections"
      perf record -e cpu-clock -F 999 -g -p "$LT_PID" -o "$WORK/perf.data" -- sleep "$SECONDS_RUN" >/dev/null 2>&1 &
      local perf_pid=$!
      run_wrk "http://127.0.0.1:$port" "$WORK/leaktrace-$backend.lua" 200 "$LT_PID" >/dev/null
      wait "$perf_pid" || true
      [ -n "${PERF_OUT:-}" ] && cp "$WORK/perf.data" "$PERF_OUT"
      local report=(perf report -i "$WORK/perf.data" --stdio --no-children -g none)
      PROFILE_TEXT=$(
        echo "by library:"
        "${report[@]}" --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/^ *//; s/  */ /g'
        echo
        echo "by symbol (>= 1 %):"
        "${report[@]}" --sort dso,symbol --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' |
          head -20 | sed 's/^ *//; s/  */ /g; s/ - - *$//' | cut -c1-120
      )
    fi
  fi
  kill "$LT_PID"
  wait "$LT_PID" 2>/dev/null || true
}

for backend in $BACKENDS; do
  case $backend in
    folder) bench_leaktrace folder ;;
    s3)
      ensure_garage
      start_garage "$WORK/garage"
      PIDS+=("$GARAGE_PID")
      S3_ENV=(LEAKTRACE_STORAGE_URL=s3://leaktrace/bench LEAKTRACE_STORAGE_ENDPOINT="$GARAGE_ENDPOINT"
        LEAKTRACE_STORAGE_REGION=garage AWS_ACCESS_KEY_ID="$GARAGE_KEY_ID" AWS_SECRET_ACCESS_KEY="$GARAGE_SECRET")
      taskset -p -c "$LOAD_CPU" "$GARAGE_PID" >/dev/null
      env "${S3_ENV[@]}" "$BIN" --log-level warn --data-dir "$DATA" storage migrate >/dev/null
      # This machine keeps nothing of the title but what it fetches again.
      rm -rf "$DATA/videos/$VIDEO"
      bench_leaktrace s3 "${S3_ENV[@]}"
      ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
done

# nginx on the server core (one worker: one core), the same bytes (variant A) as static files.
NG_PORT=$(free_port)
mkdir -p "$WORK/www/seg" "$WORK/nginx"
if [ -d "$DATA/videos/$VIDEO/video/a" ]; then
  cp "$DATA"/videos/"$VIDEO"/video/a/*.m4s "$WORK/www/seg/"
else
  lt package samples/bigbuckbunny.mp4 --title bench-nginx --ladder none --json >"$WORK/nginx-title.json"
  cp "$DATA"/videos/"$(sed -n 's/.*"video_id":"\([^"]*\)".*/\1/p' "$WORK/nginx-title.json")"/video/a/*.m4s "$WORK/www/seg/"
fi
chmod 755 "$WORK" && chmod -R a+rX "$WORK/www"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
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
taskset -c "$SERVER_CPU" nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
sleep 0.5
NG_MASTER=$(cat "$WORK/nginx/nginx.pid")
PIDS+=("$NG_MASTER")
NG_PIDS=("$NG_MASTER" $(pgrep -P "$NG_MASTER"))
for conns in $CONN_LIST; do
  log "wrk: nginx, $conns connections, ${SECONDS_RUN}s"
  ROWS["nginx $conns"]=$(run_wrk "http://127.0.0.1:$NG_PORT" "$WORK/nginx.lua" "$conns" "${NG_PIDS[@]}")
done

# The AES-256-GCM ceiling of this CPU, 16 KiB blocks, one core.
aes=$(openssl speed -evp aes-256-gcm -seconds 3 -bytes 16384 2>/dev/null | awk '/^AES-256-GCM|^aes-256-gcm/ {print $NF}' | tail -1)
aes_mbs=$(python3 -c "v='$aes'.rstrip('k'); print(f'{float(v)*1000/1048576:.0f}')")

echo "Segment delivery, ${SECONDS_RUN} s per run, mean segment $((SEG_BYTES / 1024)) KiB, server pinned to core $SERVER_CPU, wrk (1 thread) to core $LOAD_CPU; connection i fetches the units of session i"
echo
echo "| server | connections | requests/s | MiB/s | p50 ms | p99 ms | server CPU µs/segment | non-2xx | socket errors | MiB/s vs nginx | p99 vs nginx |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for conns in $CONN_LIST; do
  read -r _ ng_rps ng_mbs ng_p50 ng_p99 ng_bad ng_err ng_cpu <<<"${ROWS["nginx $conns"]}"
  for backend in $BACKENDS; do
    read -r _ rps mbs p50 p99 bad err cpu <<<"${ROWS["$backend $conns"]}"
    ratio=$(python3 -c "print(f'{$mbs/$ng_mbs:.2f}')")
    pratio=$(python3 -c "print(f'{$p99/max($ng_p99, 1e-9):.1f}')")
    echo "| leaktrace, titles in $backend | $conns | $rps | $mbs | $p50 | $p99 | $cpu | $bad | $err | **$ratio** | $pratio |"
  done
  echo "| nginx, static files, sendfile | $conns | $ng_rps | $ng_mbs | $ng_p50 | $ng_p99 | $ng_cpu | $ng_bad | $ng_err | 1 | 1 |"
done
echo
echo "| first fetches, one session's $UNITS units in turn, one connection | mean ms | max ms |"
echo "|---|---|---|"
for backend in $BACKENDS; do
  read -r f_mean f_max <<<"${ROWS["first $backend"]}"
  read -r a_mean a_max <<<"${ROWS["again $backend"]}"
  where=$([ "$backend" = s3 ] && echo "from the bucket (one GET, then the data dir)" || echo "from the data dir")
  echo "| titles in $backend: first time, $where | $f_mean | $f_max |"
  echo "| titles in $backend: again, from memory | $a_mean | $a_max |"
done
echo
echo "AES-256-GCM ceiling (openssl speed -evp aes-256-gcm, 16 KiB blocks, one core): $aes_mbs MiB/s"
if [ -n "${ROWS[status]:-}" ]; then
  read -r _ st_rps _ st_p50 st_p99 _ _ st_cpu <<<"${ROWS[status]}"
  read -r _ rd_rps _ rd_p50 rd_p99 _ _ rd_cpu <<<"${ROWS[ready]}"
  echo
  echo "| one connection | requests/s | p50 ms | p99 ms | server CPU µs/request |"
  echo "|---|---|---|---|---|"
  echo "| GET /api/security/status/{id}/ (token + user + session checks) | $st_rps | $st_p50 | $st_p99 | $st_cpu |"
  echo "| GET /readyz (HTTP + one database ping + one storage check) | $rd_rps | $rd_p50 | $rd_p99 | $rd_cpu |"
fi
if [ -n "$PROFILE_TEXT" ]; then
  echo
  echo "leaktrace at 200 connections, titles in folder: perf cpu-clock samples by library and symbol (>= 1.5 %)"
  echo
  echo '```'
  echo "$PROFILE_TEXT"
  echo '```'
fi
