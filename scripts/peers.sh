#!/usr/bin/env bash
# Peer comparison: echo servers on ws-mio, ws-tokio, ws-std, tungstenite,
# tokio-tungstenite, fastwebsockets, tokio-websockets and yawc under the same
# load generator (`wsx bench`), server memory per idle connection, and a
# broadcast benchmark (one publisher, N subscribers) on ws-mio, ws-tokio and
# a tokio-tungstenite room.
#
#   scripts/peers.sh [SECS]
#
# SECS (default 2) is the measurement time of each `wsx bench` echo run. It
# builds wsx and the ws-mio load_client example (main workspace) and the peer
# servers (benches/peers, its own workspace) in release mode, starts every
# server on its own 127.0.0.1 port, opens $IDLE idle connections to each
# fresh echo server with load_client and reads the server's VmRSS before and
# after, then runs every scenario against every echo server with
# `wsx bench --driver $BENCH_DRIVER`, then the broadcast benchmark
# (`wsx bench --broadcast`) against every broadcast server ($REPEAT
# interleaved rounds, best kept), and stops the servers (by PID). Prints one
# markdown table per section: echo messages/s with ratios, memory, broadcast
# deliveries/s with ratios.
#
# The load generator sends every message as one frame (as browsers and the
# peers do); with FRAGMENTS=1 the scenarios whose messages are longer than
# 32767 bytes also run with `--fragment-size 32767` (the core's default
# fragment size), as extra rows.
#
# Broadcast: one publisher sends $BROADCAST_MESSAGES messages of
# $BROADCAST_SIZE bytes (binary, no deflate), at most $BROADCAST_WINDOW not
# yet delivered to every subscriber, to each subscriber count of
# $BROADCAST_SUBS; wsx checks every delivery (each subscriber gets every
# message, in order, once) and reports deliveries/s from the first publish
# to the last delivery, after a sync round that every subscriber must
# receive. With BROADCAST_DEFLATE=1 (default) ws-mio and ws-tokio also run
# with permessage-deflate (one loop / worker; the subscribers offer it, the
# server answers server_no_context_takeover so that each message is
# compressed once for all), in a table of their own: the room has no
# deflate. Subscribers connect from the $SOURCES addresses in turn (more
# ephemeral ports); the open-file limit is raised (`ulimit -n`) up to the
# hard limit.
#
# Environment: CARGO_TARGET_DIR (main workspace), PEERS_TARGET_DIR (peers
# workspace; default CARGO_TARGET_DIR, else benches/peers/target),
# BENCH_DRIVER (echo load generator: mio or std, default mio), IDLE (idle
# connections for the memory table, 0 to skip it; default
# 2000), REPEAT (rounds over all servers and scenarios, default 3; the tables
# show the best round), SERVER_THREADS (event loops / runtime workers,
# default nproc), FRAGMENTS (1: also the fragmented rows, default 0),
# BROADCAST (0: skip the broadcast section, default 1), ONLY (run only the
# echo scenarios whose label contains this text, e.g. "64 KiB"), BROADCAST_SUBS
# (space-separated subscriber counts, default "1000 10000"; "1000" for a
# quick run), BROADCAST_THREADS (space-separated thread counts every
# broadcast server runs with, default "1 $(nproc)"), BROADCAST_MESSAGES (default 1000), BROADCAST_WINDOW (default
# 16), BROADCAST_SIZE (default 64), BROADCAST_TIMEOUT (seconds per run,
# default 300), SOURCES (subscriber source addresses, FIRST-LAST in one /24,
# default 127.0.0.2-127.0.0.9; empty: the system's choice), BASE_PORT
# (default 19101).
#
# Not a test. All traffic stays on 127.0.0.x; every wait is bounded.
set -euo pipefail

