#!/usr/bin/env bash
# Scale-out benchmark: one room spread over 3 `wsx serve --broadcast --redis`
# processes against the same clients on one process (docs/scale-out.md,
# docs/performance.md).
#
#   scripts/scale-out.sh [CLIENTS_PER_PROCESS] [MESSAGES] [SIZE]
#
# Defaults: 1000 clients per process (3 x 1000 = 3000 subscribers), 1000
# messages of 64 bytes, --window 16 (WINDOW=...). Builds wsx in release
# mode, starts a redis-server of its own on a free 127.0.0.1 port (installs
# the Debian package when missing), then runs `wsx bench --broadcast` (one
# publisher, every delivery checked: lost, duplicates, order) three times:
#
# 1. one process, no Redis, all subscribers (today's single-process room);
# 2. one process with --redis, all subscribers (what the bridge costs);
# 3. three processes with --redis, the subscribers spread over them in turn
#    (--also), the publisher on the first.
#
# Prints one table row per run (deliveries/s, p50/p99/max latency). Every
# wait is bounded; it stops only the processes it started, by PID. All
# traffic on 127.0.0.1. Not a unit test.
set -euo pipefail

PER=${1:-1000}
MSGS=${2:-1000}
SIZE=${3:-64}
WINDOW=${WINDOW:-16}
N=$((PER * 3))
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
WSX="$CARGO_TARGET_DIR/release/wsx"
WORK=$(mktemp -d /tmp/scale-out.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v redis-server >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq redis-server)
echo "== building wsx (release)"
nice -n 10 cargo build --release -q -p ws-cli
want=$((N * 2 + 1000))
if [ "$(ulimit -n)" -lt "$want" ]; then
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi

# Waits (at most 20 s) for a line matching $2 in file $1.
wait_for() {
    for _ in $(seq 200); do
        if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "no '$2' in $1 within 20 s" >&2
    cat "$1" >&2 || true
    exit 1
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/redis.log" "Ready to accept connections"
REDIS="redis://127.0.0.1:$port"
echo "== redis-server $(redis-server --version | awk '{print $3}') on $REDIS"

# Starts `wsx serve --broadcast ARGS...` (tokio driver, 1 worker thread);
# sets URL to its ws:// URL and SERVER to its PID.
serve() {
    local n=${#PIDS[@]}
    "$WSX" serve 127.0.0.1:0 --quiet --driver tokio --broadcast --max-connections $((N + 100)) "$@" \
        >"$WORK/wsx.$n.out" 2>"$WORK/wsx.$n.err" &
    SERVER=$!
    PIDS+=("$SERVER")
    wait_for "$WORK/wsx.$n.out" "listening on"
    URL=$(sed -n 's/^wsx: listening on //p' "$WORK/wsx.$n.out")
}

stop() {
    for p in "$@"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

bench() {
    local label=$1
    shift
    local out
    out=$("$WSX" bench "$@" --broadcast --subscribers "$N" --messages "$MSGS" --size "$SIZE" \
        --window "$WINDOW" --quiet --timeout 300 --csv) || {
        echo "$out" >&2
        echo "bench failed: $label" >&2
        exit 1
    }
    local row
    row=$(echo "$out" | grep '^| [0-9]')
    echo "| $label | ${row#| }" >>"$WORK/table"
    echo "$label: $(echo "$out" | grep '^csv,')"
}

echo "| run | subscribers | size | window | messages | deliveries | deliveries/s | MB/s | seconds | p50 ms | p99 ms | max ms | lost | duplicates | echoes to publisher | errors |" >"$WORK/table"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" >>"$WORK/table"

echo "== 1 process, no Redis, $N subscribers"
serve
bench "1 process, no Redis" "$URL/room"
stop "$SERVER"

echo "== 1 process, --redis, $N subscribers"
serve --redis "$REDIS"
bench "1 process, --redis" "$URL/room"
stop "$SERVER"

echo "== 3 processes, --redis, $PER subscribers each"
serve --redis "$REDIS"
u1=$URL s1=$SERVER
serve --redis "$REDIS"
u2=$URL s2=$SERVER
serve --redis "$REDIS"
u3=$URL s3=$SERVER
bench "3 processes, --redis" "$u1/room" --also "$u2/room,$u3/room"
for f in "$WORK"/wsx.*.err; do
    if grep -q "not published\|missed\|malformed" "$f"; then
        echo "losses logged in $f:" >&2
        grep "not published\|missed\|malformed" "$f" >&2
    fi
done
stop "$s1" "$s2" "$s3"

echo
cat "$WORK/table"
