#!/usr/bin/env bash
# Peer comparison: echo servers on ws-mio, ws-tokio, ws-std, tungstenite,
# tokio-tungstenite and fastwebsockets under the same load generator
# (`wsx bench`), plus server memory per idle connection.
#
#   scripts/peers.sh [SECS]
#
# SECS (default 2) is the measurement time of each `wsx bench` run. It builds
# wsx and the ws-mio load_client example (main workspace) and the peer
# servers (benches/peers, its own workspace) in release mode, starts every
# server on its own 127.0.0.1 port, opens $IDLE idle connections to each
# fresh server with load_client and reads the server's VmRSS before and
# after, then runs every scenario against every server with
# `wsx bench --driver $BENCH_DRIVER` ($REPEAT interleaved rounds, best kept)
# and stops the servers (by PID). Prints one markdown table of messages/s
# and ratios, and one of memory.
#
# Environment: CARGO_TARGET_DIR (main workspace), PEERS_TARGET_DIR (peers
# workspace; default CARGO_TARGET_DIR, else benches/peers/target),
# BENCH_DRIVER (mio or std, default mio), IDLE (default 2000), REPEAT (rounds
# over all servers and scenarios, default 3; the table shows the best round),
# SERVER_THREADS (event loops / runtime workers, default nproc).
#
# Not a test. All traffic stays on 127.0.0.1; every wait is bounded.
set -euo pipefail

SECS=${1:-2}
IDLE=${IDLE:-2000}
BENCH_DRIVER=${BENCH_DRIVER:-mio}
THREADS=${SERVER_THREADS:-$(nproc)}
BASE_PORT=${BASE_PORT:-19101}
REPEAT=${REPEAT:-3}
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MAIN_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PEERS_TARGET=${PEERS_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/benches/peers/target}}
WORK=$(mktemp -d /tmp/peers.XXXXXX)

echo "== building (release)" >&2
CARGO_TARGET_DIR=$MAIN_TARGET nice -n 5 cargo build --release -q -p ws-cli --bin wsx -p ws-mio --example load_client
(cd benches/peers && CARGO_TARGET_DIR=$PEERS_TARGET nice -n 5 cargo build --release -q --locked)
WSX=$MAIN_TARGET/release/wsx
LOAD=$MAIN_TARGET/release/examples/load_client
PB=$PEERS_TARGET/release

# name | supports permessage-deflate | command (ADDR is replaced)
SERVERS=(
    "ws-mio|yes|$WSX serve ADDR --driver mio --threads $THREADS --quiet --max-message 4194304 --max-connections 100000"
    "ws-mio-1frame|yes|$WSX serve ADDR --driver mio --threads $THREADS --quiet --max-message 4194304 --max-connections 100000 --fragment-size 4194304"
    "ws-tokio|yes|$WSX serve ADDR --driver tokio --threads $THREADS --quiet --max-message 4194304 --max-connections 100000"
    "ws-std|yes|$WSX serve ADDR --driver std --quiet --max-message 4194304 --max-connections 100000"
    "tungstenite|no|$PB/tungstenite_echo ADDR"
    "tokio-tungstenite|no|$PB/tokio_tungstenite_echo ADDR"
    "fastwebsockets|no|$PB/fastwebsockets_echo ADDR"
)
# label | wsx bench arguments
SCENARIOS=(
    "100 conns × 16 B, window 16|--conns 100 --size 16 --window 16"
    "10 conns × 1 KiB, window 16|--conns 10 --size 1024 --window 16"
    "2 conns × 1 MiB, window 4|--conns 2 --size 1048576 --window 4"
    "1 conn × 64 KiB, window 16|--conns 1 --size 65536 --window 16"
)