SECS=${1:-2}
IDLE=${IDLE:-2000}
BENCH_DRIVER=${BENCH_DRIVER:-mio}
THREADS=${SERVER_THREADS:-$(nproc)}
BASE_PORT=${BASE_PORT:-19101}
REPEAT=${REPEAT:-3}
FRAGMENTS=${FRAGMENTS:-0}
BROADCAST=${BROADCAST:-1}
BROADCAST_SUBS=${BROADCAST_SUBS:-1000 10000}
BROADCAST_THREADS=${BROADCAST_THREADS:-1 $(nproc)}
BROADCAST_MESSAGES=${BROADCAST_MESSAGES:-1000}
BROADCAST_WINDOW=${BROADCAST_WINDOW:-16}
BROADCAST_SIZE=${BROADCAST_SIZE:-64}
BROADCAST_TIMEOUT=${BROADCAST_TIMEOUT:-300}
BROADCAST_DEFLATE=${BROADCAST_DEFLATE:-1}
SOURCES=${SOURCES-127.0.0.2-127.0.0.9}
TCP_CC=${TCP_CC:-}
CC_FILE=/proc/sys/net/ipv4/tcp_congestion_control
OLD_CC=$(cat "$CC_FILE" 2>/dev/null || echo unknown)
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MAIN_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PEERS_TARGET=${PEERS_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/benches/peers/target}}
WORK=$(mktemp -d /tmp/peers.XXXXXX)

