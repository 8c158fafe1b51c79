#!/usr/bin/env bash
# Side-by-side WAF benchmark. Four peers in front of the same upstream, each
# with the same number of worker processes or threads, loaded by wrk with
# keep-alive connections:
#   1. nginx as a plain reverse proxy (Debian `nginx`), the no-WAF baseline;
#   2. nginx with ModSecurity v3 and CRS 3.3.4 (Debian
#      `libnginx-mod-http-modsecurity` and `modsecurity-crs`), blocking, with
#      the settings of modsecurity.conf-recommended (request and response
#      body access on);
#   3. rampart with the same CRS 3.3.4, blocking, paranoia level 1;
#   4. rampart with CRS 4.28.0 (../shared/crs/v4.28.0), blocking, PL1.
# Three kinds of traffic, each measured on every peer: (a) a benign GET with
# query arguments and browser headers, (b) a benign 1 KB URL-encoded form
# POST, (c) a mix in which 1 request in 10 is an attack (SQL injection or XSS
# in a query argument). Prints requests/s, p50 and p99 for every row, and the
# ratios of rampart to nginx+ModSecurity and to plain nginx. Before measuring
# it checks, and prints, that each WAF blocks an attack and passes the benign
# requests. This is a benchmark, not a test: it never fails on a figure.
#
# Usage: bench/waf-vs-modsecurity.sh [workers] [connections] [seconds] [rounds]
#   defaults 1 32 10 1; with rounds > 1 every row shows the median of its rounds.
#   RAMPART=path/to/rampart uses that binary instead of building one;
#   KEEP=1 keeps the work directory (configs, logs, raw wrk output).
#   latency_seconds=N sets the one-connection latency pass (default 5 s per
#   scenario and peer); the p99-added target is judged there, since p99 at
#   saturation is mostly queueing.
# Needs: nginx wrk libnginx-mod-http-modsecurity modsecurity-crs (apt), python3,
#        a release build of rampart, CRS v4.28.0 in ../shared/crs/v4.28.0.
set -euo pipefail
workers=${1:-1}
connections=${2:-32}
seconds=${3:-10}
rounds=${4:-1}
warmup=2
root=$(cd "$(dirname "$0")/.." && pwd)
crs3=/usr/share/modsecurity-crs
crs4=${CRS4:-$(cd "$root/.." && pwd)/shared/crs/v4.28.0}
modsec_module=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
modsec_recommended=/etc/nginx/modsecurity.conf   # Debian's copy of modsecurity.conf-recommended
work=$(mktemp -d /tmp/rampart-waf-bench.XXXXXX)
# nginx workers run as nobody when started as root: let them into the work dir.
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3
  if [ -n "${KEEP:-}" ]; then echo "bench: kept $work (configs, logs, raw wrk output)"; else rm -rf "$work"; fi
}
trap cleanup EXIT

for tool in nginx wrk curl python3; do
  command -v $tool >/dev/null || { echo "bench: $tool is missing (apt install $tool)"; exit 2; }
done
for f in "$modsec_module" "$modsec_recommended" "$crs3/rules" /etc/modsecurity/crs/crs-setup.conf "$crs4/rules"; do
  [ -e "$f" ] || { echo "bench: $f is missing (apt install libnginx-mod-http-modsecurity modsecurity-crs; CRS v4 in ../shared/crs)"; exit 2; }
done
[ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx || nginx=$(command -v nginx)
if [ -n "${RAMPART:-}" ]; then
  rampart=$RAMPART
else
  (cd "$root" && cargo build --release -q -p rampart)
  rampart="$root/target/release/rampart"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port)
peers=(nginx modsec rampart3 rampart4)
declare -A port label
for p in "${peers[@]}"; do port[$p]=$(free_port); done
label[nginx]="nginx (plain proxy)"
label[modsec]="nginx + ModSecurity 3 + CRS 3.3.4"
label[rampart3]="rampart + CRS 3.3.4"
label[rampart4]="rampart + CRS 4.28.0"

