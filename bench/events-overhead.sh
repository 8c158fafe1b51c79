#!/usr/bin/env bash
# The cost of recording events on the gateway: requests/s with the event
# store on against the same gateway with it off, side by side in one run.
#
# Two workloads:
#  * benign: small GETs that pass every layer; each request is counted in
#    its site's one-second traffic sample and leaves no event of its own.
#  * flood: one client far over its rate limit, so that every answer is a
#    429 or a ban and the limit answers are events of their own (the worst
#    case for the recorder: one event per request, more than the writer's
#    queue can take, so the overflow is counted and dropped).
# The WAF and leak guard are off in both so that the difference is the
# recorder. nginx serves the upstream page and is measured directly as the
# reference. Target: on >= 0.95x off.
#
# Usage: bench/events-overhead.sh [workers] [connections] [seconds] [rounds]
set -euo pipefail
workers=${1:-1}
connections=${2:-50}
seconds=${3:-10}
rounds=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"
chmod 755 "$work"
for tool in wrk python3 curl; do command -v $tool >/dev/null || { echo "bench: $tool is missing"; exit 2; }; done
up=$(free_port)
mkdir -p "$work/www"
printf 'hello from the origin\n' > "$work/www/index.html"
chmod -R a+rX "$work/www"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; default_type text/html;
  server { listen 127.0.0.1:$up; root $work/www; location / { index index.html; } } }
CONF
"$nginx" -c "$work/nginx.conf" -p "$work" -g 'daemon off;' 2>/dev/null & pids+=($!)

# One gateway pair per workload, from configuration files that differ only
# in `[incidents] record`. The flood workload's limit is 20 requests/s for
# the one client, with bans out of reach so that every refused request stays
# a 429 with an event of its own (a ban would answer 403 without one).
start_pair() { # $1 = workload; sets off, on and admin (the "on" gateway's admin port)
  local admin_off admin_on
  off=$(free_port); on=$(free_port); admin_off=$(free_port); admin_on=$(free_port)
  local flood=""
  if [ "$1" = flood ]; then
    flood='[flood]
[flood.bans]
limit_strikes = { requests = 100000000, per = "1s", burst = 100000000 }
[[flood.sites]]
name = "www"
client = { requests = 20, per = "1s", burst = 20 }'
  fi
  for side in off on; do
    local port=$off side_admin=$admin_off record=false
    [ $side = on ] && { port=$on; side_admin=$admin_on; record=true; }
    cat > "$work/$1-$side.toml" <<CONF
[server]
threads = $workers
admin_listen = "127.0.0.1:$side_admin"
access_log = "off"

[[listener]]
address = "127.0.0.1:$port"

[[upstream]]
name = "origin"
servers = ["127.0.0.1:$up"]

[[site]]
name = "www"
hosts = ["*"]
upstream = "origin"

[incidents]
record = $record
${EVENTS_EXTRA:-}

$flood
CONF
    "$rampart" serve --config "$work/$1-$side.toml" --leak-guard off 2>>"$work/$side.err" & pids+=($!)
  done
  for port in $off $on; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  done
  admin=$admin_on
}

measure() {
  wrk -t1 -c"$connections" -d2s "http://127.0.0.1:$1/" >/dev/null 2>&1
  out=$(wrk -t1 -c"$connections" -d"${seconds}s" "http://127.0.0.1:$1/")
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

echo "$workers worker thread(s), $connections connections, ${seconds}s x $rounds round(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %12s %12s %12s %8s   %s\n' "workload" "nginx" "events off" "events on" "on/off" "events recorded / dropped"
for workload in benign flood; do
  # Called in this shell (not a subshell) so that its gateways are in
  # `pids` and stopped on exit.
  start_pair $workload
  : > "$work/n.txt"; : > "$work/a.txt"; : > "$work/b.txt"
  for r in $(seq "$rounds"); do
    measure $up >> "$work/n.txt"
    measure $off >> "$work/a.txt"
    measure $on >> "$work/b.txt"
  done
  n=$(median < "$work/n.txt"); a=$(median < "$work/a.txt"); b=$(median < "$work/b.txt")
  recorded=$(metric $admin rampart_events_recorded_total); dropped=$(metric $admin rampart_events_dropped_total)
  awk -v w="$workload" -v n="$n" -v a="$a" -v b="$b" -v r="${recorded:-?}" -v d="${dropped:-?}" \
    'BEGIN { printf "%-10s %12.0f %12.0f %12.0f %7.2fx   %s / %s\n", w, n, a, b, b/a, r, d }'
done
echo "target: events on >= 0.95x events off"