# One descriptor per connection in the load generator and in the server
# (both inherit the limit): the largest subscriber count, plus slack.
max_subs=0
for n in $BROADCAST_SUBS; do [ "$n" -gt "$max_subs" ] && max_subs=$n; done
want_fds=$(( (IDLE > max_subs ? IDLE : max_subs) + 1024 ))
if [ "$(ulimit -n)" -lt "$want_fds" ]; then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
# --source list: FIRST-LAST (one /24) expanded, comma-separated.
SOURCE_ARGS=
if [ -n "$SOURCES" ]; then
    first=${SOURCES%-*}
    last=${SOURCES#*-}
    prefix=${first%.*}
    list=
    for x in $(seq "${first##*.}" "${last##*.}"); do list="$list${list:+,}$prefix.$x"; done
    SOURCE_ARGS="--source $list"
fi

echo "== building (release)" >&2
CARGO_TARGET_DIR=$MAIN_TARGET nice -n 5 cargo build --release -q -p ws-cli --bin wsx -p ws-mio --example load_client
(cd benches/peers && CARGO_TARGET_DIR=$PEERS_TARGET nice -n 5 cargo build --release -q --locked)
WSX=$MAIN_TARGET/release/wsx
LOAD=$MAIN_TARGET/release/examples/load_client
PB=$PEERS_TARGET/release

# name | supports permessage-deflate | command (ADDR is replaced)
SERVERS=(
    "ws-mio|yes|$WSX serve ADDR --driver mio --threads $THREADS --quiet --max-message 4194304 --max-connections 100000"
    "ws-mio-32767|yes|$WSX serve ADDR --driver mio --threads $THREADS --quiet --max-message 4194304 --max-connections 100000 --fragment-size 32767"
    "ws-tokio|yes|$WSX serve ADDR --driver tokio --threads $THREADS --quiet --max-message 4194304 --max-connections 100000"
    "ws-std|yes|$WSX serve ADDR --driver std --quiet --max-message 4194304 --max-connections 100000"
    "tungstenite|no|$PB/tungstenite_echo ADDR"
    "tokio-tungstenite|no|$PB/tokio_tungstenite_echo ADDR"
    "fastwebsockets|no|$PB/fastwebsockets_echo ADDR"
    "tokio-websockets|no|$PB/tokio_websockets_echo ADDR"
    "yawc|no|$PB/yawc_echo ADDR"
)
# Peers, for the "best peer" column.
PEERS=(tungstenite tokio-tungstenite fastwebsockets tokio-websockets yawc)
# Broadcast rooms: name | command (ADDR and THREADS are replaced). Every
# one relays each message to the other clients. Each runs once per thread
# count in $BROADCAST_THREADS (event loops, or tokio workers: the room reads
# TOKIO_WORKER_THREADS), and the ratios compare each server at its best.
BSERVERS=(
    "ws-mio|$WSX serve ADDR --driver mio --broadcast --threads THREADS --quiet --no-deflate --max-connections 100000"
    "ws-tokio|$WSX serve ADDR --driver tokio --broadcast --threads THREADS --quiet --no-deflate --max-connections 100000"
    "tokio-tungstenite room|env TOKIO_WORKER_THREADS=THREADS $PB/tokio_tungstenite_room ADDR"
)
# The same rooms with permessage-deflate (BROADCAST_DEFLATE=1), one thread.
DSERVERS=(
    "ws-mio|$WSX serve ADDR --driver mio --broadcast --threads 1 --quiet --max-connections 100000"
    "ws-tokio|$WSX serve ADDR --driver tokio --broadcast --threads 1 --quiet --max-connections 100000"
)
# label | wsx bench arguments
SCENARIOS=(
    "100 conns × 16 B, window 16|--conns 100 --size 16 --window 16"
    "10 conns × 1 KiB, window 16|--conns 10 --size 1024 --window 16"
    "2 conns × 1 MiB, window 4|--conns 2 --size 1048576 --window 4"
    "1 conn × 64 KiB, window 16|--conns 1 --size 65536 --window 16"
)

# ONLY: run only the scenarios whose label contains it (say ONLY="64 KiB").
if [ -n "${ONLY:-}" ]; then
    kept=()
    for sc in "${SCENARIOS[@]}"; do [[ "${sc%%|*}" == *"$ONLY"* ]] && kept+=("$sc"); done
    SCENARIOS=("${kept[@]}")
fi

# label | extra wsx bench arguments: the frames the load generator sends.
FRAMINGS=("1 frame|")
[ "$FRAGMENTS" = 1 ] && FRAMINGS+=("32767-byte fragments|--fragment-size 32767")

# size_of ARGS: the --size value in a scenario's arguments.
size_of() { awk '{for (i = 1; i < NF; i++) if ($i == "--size") print $(i + 1)}' <<<"$1"; }

declare -A PID PORT
cleanup() {
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
        wait "${PID[$name]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
    if [ -n "$TCP_CC" ] && [ "$OLD_CC" != unknown ]; then
        echo "$OLD_CC" >"$CC_FILE" 2>/dev/null || true
    fi
}
trap cleanup EXIT
if [ -n "$TCP_CC" ]; then
    if ! echo "$TCP_CC" >"$CC_FILE" 2>/dev/null; then
        echo "== TCP_CC=$TCP_CC: cannot write $CC_FILE (root needed, and the module loaded: see $CC_FILE's neighbour tcp_available_congestion_control)" >&2
        exit 1
    fi
fi

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
# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

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

# One broadcast run; prints "deliveries/s echoes" or "err" (with the
# reason on stderr).
bench_broadcast() {
    local port=$1 subs=$2 extra=${3:-} out
    # shellcheck disable=SC2086
    if out=$(timeout $((BROADCAST_TIMEOUT + 30)) "$WSX" bench "ws://127.0.0.1:$port/" --broadcast \
        --subscribers "$subs" --messages "$BROADCAST_MESSAGES" --size "$BROADCAST_SIZE" \
        --window "$BROADCAST_WINDOW" --timeout "$BROADCAST_TIMEOUT" $SOURCE_ARGS $extra \
        --csv --quiet 2>"$WORK/bench.err"); then
        echo "$out" | awk -F, '/^csv,/ {print $7, $15}'
    else
        echo "  broadcast bench failed ($subs subscribers): $(echo "$out" | grep '^csv,' || true) $(head -c 300 "$WORK/bench.err")" >&2
        echo "err"
    fi
}

declare -A RESULT MEM DEFLATE ECHOES CPU
NAMES=()
BNAMES=()
DNAMES=()
# start KEY WHAT CMD: runs CMD (ADDR replaced by the next port) as server
# KEY; returns 1 (with WHAT in the message) if it does not listen.
i=0
start() {
    local key=$1 what=$2 cmd=$3 port=$((BASE_PORT + i))
    i=$((i + 1))
    # shellcheck disable=SC2086
    ${cmd//ADDR/127.0.0.1:$port} >"$WORK/s$i.out" 2>"$WORK/s$i.err" &
    PID[$key]=$!
    if ! wait_port "$port"; then
        echo "== $what did not start: $(head -c 300 "$WORK/s$i.err")" >&2
        return 1
    fi
    PORT[$key]=$port
}

# Every server runs from the start (idle ones cost nothing), so the rounds
# below can interleave them: slow drifts of the shared machine then hit
# every server alike.
for s in "${SERVERS[@]}"; do
    IFS='|' read -r name deflate cmd <<<"$s"
    start "$name" "$name" "$cmd" || continue
    DEFLATE[$name]=$deflate
    NAMES+=("$name")
done
if [ "$BROADCAST" = 1 ]; then
    for s in "${BSERVERS[@]}"; do
        IFS='|' read -r bname cmd <<<"$s"
        for t in $BROADCAST_THREADS; do
            start "b:$bname@$t" "$bname@$t (broadcast)" "${cmd//THREADS/$t}" && BNAMES+=("$bname@$t")
        done
    done
    if [ "$BROADCAST_DEFLATE" = 1 ]; then
        for s in "${DSERVERS[@]}"; do
            IFS='|' read -r name cmd <<<"$s"
            start "d:$name" "$name (broadcast, deflate)" "$cmd" && DNAMES+=("$name")
        done
    fi
fi

# Idle memory first, on every fresh process (IDLE=0: skipped).
for name in "${NAMES[@]}"; do
    [ "$IDLE" -gt 0 ] || break
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

# keep_least KEY VALUE: CPU[KEY] = the smaller of the two ("-" loses).
keep_least() {
    local old=${CPU["$1"]:-}
    if [ -z "$old" ] || [ "$old" = - ]; then
        CPU["$1"]=$2
    elif [ "$2" != - ] && awk -v a="$2" -v b="$old" 'BEGIN { exit !(a < b) }'; then
        CPU["$1"]=$2
    fi
}

# cpu_per_message T0 T1 RATE: the server's CPU microseconds per echoed message
# over one run of SECS seconds ("-" when nothing was echoed).
cpu_per_message() {
    awk -v t0="$1" -v t1="$2" -v r="$3" -v s="$SECS" -v tck="$TCK" 'BEGIN {
        if (r ~ /^[0-9]+$/ && r > 0) printf "%.2f", (t1 - t0) * 1e6 / tck / (r * s); else printf "-" }'
}

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
        for fr in "${FRAMINGS[@]}"; do
            IFS='|' read -r frames fargs <<<"$fr"
            # Fragments change nothing for messages that fit in one.
            [ -n "$fargs" ] && [ "$(size_of "$args")" -le 32767 ] && continue
            for d in off on; do
                for name in "${NAMES[@]}"; do
                    [ "$d" = on ] && [ "${DEFLATE[$name]}" != yes ] && continue
                    extra=$fargs
                    [ "$d" = on ] && extra="$extra --deflate"
                    t0=$(cpu_ticks "${PID[$name]}")
                    r=$(bench "${PORT[$name]}" "$args $extra")
                    t1=$(cpu_ticks "${PID[$name]}")
                    keep_best "$name|$label|$frames|$d" "$r"
                    keep_least "$name|$label|$frames|$d" "$(cpu_per_message "$t0" "$t1" "$r")"
                    echo "  round $round, $label, $frames, deflate $d, $name: $r msg/s" >&2
                done
            done
        done
    done
    for subs in $BROADCAST_SUBS; do
        for name in "${BNAMES[@]}"; do
            r=$(bench_broadcast "${PORT[b:$name]}" "$subs")
            read -r rate echoes <<<"$r"
            keep_best "b|$name|$subs" "$rate"
            [ -n "${echoes:-}" ] && ECHOES["$name"]=$echoes
            echo "  round $round, broadcast, $subs subscribers, $name: $rate deliveries/s (echoes to the publisher: ${echoes:-?})" >&2
        done
        for name in "${DNAMES[@]}"; do
            r=$(bench_broadcast "${PORT[d:$name]}" "$subs" --deflate)
            read -r rate _ <<<"$r"
            keep_best "d|$name|$subs" "$rate"
            echo "  round $round, broadcast with deflate, $subs subscribers, $name: $rate deliveries/s" >&2
        done
    done
done

# ratio A B: A / B with two decimals, or "–".
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "–" }'
}
cell() { echo "${RESULT["$1"]:-–}"; }

