#!/usr/bin/env bash
# Flood benchmark (issue 5): the demo site capped at C requests/s behind a
# gateway; `rampart drill` floods at 20 x C from 5,000 distinct loopback
# addresses for 60 s while 50 browser-like visitors use the site. Three rows
# from the same run, in front of the same origin:
#   rampart (auto)  the attack detector must notice the flood by itself
#   rampart (mode)  under-attack mode switched on by hand before the flood
#                   (`rampart mode demo under-attack`, as a campaign would on
#                   election night); visitors clear the challenge in the
#                   warm-up
#   rampart (mode-json)  the same, with the flood sending Accept:
#                   application/json, the header that once skipped the
#                   challenge (not in the default ROWS)
#   nginx           Debian's nginx with limit_req (per address, and one zone
#                   for the whole site at C so the origin is never overrun)
#                   and limit_conn (per address)
# Prints the rows side by side, the ratios rampart/nginx, and which targets
# each row meets. A benchmark, not a test: it never fails on a figure.
#
# Usage: bench/flood-drill.sh [C] [seconds] [attackers] [browsers]
# Env:   CARGO_TARGET_DIR (where rampart is built), WARMUP (browsers-only
#        seconds before the flood, default 15; the detector learns normal
#        traffic from it), ROWS (default "auto mode nginx").
# Needs: nginx (scripts/setup), python3, a release build of rampart.
set -euo pipefail
capacity=${1:-200}
seconds=${2:-60}
attackers=${3:-5000}
browsers=${4:-50}
warmup=${WARMUP:-15}
rows=${ROWS:-auto mode nginx}
rate=$((20 * capacity))
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

origin_port=$(free_port); rampart_port=$(free_port); admin_port=$(free_port); nginx_port=$(free_port)

# The origin: the demo site, capped at C requests/s (503 beyond), counting
# what reaches it per second at /.demo/stats.
"$rampart" demo-origin --listen "127.0.0.1:$origin_port" --capacity "$capacity" >/dev/null &
pids+=($!)
wait_port "$origin_port"

# rampart: the flood shield with the defaults of the README, except a
# detector with 1-second buckets (the default 10 s buckets would take 20 s
# or more to notice; a flood this size needs no long look) and a hardest
# challenge of 18 bits (2^18 hashes, about 0.1 s in a browser), since the
# drill's visitors solve on this same 2-core machine. The whole site is one
# route with a total at the origin's capacity.
cat > "$work/rampart.toml" <<CONF
[server]
admin_listen = "127.0.0.1:$admin_port"
access_log = "off"
threads = 2
key_file = "$work/rampart.keys"

[[listener]]
address = "127.0.0.1:$rampart_port"

[[upstream]]
name = "origin"
servers = ["127.0.0.1:$origin_port"]

[[site]]
name = "demo"
hosts = ["*"]
upstream = "origin"
[[site.route]]
prefix = "/"

[flood]
[flood.challenge]
max_difficulty = 18
[[flood.sites]]
name = "demo"
[flood.sites.detector]
bucket_secs = 1
warmup_buckets = 5
enter_buckets = 1
leave_buckets = 30
# What the origin can take, as nginx's site zone below: 0.9 C per second
# plus a burst of 0.1 C, so no second can bring it more than C. Only
# requests that would reach the origin spend it (challenged ones do not).
[[flood.sites.routes]]
name = "/"
total = { requests = $((capacity * 9 / 10)), per_secs = 1, burst = $((capacity / 10)) }
CONF

# nginx: per-address request and connection limits, as deployed against
# floods, plus one zone for the whole site at C so that the origin is
# never sent more than it can take.
nginx_site_rate=$((capacity * 95 / 100))
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
worker_rlimit_nofile 65536;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log crit;
events { worker_connections 16384; }
http {
  access_log off;
  limit_req_zone \$binary_remote_addr zone=per_address:20m rate=5r/s;
  limit_req_zone \$server_name zone=site:1m rate=${nginx_site_rate}r/s;
  limit_conn_zone \$binary_remote_addr zone=conn_per_address:20m;
  limit_req_status 429;
  limit_conn_status 429;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    server_name demo;
    limit_conn conn_per_address 20;
    limit_req zone=per_address burst=20 nodelay;
    limit_req zone=site burst=10 nodelay;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
    }
  }
}
CONF

drill() { # label port pid [accept] -> JSON in $work/label.json
  "$rampart" drill --json --label "$1" --target "http://127.0.0.1:$2" \
    --attack-accept "${4:-text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8}" \
    --duration "${seconds}s" --warmup "${warmup}s" --attack-rate "$rate" --attackers "$attackers" \
    --browsers "$browsers" --browser-interval 1s --attack-paths /,/donate,/login,/search?q=news \
    --watch-pid "$3" --upstream-stats "http://127.0.0.1:$origin_port/.demo/stats" > "$work/$1.json"
}