# ---------------------------------------------------------------- upstream
# nginx answering a small fixed HTML page (return, not a file: workers could
# not read one inside the work dir), one worker of its own.
mkdir -p "$work/upstream" "$work/nginx" "$work/modsec" "$work/rampart3" "$work/rampart4"
cat > "$work/upstream/nginx.conf" <<CONF
worker_processes 1;
pid $work/upstream/nginx.pid;
error_log $work/upstream/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$upstream_port;
    location / {
      default_type text/html;
      return 200 "<!doctype html>
<html lang=en><head><meta charset=utf-8><title>Garden shop</title></head>
<body><h1>Garden shop</h1><p>Thank you for visiting. Our summer range of chairs, tables and planters is in stock.</p>
<ul><li><a href=/chairs>Chairs</a></li><li><a href=/tables>Tables</a></li><li><a href=/contact>Contact us</a></li></ul></body></html>
";
    }
  }
}
CONF
$nginx -c "$work/upstream/nginx.conf" -p "$work/upstream" -g 'daemon off;' 2>"$work/upstream/stderr" &
pids+=($!)

# ------------------------------------------------- the two nginx proxies
proxy_conf() { # dir port extra-main extra-location
  cat > "$work/$1/nginx.conf" <<CONF
$3
worker_processes $workers;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$upstream_port; keepalive 128; }
  server {
    listen 127.0.0.1:$2;
    location / {
      $4
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
CONF
}
proxy_conf nginx "${port[nginx]}" "" ""
proxy_conf modsec "${port[modsec]}" "load_module $modsec_module;" \
  "modsecurity on; modsecurity_rules_file $work/modsec/main.conf;"

# ModSecurity: modsecurity.conf-recommended with the engine blocking. Its
# audit log is switched off, as rampart's is by default (rampart runs with
# no WAF or audit log here); the status engine (a DNS beacon) too.
sed -e 's/^SecRuleEngine .*/SecRuleEngine On/' \
    -e 's/^SecAuditEngine .*/SecAuditEngine Off/' \
    -e "s|^SecAuditLog .*|SecAuditLog $work/modsec/audit.log|" \
    -e 's/^SecStatusEngine .*/SecStatusEngine Off/' \
    -e "s|^SecUnicodeMapFile unicode.mapping|SecUnicodeMapFile $(dirname "$modsec_recommended")/unicode.mapping|" \
    "$modsec_recommended" > "$work/modsec/modsecurity.conf"
grep -q '^SecRequestBodyAccess On' "$work/modsec/modsecurity.conf" && grep -q '^SecResponseBodyAccess On' "$work/modsec/modsecurity.conf" \
  || { echo "bench: $modsec_recommended does not turn request and response body access on"; exit 2; }
# The CRS as Debian's owasp-crs.load includes it.
cat > "$work/modsec/main.conf" <<CONF
Include $work/modsec/modsecurity.conf
Include /etc/modsecurity/crs/crs-setup.conf
Include /etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf
Include $crs3/rules/*.conf
Include /etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf
CONF
for p in nginx modsec; do
  $nginx -c "$work/$p/nginx.conf" -p "$work/$p" -g 'daemon off;' 2>"$work/$p/stderr" &
  pids+=($!)
done

# ------------------------------------------------------------ rampart x2
for p in rampart3 rampart4; do
  [ $p = rampart3 ] && crs=$crs3 || crs=$crs4
  cat > "$work/$p/rampart.toml" <<CONF
[server]
admin_listen = "off"
access_log = "off"
threads = $workers
[[listener]]
address = "127.0.0.1:${port[$p]}"
[[upstream]]
name = "app"
servers = ["127.0.0.1:$upstream_port"]
[[site]]
name = "bench"
hosts = ["*"]
upstream = "app"
[site.waf]
mode = "on"
crs = "$crs"
paranoia = 1
CONF
  "$rampart" serve --config "$work/$p/rampart.toml" --threads "$workers" --access-log off 2>"$work/$p/stderr" &
  pids+=($!)
done

for p in upstream "${peers[@]}"; do
  [ $p = upstream ] && pt=$upstream_port || pt=${port[$p]}
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$pt/" && continue 2; sleep 0.1; done
  echo "bench: $p did not start on port $pt:"; cat "$work/$p/stderr" "$work/$p/error.log" 2>/dev/null | tail -20; exit 1
done

# ---------------------------------------------------------------- traffic
# One definition of each request, used by both the curl checks and wrk.
host=shop.example.org
ua="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
accept="text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
accept_language="en-GB,en;q=0.9,fr;q=0.8"
cookie="session_id=6f1c2a9e8b7d4c3f0a1b2c3d4e5f6a7b; theme=dark; cart_items=3"
get_path="/search?q=garden+chairs&category=outdoor&page=2&sort=price_asc&lang=en"
post_path="/contact"
sqli_path="/search?q=1%27%20UNION%20SELECT%20username%2C%20password%20FROM%20users--&page=1"
xss_path="/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E&page=1"
# A 1 KB URL-encoded contact form with ordinary prose.
form=$(python3 - <<'PY'
from urllib.parse import urlencode
prose = ("Hello, I bought two folding chairs and a small oak table from your shop last month. "
         "The chairs are great and the whole family likes them, but one of the table legs arrived "
         "with a crack near the top and it wobbles when we put plates on it. I have kept the box and "
         "the delivery note, and I can send photos if that helps. Could you tell me whether you can "
         "send a replacement leg, or should I return the table to the store in town? We are at home "
         "most evenings after six and on Saturday mornings, so a delivery then would suit us well. "
         "Thank you for your help, and for the quick delivery of the rest of the order. "
         "My neighbour also asked about the matching bench, so please let me know if it will be "
         "back in stock before the summer holidays. I don't mind waiting a week or two for it. "
         "Kind regards from a happy customer in the north of the county")
fields = [("name", "Alice Martin"), ("email", "alice.martin@example.org"),
          ("phone", "+44 20 7946 0958"), ("subject", "Cracked table leg, order 48213"),
          ("order", "48213"), ("message", prose), ("newsletter", "yes")]
body = urlencode(fields)
assert len(body) <= 1024, len(body)
# Pad the message to make the body exactly 1 KB ('.' is not encoded).
fields[5] = ("message", prose + "." * (1024 - len(body)))
body = urlencode(fields)
assert len(body) == 1024, len(body)
print(body, end="")
PY
)

lua_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
cat > "$work/requests.lua" <<LUA
local headers = {
  ["Host"] = $(lua_str "$host"),
  ["User-Agent"] = $(lua_str "$ua"),
  ["Accept"] = $(lua_str "$accept"),
  ["Accept-Language"] = $(lua_str "$accept_language"),
  ["Accept-Encoding"] = "gzip, deflate",
  ["Cookie"] = $(lua_str "$cookie"),
}
local function with(extra)
  local h = {}
  for k, v in pairs(headers) do h[k] = v end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end
get_path = $(lua_str "$get_path")
post_path = $(lua_str "$post_path")
form = $(lua_str "$form")
sqli_path = $(lua_str "$sqli_path")
xss_path = $(lua_str "$xss_path")
get_headers = with()
post_headers = with({ ["Content-Type"] = "application/x-www-form-urlencoded", ["Origin"] = "http://$host", ["Referer"] = "http://$host/contact" })
LUA
cat "$work/requests.lua" - > "$work/get.lua" <<'LUA'
wrk.method = "GET"; wrk.path = get_path; wrk.headers = get_headers
LUA
cat "$work/requests.lua" - > "$work/post.lua" <<'LUA'
wrk.method = "POST"; wrk.path = post_path; wrk.headers = post_headers; wrk.body = form
LUA
# The mix: of every 10 requests 6 benign GETs, 3 benign form POSTs and one
# attack, alternately SQL injection and XSS in a query argument.
cat "$work/requests.lua" - > "$work/mix.lua" <<'LUA'
local cycle = {}
local n = 0
init = function(args)
  local g = wrk.format("GET", get_path, get_headers)
  local p = wrk.format("POST", post_path, post_headers, form)
  local attacks = { wrk.format("GET", sqli_path, get_headers), wrk.format("GET", xss_path, get_headers) }
  for round = 1, 2 do
    for _, r in ipairs({ g, g, p, g, g, p, g, g, p, attacks[round] }) do cycle[#cycle + 1] = r end
  end
end
request = function()
  n = n % #cycle + 1
  return cycle[n]
end
LUA

# ------------------------------------------------------------ sanity check
curl_status() { # port path [form]
  local args=(-s -o /dev/null -w '%{http_code}' -H "Host: $host" -A "$ua" -H "Accept: $accept"
              -H "Accept-Language: $accept_language" -H "Accept-Encoding: gzip, deflate" -H "Cookie: $cookie")
  [ -n "${3:-}" ] && args+=(-H "Content-Type: application/x-www-form-urlencoded" -H "Origin: http://$host"
                            -H "Referer: http://$host/contact" --data-binary "$3")
  curl "${args[@]}" "http://127.0.0.1:$1$2" || echo 000
}
versions() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
echo "peers: nginx $(versions nginx), libmodsecurity3 $(versions libmodsecurity3), modsecurity-crs $(versions modsecurity-crs), rampart $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
echo "sanity check (expected: benign 200; attacks 403 on the WAF peers, 200 on plain nginx)"
printf '  %-36s %11s %11s %6s %6s\n' peer "benign GET" "form POST" SQLi XSS
sane=1
for p in "${peers[@]}"; do
  g=$(curl_status "${port[$p]}" "$get_path")
  f=$(curl_status "${port[$p]}" "$post_path" "$form")
  s=$(curl_status "${port[$p]}" "$sqli_path")
  x=$(curl_status "${port[$p]}" "$xss_path")
  [ $p = nginx ] && want=200 || want=403
  verdict=ok
  [ "$g" = 200 ] && [ "$f" = 200 ] && [ "$s" = $want ] && [ "$x" = $want ] || { verdict=WRONG; sane=0; }
  printf '  %-36s %11s %11s %6s %6s  %s\n' "${label[$p]}" "$g" "$f" "$s" "$x" "$verdict"
done
[ $sane = 1 ] || { echo "bench: a peer answered differently than expected; not measuring"; exit 1; }

# ---------------------------------------------------------------- measure
results=$work/results
: > "$results"
measure() { # scenario peer round
  local url="http://127.0.0.1:${port[$2]}/" out load
  wrk -t1 -c"$connections" -d${warmup}s -s "$work/$1.lua" "$url" >/dev/null 2>&1  # warm-up
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency -s "$work/$1.lua" "$url")
  echo "$out" > "$work/wrk-$1-$2-$3.txt"
  WRK="$out" python3 - "$1" "$2" "$3" "$load" >> "$results" <<'PY'
import os, re, sys
out = os.environ["WRK"]
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    v, u = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
non2xx = int(m.group(1)) if m else 0
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
errors = ",".join(m.groups()) if m else "0,0,0,0"
print(*sys.argv[1:], rps, p50, p99, total, non2xx, errors)
PY
}

scenarios=(get post mix)
echo
echo "load average before measuring: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores; other work on the machine skews the figures)"
echo "measuring: ${#scenarios[@]} scenarios x ${#peers[@]} peers x $rounds round(s), wrk -t1 -c$connections -d${seconds}s --latency, ${warmup}s warm-up each, $workers worker(s) per peer"
for round in $(seq "$rounds"); do
  for s in "${scenarios[@]}"; do
    for p in "${peers[@]}"; do measure "$s" "$p" "$round"; done
  done
done
# Latency without queueing: one connection, so each request waits for
# nothing but its own processing. Under saturation (above) p99 is mostly
# time spent queued behind other connections' requests, which says how
# loaded the peer is, not what the WAF adds to a request.
latencies=$work/latencies
: > "$latencies"
for s in "${scenarios[@]}"; do
  for p in "${peers[@]}"; do
    out=$(wrk -t1 -c1 -d"${latency_seconds:-5}s" --latency -s "$work/$s.lua" "http://127.0.0.1:${port[$p]}/")
    WRK="$out" python3 - "$s" "$p" >> "$latencies" <<'PY'
import os, re, sys
out = os.environ["WRK"]
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
print(*sys.argv[1:], p50, p99)
PY
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ report
echo
LABELS="$(for p in "${peers[@]}"; do printf '%s=%s\n' "$p" "${label[$p]}"; done)" \
python3 - "$results" "$load_after" "$latencies" <<'PY'
import os, sys, statistics
labels = dict(l.split("=", 1) for l in os.environ["LABELS"].splitlines())
peers = list(labels)
names = {"get": "(a) benign GET", "post": "(b) benign 1 KB form POST", "mix": "(c) mix, 10% attacks"}
rows = {}
for line in open(sys.argv[1]):
    s, p, rnd, load, rps, p50, p99, total, non2xx, errors = line.split()
    socket = [int(x) for x in errors.split(",")]
    rows.setdefault((s, p), []).append((float(load), float(rps), float(p50), float(p99), int(total), int(non2xx), sum(socket), rnd, socket))
def med(s, p, i):
    return statistics.median(r[i] for r in rows[(s, p)])
multi = any(len(v) > 1 for v in rows.values())
hdr = f"{'peer':<36} {'requests/s':>11} {'p50 ms':>9} {'p99 ms':>9} {'non-2xx':>14} {'sock err':>8} {'load1':>6}"
if multi:
    hdr += "  requests/s of each round"
notes = []
for s in names:
    print(names[s])
    print("  " + hdr)
    for p in peers:
        total = sum(r[4] for r in rows[(s, p)]); non = sum(r[5] for r in rows[(s, p)]); err = sum(r[6] for r in rows[(s, p)])
        nonpct = f"{non} ({100*non/total:.1f}%)" if total else str(non)
        each = "  " + " ".join(f"{r[1]:.0f}" for r in rows[(s, p)]) if multi else ""
        print(f"  {labels[p]:<36} {med(s,p,1):>11.0f} {med(s,p,2):>9.2f} {med(s,p,3):>9.2f} {nonpct:>14} {err:>8} {med(s,p,0):>6.2f}{each}")
        for r in rows[(s, p)]:
            if r[6]:
                c, rd, w, t = r[8]
                notes.append(f"{names[s]}, {labels[p]}, round {r[7]}: socket errors connect {c}, read {rd}, write {w}, timeout {t} (wrk counts a request unanswered after 2 s as a timeout)")
    n, m = med(s, "nginx", 1), med(s, "modsec", 1)
    for r in ("rampart3", "rampart4"):
        rr = med(s, r, 1)
        added = med(s, r, 3) - med(s, "nginx", 3)
        vs_m = rr / m
        t10 = ("ok" if vs_m >= 10 else "MISSED") if s != "mix" else "n/a, not benign"
        t05 = "ok" if rr / n >= 0.5 else "MISSED"
        print(f"  {labels[r] + ':':<23} vs nginx+ModSecurity {vs_m:6.2f}x (target >= 10x: {t10});"
              f" vs plain nginx {rr/n:4.2f}x (target >= 0.5x: {t05}); p99 at saturation {added:+.2f} ms over plain nginx (queueing included)")
    print()
lat = {}
for line in open(sys.argv[3]):
    s, p, p50, p99 = line.split()
    lat[(s, p)] = (float(p50), float(p99))
print("(d) latency with one connection (no queueing): what the WAF adds to each request")
print(f"  {'scenario':<28} {'peer':<36} {'p50 ms':>8} {'p99 ms':>8} {'p99 added':>10}")
for s in names:
    for p in peers:
        p50, p99 = lat[(s, p)]
        added = p99 - lat[(s, "nginx")][1]
        verdict = ""
        if p in ("rampart3", "rampart4"):
            verdict = f"  (target < 1 ms: {'ok' if added < 1 else 'MISSED'})"
        print(f"  {names[s]:<28} {labels[p]:<36} {p50:>8.2f} {p99:>8.2f} {added:>+10.2f}{verdict}")
print()
for n in notes:
    print(n)
if multi:
    print("each row shows the median of its rounds (requests/s, p50, p99 and load taken separately); non-2xx and socket errors are summed")
print(f"load average after measuring: {sys.argv[2]}")
print("rampart + CRS 4.28.0 is set against ModSecurity running CRS 3.3.4 (Debian packages no CRS 4); the like-for-like row is CRS 3.3.4.")
print("non-2xx: the mix sends 1 attack in 10, so the WAF peers should answer about 10% 403s and plain nginx none.")
PY