# best_peer LABEL FRAMES D: "value|name" of the fastest peer.
best_peer() {
    local best=- who=- v
    for p in "${PEERS[@]}"; do
        v=${RESULT["$p|$1|$2|$3"]:-}
        if [[ "$v" =~ ^[0-9]+$ ]] && { [ "$best" = - ] || [ "$v" -gt "$best" ]; }; then
            best=$v who=$p
        fi
    done
    echo "$best|$who"
}

echo
echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr), $(rustc --version)"
echo "TCP congestion control during the run: $(cat "$CC_FILE" 2>/dev/null || echo unknown) (machine default: $OLD_CC); qdisc on lo: $(ip link show lo 2>/dev/null | sed -n 's/.* qdisc \([^ ]*\).*/\1/p' | head -n 1)"
echo "Command: ${TCP_CC:+TCP_CC=$TCP_CC }scripts/peers.sh $SECS (wsx bench --driver $BENCH_DRIVER, ${SECS} s per run, best of $REPEAT interleaved rounds; servers with $THREADS threads/loops where they have a choice; load generator and server share the machine)"
echo
echo "Messages/s (echoed, counted by the load generator). Ratios = ours / peer (ws-std / tungstenite: the two thread-per-connection servers): > 1 means ours is ahead. Best peer: the fastest of tungstenite, tokio-tungstenite, fastwebsockets, tokio-websockets and yawc in that row."
echo
echo "| scenario | frames sent | deflate | ws-mio | ws-mio, echoes in 32767-byte frames | ws-tokio | ws-std | tungstenite | tokio-tungstenite | fastwebsockets | tokio-websockets | yawc | best peer | ws-mio / best peer | ws-tokio / best peer | ws-mio / tokio-tungstenite | ws-tokio / tokio-tungstenite | ws-std / tungstenite |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
for d in off on; do
    for sc in "${SCENARIOS[@]}"; do
        IFS='|' read -r label args <<<"$sc"
        for fr in "${FRAMINGS[@]}"; do
            IFS='|' read -r frames fargs <<<"$fr"
            [ -n "$fargs" ] && [ "$(size_of "$args")" -le 32767 ] && continue
            k="$label|$frames|$d"
            m=$(cell "ws-mio|$k")
            m1=$(cell "ws-mio-32767|$k")
            tk=$(cell "ws-tokio|$k")
            st=$(cell "ws-std|$k")
            t=$(cell "tungstenite|$k")
            tt=$(cell "tokio-tungstenite|$k")
            f=$(cell "fastwebsockets|$k")
            tw=$(cell "tokio-websockets|$k")
            y=$(cell "yawc|$k")
            IFS='|' read -r bp bpn <<<"$(best_peer "$label" "$frames" "$d")"
            bcell="$bp ($bpn)"
            if [ "$d" = on ]; then t="n/a"; tt="n/a"; f="n/a"; tw="n/a"; y="n/a"; bcell="n/a"; bp=n/a; fi
            echo "| $label | $frames | $d | $m | $m1 | $tk | $st | $t | $tt | $f | $tw | $y | $bcell | $(ratio "$m" "$bp") | $(ratio "$tk" "$bp") | $(ratio "$m" "$tt") | $(ratio "$tk" "$tt") | $(ratio "$st" "$t") |"
        done
    done
