#!/usr/bin/env bash
# Side-by-side proxy benchmark: nginx (Debian package) and rampart (all
# security layers off, so this measures the proxy core) in front
# of the same upstream, with the same number of worker threads, loaded by wrk
# with keep-alive small GETs. Prints requests/s, p50 and p99 for both and
# the ratios. A third row is bare Pingora (crates/gateway/examples/
# bare_pingora.rs: one upstream, no filters), the ceiling of any proxy built
# on it, so the table shows which part of the gap is Pingora's own. This is a benchmark, not a test: it never fails on a figure.
#
# Usage: bench/gateway-vs-nginx.sh [workers] [connections] [seconds] [rounds]
# Each round measures nginx then rampart; the medians are reported, since a
# 2-core machine shared with other work is noisy.
# Needs: nginx, wrk (apt install nginx wrk), a release build of rampart.
set -euo pipefail
workers=${1:-1}
connections=${2:-50}
seconds=${3:-10}
rounds=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/rampart-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.2; rm -rf "$work"; }
trap cleanup EXIT

for tool in nginx wrk; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing (apt install $tool)"; exit 2; }
done
[ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx || nginx=$(command -v nginx)
(cd "$root" && cargo build --release -q -p rampart && cargo build --release -q -p rampart-gateway --example bare_pingora)
rampart="$root/target/release/rampart"
bare="$root/target/release/examples/bare_pingora"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port); nginx_port=$(free_port); rampart_port=$(free_port); bare_port=$(free_port)

# The upstream: nginx serving a small fixed page, one worker of its own.
mkdir -p "$work/upstream" "$work/proxy"
cat > "$work/upstream/nginx.conf" <<CONF
worker_processes 1;
pid $work/upstream/nginx.pid;
error_log $work/upstream/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$upstream_port; location / { default_type text/html; return 200 "hello from the upstream, a small page of about one hundred bytes for the benchmark run.\\n"; } }
}
CONF
$nginx -c "$work/upstream/nginx.conf" -p "$work/upstream" -g 'daemon off;' 2>/dev/null &
pids+=($!)

# The peer: nginx as a reverse proxy with an upstream keep-alive pool.
cat > "$work/proxy/nginx.conf" <<CONF
worker_processes $workers;
pid $work/proxy/nginx.pid;
error_log $work/proxy/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$upstream_port; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
CONF
$nginx -c "$work/proxy/nginx.conf" -p "$work/proxy" -g 'daemon off;' 2>/dev/null &
pids+=($!)

"$rampart" serve --upstream "127.0.0.1:$upstream_port" --listen "127.0.0.1:$rampart_port" \
  --threads "$workers" --access-log off --admin off --waf off --flood off --leak-guard off 2>"$work/rampart.err" &
pids+=($!)

"$bare" "127.0.0.1:$bare_port" "127.0.0.1:$upstream_port" "$workers" 2>"$work/bare.err" &
pids+=($!)

for port in $upstream_port $nginx_port $rampart_port $bare_port; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# wrk reports latency with units; convert to milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.3f", v}'; }
measure() { # port -> "rps p50 p99"
  wrk -t1 -c"$connections" -d2s "http://127.0.0.1:$1/" >/dev/null 2>&1  # warm-up
  out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$1/")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}' | to_ms)
  p99=$(echo "$out" | awk '$1=="99%" {print $2}' | to_ms)
  errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  echo "$rps $p50 $p99 ${errors:-}"
}

echo "small keep-alive GETs: $workers worker thread(s) each, $connections connections, ${seconds}s x $rounds round(s), wrk -t1, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$work/nginx.txt"; : > "$work/rampart.txt"; : > "$work/bare.txt"
for round in $(seq "$rounds"); do
  measure $nginx_port >> "$work/nginx.txt"
  measure $rampart_port >> "$work/rampart.txt"
  measure $bare_port >> "$work/bare.txt"
done
col() { awk -v c="$2" '{print $c}' "$work/$1.txt" | median; }
n_rps=$(col nginx 1); n_p50=$(col nginx 2); n_p99=$(col nginx 3)
r_rps=$(col rampart 1); r_p50=$(col rampart 2); r_p99=$(col rampart 3)
b_rps=$(col bare 1); b_p50=$(col bare 2); b_p99=$(col bare 3)
printf '%-10s %12s %10s %10s   %s\n' peer "requests/s" "p50 ms" "p99 ms" "requests/s per round"
printf '%-10s %12s %10s %10s   %s\n' nginx "$n_rps" "$n_p50" "$n_p99" "$(awk '{printf "%s ", $1}' "$work/nginx.txt")"
printf '%-10s %12s %10s %10s   %s\n' rampart "$r_rps" "$r_p50" "$r_p99" "$(awk '{printf "%s ", $1}' "$work/rampart.txt")"
printf '%-10s %12s %10s %10s   %s\n' "pingora" "$b_rps" "$b_p50" "$b_p99" "$(awk '{printf "%s ", $1}' "$work/bare.txt")"
errors=$(cat "$work/nginx.txt" "$work/rampart.txt" "$work/bare.txt" | awk 'NF > 3' | wc -l)
[ "$errors" -eq 0 ] || echo "warning: $errors measurement(s) had non-2xx responses or socket errors (see above)"
awk -v a="$r_rps" -v b="$n_rps" -v c="$r_p99" -v d="$n_p99" 'BEGIN {
  printf "ratio rampart/nginx (medians): requests/s %.2fx (target >= 0.90), p99 %.2fx (target <= 1.20)\n", a/b, c/d }'
awk -v a="$b_rps" -v b="$n_rps" -v r="$r_rps" 'BEGIN {
  printf "bare pingora/nginx: requests/s %.2fx; rampart/bare pingora: %.2fx\n", a/b, r/a }'
