#!/usr/bin/env bash
# ws-mio scale run: many concurrent WebSocket connections on loopback.
#
#   scripts/mio-scale.sh [CONNECTIONS] [SERVER_LOOPS] [CLIENT_LOOPS]
#
# Defaults: 100000 connections, 2 loops per server process, 2 loops per
# client process. It builds the ws-mio examples in release mode, raises the
# open-file limit, starts the echo server example on 127.0.0.1:$PORT, drives
# CONNECTIONS client connections with the load-client example (spread over
# the source addresses $SOURCES, default 127.0.0.2-127.0.0.9, so ephemeral
# ports do not run out), reports the server's memory per idle connection
# (VmRSS delta / connections) and the accept rate, then sends one message
# over every connection and checks every echo.
#
# One process holds one descriptor per connection. When the open-file limit
# cannot be raised far enough (no CAP_SYS_RESOURCE: the hard limit stays),
# the run is split over several server processes sharing the port with
# SO_REUSEPORT (the kernel spreads the connections) and as many client
# processes; the figures are then summed over the processes.
#
# Not a unit test. All traffic stays on 127.0.0.x; every wait is bounded.
set -euo pipefail

N=${1:-100000}
SERVER_LOOPS=${2:-2}
CLIENT_LOOPS=${3:-2}
PORT=${PORT:-19001}
HOLD=${HOLD:-5}
SOURCES=${SOURCES:-127.0.0.2-127.0.0.9}
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="$CARGO_TARGET_DIR/release/examples"
WORK=$(mktemp -d /tmp/mio-scale.XXXXXX)

echo "== building (release)"
nice -n 10 cargo build --release -q -p ws-mio --examples

echo "== limits"
want_fds=$(( N + N / 4 + 10000 ))
if [ "$(ulimit -n)" -lt "$want_fds" ]; then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
fds=$(ulimit -n)
# Connections per process: 60% of the limit leaves room for the kernel's
# uneven spreading over server processes.
per_proc=$(( (fds - 1000) * 6 / 10 ))
if [ "$per_proc" -lt 100 ]; then
    echo "open-file limit $fds is too low" >&2
    exit 1
fi
PROCS=$(( (N + per_proc - 1) / per_proc ))
echo "open files: $fds per process -> $PROCS server and $PROCS client process(es)"
read -r lo hi < <(sysctl -n net.ipv4.ip_local_port_range)
first=${SOURCES%-*}
last=${SOURCES#*-}
nsrc=$(( ${last##*.} - ${first##*.} + 1 ))
ports=$(( (hi - lo + 1) * nsrc ))
echo "ephemeral ports $lo-$hi x $nsrc source addresses = $ports"
if [ "$ports" -lt "$N" ]; then
    echo "not enough ephemeral ports for $N connections" >&2
    exit 1
fi
echo "somaxconn: $(sysctl -n net.core.somaxconn)"

SPIDS=()
CPIDS=()
cleanup() {
    for p in "${CPIDS[@]}" "${SPIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT

reuse=""
[ "$PROCS" -gt 1 ] && reuse="--reuse-port"
echo "== server: $PROCS process(es) x $SERVER_LOOPS loops on 127.0.0.1:$PORT"
for i in $(seq "$PROCS"); do
    "$BIN/mio_echo_server" "127.0.0.1:$PORT" "$SERVER_LOOPS" --quiet $reuse >"$WORK/server.$i.log" 2>&1 &
    SPIDS+=($!)
    for _ in $(seq 100); do
        grep -q listening "$WORK/server.$i.log" && break
        sleep 0.1
    done
    grep -q listening "$WORK/server.$i.log" || { cat "$WORK/server.$i.log"; exit 1; }
done
rss_total() {
    local sum=0 p
    for p in "${SPIDS[@]}"; do
        sum=$(( sum + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status") ))
    done
    echo "$sum"
}
sleep 0.5
RSS0=$(rss_total)
echo "server VmRSS before: ${RSS0} kB"

echo "== clients: $N connections, $PROCS process(es) x $CLIENT_LOOPS loops, from $SOURCES"
GO="$WORK/go"
for i in $(seq "$PROCS"); do
    n=$(( N / PROCS + (i <= N % PROCS ? 1 : 0) ))
    "$BIN/load_client" "ws://127.0.0.1:$PORT/" --connections "$n" --loops "$CLIENT_LOOPS" \
        --sources "$SOURCES" --hold 0 --go-file "$GO" >"$WORK/client.$i.log" 2>"$WORK/client.$i.err" &
    CPIDS+=($!)
done
for i in $(seq "$PROCS"); do
    for _ in $(seq 6000); do
        grep -q '^HOLD' "$WORK/client.$i.log" && break
        kill -0 "${CPIDS[$((i - 1))]}" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^HOLD' "$WORK/client.$i.log" || { cat "$WORK/client.$i.log" "$WORK/client.$i.err"; exit 1; }
done
echo "all connections open; holding them idle for ${HOLD}s"
sleep "$HOLD"
RSS1=$(rss_total)
echo "server VmRSS with $N idle connections: ${RSS1} kB"
touch "$GO"
status=0
for p in "${CPIDS[@]}"; do
    wait "$p" || status=$?
done
CPIDS=()
cat "$WORK"/client.*.log

opened=$(cat "$WORK"/client.*.log | awk '/^OPEN/ { for (i = 1; i <= NF; i++) if ($i ~ /^n=/) { sub("n=", "", $i); s += $i } } END { print s + 0 }')
open_secs=$(cat "$WORK"/client.*.log | awk '/^OPEN/ { for (i = 1; i <= NF; i++) if ($i ~ /^secs=/) { sub("secs=", "", $i); if ($i > m) m = $i } } END { print m + 0 }')
echoed=$(cat "$WORK"/client.*.log | awk '/^ECHO/ { for (i = 1; i <= NF; i++) if ($i ~ /^ok=/) { sub("ok=", "", $i); s += $i } } END { print s + 0 }')
echo_secs=$(cat "$WORK"/client.*.log | awk '/^ECHO/ { for (i = 1; i <= NF; i++) if ($i ~ /^secs=/) { sub("secs=", "", $i); if ($i > m) m = $i } } END { print m + 0 }')
per_conn=$(awk -v a="$RSS0" -v b="$RSS1" -v n="$N" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
rate=$(awk -v n="$opened" -v s="$open_secs" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print 0 }')
echo
echo "== ws-mio scale: $N connections"
echo "machine:       $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "processes:     $PROCS server x $SERVER_LOOPS loops, $PROCS client x $CLIENT_LOOPS loops"
echo "opened:        $opened of $N in ${open_secs}s -> accept rate $rate connections/s (TCP + WebSocket handshake)"
echo "server RSS:    ${RSS0} kB -> ${RSS1} kB = ${per_conn} bytes per idle connection"
echo "echo over all: $echoed of $opened echoes checked in ${echo_secs}s"
[ "$opened" -eq "$N" ] && [ "$echoed" -eq "$N" ] || status=1
echo "result:        $([ "$status" -eq 0 ] && echo ok || echo FAILED)"
exit "$status"
