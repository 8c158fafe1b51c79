# Shared by the bench scripts (sourced, not
# run): a work directory removed on exit with every process in `pids`
# killed, a raised open-file limit, nginx found, rampart built (or taken
# from RAMPART_BIN as it is), and port helpers. Expects `root` to be the
# repository.
target_dir=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/rampart-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT
# Every gateway a bench starts, and every `rampart` command it runs, keeps its
# state (the admin token, clearance keys) in the work directory: the commands
# find the gateway's admin token there, and the user's own state is left alone.
export XDG_STATE_HOME="$work/state"

# Thousands of connections need thousands of descriptors in the load tool
# and up to twice that in a proxy (client and upstream side): raise the soft
# limit to the hard one (20,000 on the machine these were written on).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx || nginx=$(command -v nginx || true)
[ -n "$nginx" ] || { echo "bench: nginx is missing (scripts/setup)"; exit 2; }
# RAMPART_BIN names a rampart binary to use as it is, without building.
if [ -n "${RAMPART_BIN:-}" ]; then
  rampart=$RAMPART_BIN
else
  (cd "$root" && CARGO_TARGET_DIR="$target_dir" cargo build --release -q -p rampart)
  rampart="$target_dir/release/rampart"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "bench: nothing on port $1"; exit 2; }