start_rampart() {
  "$rampart" serve --config "$work/rampart.toml" > /dev/null 2> "$work/rampart.err" &
  rampart_pid=$!
  pids+=($rampart_pid)
  wait_port "$rampart_port"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

echo "flood drill: origin capped at C = $capacity req/s; attack $rate req/s (20 x C) from $attackers addresses for ${seconds}s after ${warmup}s of browsers only; $browsers browsers, 1 page view/s each"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), open files $(ulimit -n); the drill, the gateway and the origin share it"
done_rows=()
for row in $rows; do
  case $row in
    auto)
      start_rampart
      drill "rampart-auto" "$rampart_port" "$rampart_pid"
      stop "$rampart_pid" ;;
    mode)
      start_rampart
      "$rampart" mode demo under-attack --admin "127.0.0.1:$admin_port" > /dev/null
      drill "rampart-mode" "$rampart_port" "$rampart_pid"
      stop "$rampart_pid" ;;
    mode-json)
      start_rampart
      "$rampart" mode demo under-attack --admin "127.0.0.1:$admin_port" > /dev/null
      drill "rampart-mode-json" "$rampart_port" "$rampart_pid" "application/json"
      stop "$rampart_pid" ;;
    nginx)
      $nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' 2>/dev/null &
      nginx_pid=$!
      pids+=($nginx_pid)
      wait_port "$nginx_port"
      drill "nginx" "$nginx_port" "$nginx_pid"
      stop "$nginx_pid" ;;
    *) echo "bench: unknown row $row (auto, mode, mode-json, nginx)"; exit 2 ;;
  esac
  done_rows+=("$work/$( [ "$row" = nginx ] && echo nginx || echo "rampart-$row").json")
  sleep 2
done

python3 - "$capacity" "${done_rows[@]}" <<'PY'
import json, sys
capacity = int(sys.argv[1])
rows = [json.load(open(p)) for p in sys.argv[2:]]
cols = [("legit ok %", lambda r: r["legit"]["success_rate"]),
        ("p50 ms", lambda r: r["legit"]["latency_ms"]["p50"]),
        ("p95 ms", lambda r: r["legit"]["latency_ms"]["p95"]),
        ("p99 ms", lambda r: r["legit"]["latency_ms"]["p99"]),
        ("view p99 ms", lambda r: r["legit"]["page_view_ms"]["p99"]),
        ("upstream/s", lambda r: (r["upstream"] or {}).get("arrived_per_sec")),
        ("max in 1 s", lambda r: (r["upstream"] or {}).get("max_arrived_in_a_second")),
        ("s over C", lambda r: (r["upstream"] or {}).get("seconds_over_capacity")),
        ("attack/s", lambda r: r["attack"]["sent_per_sec"]),
        ("passed", lambda r: r["attack"]["passed"]),
        ("challenged", lambda r: r["attack"]["challenged"]),
        ("blocked", lambda r: r["attack"]["blocked"]),
        ("limited", lambda r: r["attack"]["limited"]),
        ("queued", lambda r: r["attack"]["queued"]),
        ("unavail", lambda r: r["attack"]["unavailable"]),
        ("errors", lambda r: r["attack"]["errors"]),
        ("timeouts", lambda r: r["attack"]["timeouts"]),
        ("addresses", lambda r: r["attack"]["addresses_connected"]),
        ("peak MB", lambda r: (r["memory"] or {}).get("peak_rss_mb"))]
def fmt(v):
    if v is None: return "-"
    return f"{v:.1f}" if isinstance(v, float) else str(v)
print(f"{'row':<14}" + "".join(f"{name:>12}" for name, _ in cols))
for r in rows:
    print(f"{r['label']:<14}" + "".join(f"{fmt(get(r)):>12}" for _, get in cols))
for r in rows:
    if r["legit"]["failures"]:
        print(f"{r['label']}: failed page views by reason: " + ", ".join(f"{k}: {v}" for k, v in r["legit"]["failures"].items()))
peer = next((r for r in rows if r["label"] == "nginx"), None)
if peer:
    for r in rows:
        if r is peer: continue
        def ratio(get):
            a, b = get(r), get(peer)
            return "-" if a is None or not b else f"{a / b:.2f}x"
        print(f"ratio {r['label']}/nginx: legit ok {ratio(cols[0][1])}, p99 {ratio(cols[3][1])}, upstream max in 1 s {ratio(cols[6][1])}, peak memory {ratio(cols[18][1])}")
print("targets: legit >= 99% (at most one challenge), legit p99 < 500 ms, upstream never > C per second, gateway memory < 300 MB")
for r in rows:
    up, mem = r["upstream"] or {}, r["memory"] or {}
    checks = [("legit>=99%", r["legit"]["success_rate"] >= 99.0),
              ("p99<500ms", r["legit"]["latency_ms"]["p99"] < 500.0),
              ("upstream<=C", up.get("max_arrived_in_a_second", 10**9) <= capacity),
              ("memory<300MB", mem.get("peak_rss_mb", 10**9) < 300.0)]
    print(f"  {r['label']:<14}" + "  ".join(f"{n}: {'met' if ok else 'MISSED'}" for n, ok in checks))
PY