done
echo
echo "frames sent: what the load generator sends (1 frame: every message as one frame, as browsers do; 32767-byte fragments: wsx bench --fragment-size 32767, with FRAGMENTS=1). ws-mio, ws-tokio and ws-std echo with a server's default fragment size (every message as one frame, as the peers send it); "ws-mio, echoes in 32767-byte frames": the same ws-mio server with --fragment-size 32767 (the client's default), which measures what fragmenting costs a server's peers."
echo
echo "Server CPU per echoed message, in microseconds (user + system time of the server process over the run, from /proc, divided by the messages it echoed; least of $REPEAT rounds; lower is better). This is the servers' cost, whatever the load generator's own limits: where every server is held back by the same client (large messages on 2 shared cores), the messages/s table shows parity and this one shows who spends less. Ratios = peer / ours: > 1 means ours spends less."
echo
echo "| scenario | frames sent | ws-mio | ws-tokio | ws-std | tungstenite | tokio-tungstenite | fastwebsockets | tokio-websockets | yawc | least of the peers | least peer / ws-mio | least peer / ws-tokio |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
for sc in "${SCENARIOS[@]}"; do
    IFS='|' read -r label args <<<"$sc"
    for fr in "${FRAMINGS[@]}"; do
        IFS='|' read -r frames fargs <<<"$fr"
        [ -n "$fargs" ] && [ "$(size_of "$args")" -le 32767 ] && continue
        k="$label|$frames|off"
        least=- who=-
        for p in "${PEERS[@]}"; do
            v=${CPU["$p|$k"]:--}
            if [ "$v" != - ] && { [ "$least" = - ] || awk -v a="$v" -v b="$least" 'BEGIN { exit !(a < b) }'; }; then
                least=$v who=$p
            fi
        done
        c() { echo "${CPU["$1|$k"]:-–}"; }
        echo "| $label | $frames | $(c ws-mio) | $(c ws-tokio) | $(c ws-std) | $(c tungstenite) | $(c tokio-tungstenite) | $(c fastwebsockets) | $(c tokio-websockets) | $(c yawc) | $least ($who) | $(ratio "$least" "$(c ws-mio)") | $(ratio "$least" "$(c ws-tokio)") |"
    done
