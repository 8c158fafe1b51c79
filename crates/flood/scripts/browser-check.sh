#!/usr/bin/env bash
# Checks the challenge in a real browser (headless Chromium, Debian's
# `chromium` package) against the example server on 127.0.0.1:
#   1. with JavaScript: the Web Worker solves the proof of work, the page
#      posts it, gets the clearance cookie and reloads into the site;
#   2. without JavaScript: the <noscript> meta refresh waits, redeems the
#      signed wait token and lands on the site.
# Needs node >= 20 (DevTools over WebSocket). Exits non-zero on failure.
# Usage: CARGO_TARGET_DIR=/work/target-flood crates/flood/scripts/browser-check.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p rampart-flood --release --example challenge_server
server="$target/release/examples/challenge_server"
fail=0
run() { # name, chromium extra flag, server port, devtools port
  local name="$1" flag="$2" port="$3" dport="$4" log; log="$(mktemp)"
  "$server" "$port" 60 >"$log" 2>&1 & local spid=$!
  chromium --headless --no-sandbox --disable-gpu $flag --remote-debugging-port="$dport" about:blank >/dev/null 2>&1 & local cpid=$!
  sleep 3
  local out; out="$(timeout 45 node --experimental-websocket --no-warnings "$here/cdp-watch.mjs" "http://127.0.0.1:$port/donate?amount=10" 30 "$dport" || true)"
  kill "$cpid" "$spid" 2>/dev/null || true
  if grep -q CLEARED <<<"$out"; then echo "ok: $name"; else echo "FAILED: $name"; echo "$out"; cat "$log"; fail=1; fi
  rm -f "$log"
}
run "proof of work in a Web Worker" "" 18431 19431
run "no-script timed fallback" "--blink-settings=scriptEnabled=false" 18432 19432
exit "$fail"
