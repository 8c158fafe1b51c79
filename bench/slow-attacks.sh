#!/usr/bin/env bash
# Slow-attack benchmark (issue 5): Debian's slowhttptest with 4,000
# connections in slowloris (-H), slow-body (-B) and slow-read (-X) modes,
# against rampart and against nginx, each with default settings, in front of
# the same demo origin. Meanwhile a probe client (curl from another loopback
# address, once a second, 3 s timeout) asks for the home page; the table
# shows how many probes were served, per mode, for each. A benchmark, not a
# test: it never fails on a figure.
#
# slowhttptest opens all its connections from 127.0.0.1; the probe comes
# from 127.0.0.2, so a per-address connection cap (rampart's default is 256)
# limits the attacker without touching the probe. That is the case of one
# attacking machine; a botnet's slow connections from many addresses meet
# the global caps instead.
#
# Usage: bench/slow-attacks.sh [seconds per run] [connections]
# Env:   CARGO_TARGET_DIR, MODES (default "slowloris slow-body slow-read"),
#        TARGETS (default "rampart nginx").
# Needs: slowhttptest and nginx (scripts/setup), a release build of rampart.
set -euo pipefail
seconds=${1:-60}
connections=${2:-4000}
modes=${MODES:-slowloris slow-body slow-read}
targets=${TARGETS:-rampart nginx}
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in slowhttptest curl; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing (scripts/setup)"; exit 2; }
done
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

origin_port=$(free_port); rampart_port=$(free_port); admin_port=$(free_port); nginx_port=$(free_port)

"$rampart" demo-origin --listen "127.0.0.1:$origin_port" >/dev/null &
pids+=($!)
wait_port "$origin_port"

# nginx as a reverse proxy with Debian's defaults (worker_processes auto,
# worker_connections 768, default timeouts, proxy buffering on).
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log crit;
events { worker_connections 768; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://127.0.0.1:$origin_port; }
  }
}
CONF

start_target() { # name -> sets target_pid, target_port
  case $1 in
    rampart)
      # Defaults: `rampart serve --upstream`, with the access log off so that
      # 4,000 connections' worth of log lines do not fill the disk.
      HOME="$work" "$rampart" serve --upstream "127.0.0.1:$origin_port" --listen "127.0.0.1:$rampart_port" \
        --admin "127.0.0.1:$admin_port" --access-log off > /dev/null 2> "$work/rampart.err" &
      target_pid=$!; target_port=$rampart_port ;;
    nginx)
      $nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' 2>/dev/null &
      target_pid=$!; target_port=$nginx_port ;;
  esac
  pids+=($target_pid)
  wait_port "$target_port"
}

attack_args() { # mode port
  local url="http://127.0.0.1:$2"
  case $1 in
    slowloris) echo "-H -c $connections -r 400 -i 10 -x 24 -l $seconds -t GET -u $url/" ;;
    slow-body) echo "-B -c $connections -r 400 -i 10 -x 10 -s 65536 -l $seconds -t POST -u $url/donate" ;;
    # A 1 MiB page read through a tiny window: the response cannot fit in
    # the socket buffers, so the server must hold it.
    slow-read) echo "-X -c $connections -r 400 -w 512 -y 1024 -n 5 -z 32 -k 1 -l $seconds -u $url/big?kb=1024" ;;
  esac
}

run() { # mode target -> "served total peak-connections how-the-attack-ended"
  start_target "$2"
  # shellcheck disable=SC2046
  slowhttptest $(attack_args "$1" "$target_port") -p 3 > "$work/$1-$2.slowhttptest.log" 2>&1 &
  local attack=$!
  local served=0 total=0 end
  # Probe for the whole run even when slowhttptest gives up early (it stops
  # once the target has closed every one of its connections).
  end=$(( $(date +%s) + seconds ))
  sleep 1
  while [ "$(date +%s)" -lt "$end" ]; do
    local t0 code took
    t0=$(date +%s.%N)
    read -r code took < <(curl --interface 127.0.0.2 -s -o /dev/null -w '%{http_code} %{time_total}\n' -m 3 "http://127.0.0.1:$target_port/" || true)
    total=$((total + 1))
    [ "$code" = 200 ] && served=$((served + 1))
    # One line per probe: second of the run, status (000: none), seconds.
    echo "$total ${code:-000} ${took:-3}" >> "$work/$1-$2.probes"
    sleep "$(python3 -c "import time; print(max(0.0, 1.0 - (time.time() - $t0)))")"
  done
  kill "$attack" 2>/dev/null || true
  wait "$attack" 2>/dev/null || true
  # slowhttptest's status lines are coloured; the peak of "connected" is
  # how many slow connections the target held at once.
  local log open ended
  log=$(sed 's/\x1b\[[0-9;]*m//g' "$work/$1-$2.slowhttptest.log")
  open=$(echo "$log" | grep -Eo 'connected: *[0-9]+' | awk '{print $2}' | sort -n | tail -1 || true)
  ended=$(echo "$log" | sed -n 's/^Exit status: *//p' | tail -1 | tr ' ' '-')
  kill "$target_pid" 2>/dev/null || true; wait "$target_pid" 2>/dev/null || true
  echo "$served $total ${open:-?} ${ended:-ran-the-whole-time}"
}

# The per-second timeline of one row's probes: one mark a second ("."
# served within 0.5 s, "s" served slower, "X" not served within 3 s), then
# every probe that was not served at once, as second:status:seconds.
timeline() { # probes-file
  awk '{ m = ($2 != 200) ? "X" : ($3 >= 0.5 ? "s" : ".")
         line = line m
         if (m != ".") late = late sprintf(" %d:%s:%.2f", $1, $2, $3) }
       END { printf "           per second: %s\n", line
             if (late != "") printf "           not at once:%s\n", late }' "$1"
}

echo "slow attacks: $connections connections per run, ${seconds}s per run, probe once a second from 127.0.0.2"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), open files $(ulimit -n)"
printf '%-10s %-8s %16s %20s   %s\n' mode target "probes served" "attack conns (peak)" "how slowhttptest ended"
for mode in $modes; do
  for target in $targets; do
    read -r served total open ended < <(run "$mode" "$target")
    printf '%-10s %-8s %10s / %-4s %20s   %s\n' "$mode" "$target" "$served" "$total" "$open" "${ended//-/ }"
    timeline "$work/$mode-$target.probes"
    sleep 2
  done
done