done
echo
echo "n/a: the peer has no permessage-deflate here (tungstenite and tokio-tungstenite 0.30 have no deflate feature; fastwebsockets and tokio-websockets have none; yawc has one, but its echo server runs as its example does, without it)."
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

if [ "$BROADCAST" = 1 ]; then
    echo
    echo "Broadcast: deliveries/s (one publisher, $BROADCAST_MESSAGES binary messages of $BROADCAST_SIZE bytes, no deflate, at most $BROADCAST_WINDOW not yet at every subscriber; each subscriber must get every message, in order, once; from the first publish to the last delivery; one ws-mio event loop drives every client connection; best of $REPEAT rounds). Ratios: ours / tokio-tungstenite room."
    echo
    # best_of SERVER SUBS: "value|threads" of the server's best thread count.
    best_of() {
        local best=- at=- v
        for t in $BROADCAST_THREADS; do
            v=${RESULT["b|$1@$t|$2"]:-}
            if [[ "$v" =~ ^[0-9]+$ ]] && { [ "$best" = - ] || [ "$v" -gt "$best" ]; }; then
                best=$v at=$t
            fi
        done
        echo "$best|$at"
    }
    head="| subscribers |"
    rule="|---:|"
    for s in "${BSERVERS[@]}"; do
        IFS='|' read -r bname _ <<<"$s"
        for t in $BROADCAST_THREADS; do head="$head $bname, $t thread(s) |"; rule="$rule---:|"; done
    done
    echo "$head ws-mio best / room best | ws-tokio best / room best |"
    echo "$rule---:|---:|"
    for subs in $BROADCAST_SUBS; do
        row="| $subs |"
        for s in "${BSERVERS[@]}"; do
            IFS='|' read -r bname _ <<<"$s"
            for t in $BROADCAST_THREADS; do row="$row $(cell "b|$bname@$t|$subs") |"; done
        done
        IFS='|' read -r m mt <<<"$(best_of ws-mio "$subs")"
        IFS='|' read -r tk tkt <<<"$(best_of ws-tokio "$subs")"
        IFS='|' read -r r rt <<<"$(best_of "tokio-tungstenite room" "$subs")"
        echo "$row $(ratio "$m" "$r") ($mt vs $rt) | $(ratio "$tk" "$r") ($tkt vs $rt) |"
    done
    echo
    echo "Thread counts: wsx serve --broadcast --no-deflate --threads N (mio: N event loops; tokio: N workers); tokio_tungstenite_room: tokio::sync::broadcast, #[tokio::main] with TOKIO_WORKER_THREADS=N. The load generator shares the $(nproc) CPUs: a server that needs fewer threads leaves it more. Ratios: each server at its best thread count (in brackets: ours vs the room's)."
    echo
    echo -n "Messages the server relayed back to the publisher (not counted as deliveries; last run):"
    for name in "${BNAMES[@]}"; do echo -n " $name ${ECHOES[$name]:-?};"; done
    echo " (of $BROADCAST_MESSAGES)."
    if [ "${#DNAMES[@]}" -gt 0 ]; then
        echo
        echo "Broadcast with permessage-deflate (the same benchmark; the subscribers offer deflate, the server answers server_no_context_takeover, so each message is compressed once for all subscribers; one loop / worker; best of $REPEAT rounds). The tokio-tungstenite room has no deflate: its column is its best without, for scale."
        echo
        echo "| subscribers | ws-mio, deflate | ws-tokio, deflate | tokio-tungstenite room, no deflate (best) | ws-mio deflate / room | ws-tokio deflate / room |"
        echo "|---:|---:|---:|---:|---:|---:|"
        for subs in $BROADCAST_SUBS; do
            IFS='|' read -r r _ <<<"$(best_of "tokio-tungstenite room" "$subs")"
            m=$(cell "d|ws-mio|$subs")
            tk=$(cell "d|ws-tokio|$subs")
            echo "| $subs | $m | $tk | $r | $(ratio "$m" "$r") | $(ratio "$tk" "$r") |"
        done
    fi
fi
