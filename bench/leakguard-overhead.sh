#!/usr/bin/env bash
# The leak guard's cost on the gateway: requests/s for a typical 20 KB HTML
# page with the leak guard on (alert, the zero-config default: every byte is
# scanned) against the same gateway with it off, side by side in one run.
# The WAF and flood shield are off in both, so the difference is the scan.
# Target: on >= 0.9x off. Also prints the scanner's own throughput bench.
#
# Usage: bench/leakguard-overhead.sh [workers] [connections] [seconds] [rounds]
set -euo pipefail
workers=${1:-1}
connections=${2:-32}
seconds=${3:-10}
rounds=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/rampart-leakbench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.2; rm -rf "$work"; }
trap cleanup EXIT
for tool in nginx wrk python3; do command -v $tool >/dev/null || { echo "bench: $tool is missing"; exit 2; }; done
(cd "$root" && cargo build --release -q -p rampart)
rampart="$root/target/release/rampart"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port); off=$(free_port); on=$(free_port)

# A 20 KB campaign page with the usual public contact details and no leak.
mkdir -p "$work/www"
python3 - "$work/www/index.html" <<'PY'
import sys
parts = ['<!doctype html><html><head><title>Fairshare Party</title></head><body><header><nav>Home News Donate Volunteer</nav></header><main>']
i = 0
while sum(len(p) for p in parts) < 20 * 1024:
    parts.append(f'<article><h2>Campaign update {i}</h2><p>Volunteers met in the town hall on Saturday to plan leafleting across the ward. '
                 'We talked about housing, buses and the library, and agreed the next steps for the spring. Thank you to everyone who came.</p></article>')
    i += 1
parts.append('<footer>Contact us: press@fairshare.example, 020 7946 0000. Promoted by the Fairshare Party.</footer></main></body></html>')
open(sys.argv[1], 'w').write(''.join(parts))
PY
chmod -R a+rX "$work/www"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; default_type text/html;
  server { listen 127.0.0.1:$up; root $work/www; location / { index index.html; } } }
CONF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' 2>/dev/null & pids+=($!)
common=(--upstream "127.0.0.1:$up" --threads "$workers" --access-log off --admin off --waf off --flood off)
"$rampart" serve "${common[@]}" --listen "127.0.0.1:$off" --leak-guard off 2>"$work/off.err" & pids+=($!)
"$rampart" serve "${common[@]}" --listen "127.0.0.1:$on" --leak-guard on 2>"$work/on.err" & pids+=($!)
for port in $up $off $on; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
size=$(curl -s "http://127.0.0.1:$on/" | wc -c)
[ "$size" -gt 20000 ] || { echo "bench: the page through the gateway is only $size bytes"; exit 1; }

# One timed run against the gateway on port $1 (process $2): prints its requests/s and the
# gateway's CPU time per request in µs (user + system, from /proc). CPU per request is steadier
# than requests/s on a shared machine, since time the machine gives to others is not counted.
measure() {
  wrk -t1 -c"$connections" -d2s "http://127.0.0.1:$1/" >/dev/null 2>&1
  local before after out
  before=$(awk '{print $14 + $15}' "/proc/$2/stat")
  out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$1/")
  after=$(awk '{print $14 + $15}' "/proc/$2/stat")
  echo "$out" | grep -E "Non-2xx|Socket errors" >&2 || true
  echo "$out" | awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n = $1} /Requests\/sec/ {rps = $2}
    END {printf "%s %.1f\n", rps, ticks / hz * 1e6 / n}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "20 KB HTML page ($size bytes), $workers worker thread(s), $connections connections, ${seconds}s x $rounds round(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$work/off.txt"; : > "$work/on.txt"
# The arms take turns going first, so that a drift in the machine's speed
# within a round does not always fall on the same one.
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    measure $off "${pids[1]}" >> "$work/off.txt"
    measure $on "${pids[2]}" >> "$work/on.txt"
  else
    measure $on "${pids[2]}" >> "$work/on.txt"
    measure $off "${pids[1]}" >> "$work/off.txt"
  fi
done
a=$(cut -d' ' -f1 "$work/off.txt" | median); b=$(cut -d' ' -f1 "$work/on.txt" | median)
ca=$(cut -d' ' -f2 "$work/off.txt" | median); cb=$(cut -d' ' -f2 "$work/on.txt" | median)
paired=$(paste -d' ' "$work/off.txt" "$work/on.txt" | awk '{print $3 / $1}' | median)
printf '%-22s %12s %14s   %s\n' "rampart" "requests/s" "CPU µs/req" "requests/s per round"
printf '%-22s %12s %14s   %s\n' "leak guard off" "$a" "$ca" "$(cut -d' ' -f1 "$work/off.txt" | tr '\n' ' ')"
printf '%-22s %12s %14s   %s\n' "leak guard on (alert)" "$b" "$cb" "$(cut -d' ' -f1 "$work/on.txt" | tr '\n' ' ')"
awk -v a="$a" -v b="$b" -v p="$paired" -v ca="$ca" -v cb="$cb" 'BEGIN {
  printf "ratio on/off: %.2fx (target >= 0.90); median of the rounds'"'"' paired ratios %.2fx; CPU per request off/on %.2fx\n", b/a, p, ca/cb }'