declare -A PID PORT
cleanup() {
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
        wait "${PID[$name]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (at most 10 s) until something accepts on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# One bench run; prints msg/s, or "err" (with the reason on stderr).
bench() {
    local port=$1 args=$2 out
    # shellcheck disable=SC2086
    if out=$(timeout $((SECS + 60)) "$WSX" bench "ws://127.0.0.1:$port/" $args \
        --secs "$SECS" --driver "$BENCH_DRIVER" --csv --quiet 2>"$WORK/bench.err"); then
        echo "$out" | awk -F, '/^csv,/ {print $7}'
    else
        echo "  bench failed ($args): $(echo "$out" | grep '^csv,' || true) $(head -c 300 "$WORK/bench.err")" >&2
        echo "err"
    fi
}

declare -A RESULT MEM DEFLATE
NAMES=()
# Every server runs from the start (idle ones cost nothing), so the rounds
# below can interleave them: slow drifts of the shared machine then hit
# every server alike.
i=0
for s in "${SERVERS[@]}"; do
    IFS='|' read -r name deflate cmd <<<"$s"
    port=$((BASE_PORT + i))
    i=$((i + 1))
    # shellcheck disable=SC2086
    ${cmd//ADDR/127.0.0.1:$port} >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID[$name]=$!
    if ! wait_port "$port"; then
        echo "== $name did not start: $(head -c 300 "$WORK/$name.err")" >&2
        continue
    fi
    PORT[$name]=$port
    DEFLATE[$name]=$deflate
    NAMES+=("$name")
done

# Idle memory first, on every fresh process.
for name in "${NAMES[@]}"; do
    port=${PORT[$name]} pid=${PID[$name]}
    before=$(rss_kib "$pid")
    timeout 120 "$LOAD" "ws://127.0.0.1:$port/" --connections "$IDLE" --loops 1 --hold 3 \
        >"$WORK/load.out" 2>"$WORK/load.err" &
    load_pid=$!
    for _ in $(seq 1 600); do
        grep -q '^HOLD' "$WORK/load.out" 2>/dev/null && break
        sleep 0.1
    done
    sleep 1
    after=$(rss_kib "$pid")
    opened=$(awk '/^OPEN/ {sub("n=", "", $2); print $2}' "$WORK/load.out")
    if wait "$load_pid"; then echo_ok=yes; else echo_ok=no; fi
    if [ -n "$opened" ] && [ "$opened" -gt 0 ]; then
        MEM[$name]="$before|$after|$opened|$(( (after - before) * 1024 / opened ))|$echo_ok"
    else
        MEM[$name]="$before|$after|0|-|$echo_ok"
    fi
    echo "== $name idle: ${opened:-0} connections, VmRSS $before -> $after KiB, echo check $echo_ok" >&2
done

# keep_best KEY VALUE: RESULT[KEY] = the larger of the two ("err" loses).
keep_best() {
    local old=${RESULT["$1"]:-}
    if [ -z "$old" ] || [ "$old" = err ]; then
        RESULT["$1"]=$2
    elif [ "$2" != err ] && [ "$2" -gt "$old" ]; then
        RESULT["$1"]=$2
    fi
}

for round in $(seq 1 "$REPEAT"); do
    for sc in "${SCENARIOS[@]}"; do
        IFS='|' read -r label args <<<"$sc"
        for d in off on; do
            for name in "${NAMES[@]}"; do
                [ "$d" = on ] && [ "${DEFLATE[$name]}" != yes ] && continue
                extra=
                [ "$d" = on ] && extra=--deflate
                r=$(bench "${PORT[$name]}" "$args $extra")
                keep_best "$name|$label|$d" "$r"
                echo "  round $round, $label, deflate $d, $name: $r msg/s" >&2
            done
        done
    done
done

# ratio A B: A / B with two decimals, or "–".
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "–" }'
}
cell() { echo "${RESULT["$1"]:-–}"; }

echo
echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr), $(rustc --version)"
echo "Command: scripts/peers.sh $SECS (wsx bench --driver $BENCH_DRIVER, ${SECS} s per run, best of $REPEAT interleaved rounds; servers with $THREADS threads/loops where they have a choice; load generator and server share the machine)"
echo
echo "Messages/s (echoed, counted by the load generator). Ratios = ws-mio / peer (and ws-std / tungstenite, the two thread-per-connection servers): > 1 means ours is ahead."
echo
echo "| scenario | deflate | ws-mio | ws-mio, 1 frame/msg | ws-tokio | ws-std | tungstenite | tokio-tungstenite | fastwebsockets | ws-mio / tungstenite | ws-mio / tokio-tungstenite | ws-mio / fastwebsockets | ws-tokio / tokio-tungstenite | ws-tokio / fastwebsockets | ws-std / tungstenite |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for d in off on; do
    for sc in "${SCENARIOS[@]}"; do
        IFS='|' read -r label _ <<<"$sc"
        m=$(cell "ws-mio|$label|$d")
        m1=$(cell "ws-mio-1frame|$label|$d")
        tk=$(cell "ws-tokio|$label|$d")
        st=$(cell "ws-std|$label|$d")
        t=$(cell "tungstenite|$label|$d")
        tt=$(cell "tokio-tungstenite|$label|$d")
        f=$(cell "fastwebsockets|$label|$d")
        if [ "$d" = on ]; then t="n/a"; tt="n/a"; f="n/a"; fi
        echo "| $label | $d | $m | $m1 | $tk | $st | $t | $tt | $f | $(ratio "$m" "$t") | $(ratio "$m" "$tt") | $(ratio "$m" "$f") | $(ratio "$tk" "$tt") | $(ratio "$tk" "$f") | $(ratio "$st" "$t") |"
    done
done
echo
echo "ws-mio, 1 frame/msg: the same server with --fragment-size 4194304 (every echo goes out as one frame, as the peers send it); ws-mio and ws-std use the core's default fragment size, 32767 bytes. The load generator sends 32767-byte fragments to every server."
echo
echo "n/a: the peer has no permessage-deflate (tungstenite and tokio-tungstenite 0.30 have no deflate feature; fastwebsockets has none)."
echo
echo "Server memory per idle connection ($IDLE connections opened by the ws-mio load_client example, after the upgrade, nothing in flight; VmRSS from /proc/PID/status):"
echo
echo "| server | VmRSS before | VmRSS with idle connections | connections | bytes per idle connection | echo check |"
echo "|---|---:|---:|---:|---:|---|"
for s in "${SERVERS[@]}"; do
    IFS='|' read -r name _ _ <<<"$s"
    IFS='|' read -r b a n p e <<<"${MEM[$name]:-–|–|–|–|–}"
    echo "| $name | $b KiB | $a KiB | $n | $p | $e |"
done
