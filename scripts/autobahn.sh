#!/usr/bin/env bash
# Runs the Autobahn TestSuite cases (via the `kosoku` runner from PyPI, in a
# virtualenv this script creates) against wsx in both roles and every driver
# (std, mio, tokio):
#   server role: `wsx serve --driver D`, driven by `kosoku -m fuzzingclient`
#   client role: `wsx connect --echo --driver D` per case, against `kosoku -m fuzzingserver`
# permessage-deflate is on; limits are raised by command-line options only.
#
# Usage: scripts/autobahn.sh [--quick] [--debug] [--roles "server client"] [--drivers "std mio tokio"] [-p N]
#   --quick   a documented subset (every section, fewer cases: see QUICK_INCLUDE below)
#   --debug   use the debug build of wsx (what `cargo test` already built) instead of release
# Prints a summary table (role x driver x counts), compares every case with
# conformance/expected.json (its expectations per role apply to every driver),
# and exits non-zero on any failure or change.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROLES="server client"
DRIVERS="std mio tokio"
PAR=2
QUICK=0
PROFILE=release
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --debug) PROFILE=debug ;;
    --roles) ROLES="$2"; shift ;;
    --drivers) DRIVERS="$2"; shift ;;
    -p) PAR="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
# The quick subset (CI): all of sections 1-7 and 10 (protocol behaviour: framing,
# pings, reserved bits and opcodes, fragmentation, UTF-8, close handling), the
# smallest case of the 9.1 (text) and 9.2 (binary) performance groups, the
# finest-fragmented 4 MiB messages of 9.3 (text) and 9.4 (binary) (65,536 fragments
# of 64 bytes: the fragment limit must let them in with default limits), and the
# first case of every 12.x/13.x compression group (every negotiation variant).
# (kosoku matches a pattern as a prefix, so the compression cases are listed one by one.)
QUICK_INCLUDE=(-i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '10.*'
  -i '9.1.1' -i '9.2.1' -i '9.3.1' -i '9.4.1'
  -i '12.1.1' -i '12.2.1' -i '12.3.1' -i '12.4.1' -i '12.5.1'
  -i '13.1.1' -i '13.2.1' -i '13.3.1' -i '13.4.1' -i '13.5.1' -i '13.6.1' -i '13.7.1')

VENV="${AUTOBAHN_VENV:-$ROOT/target/autobahn-venv}"
if [ ! -x "$VENV/bin/kosoku" ]; then
  echo "== creating $VENV and installing kosoku"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check kosoku
fi
KOSOKU="$VENV/bin/kosoku"

echo "== building wsx ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --quiet --release -p ws-cli --locked
else
  cargo build --quiet -p ws-cli --locked
fi
WSX="$ROOT/target/$PROFILE/wsx"
# Only the message limit is raised: every other limit stays at its default
# (frames follow the message limit; the fragment limit only stops floods).
BIG=(--max-message 16777216 --deflate-threshold 0)
OUT="$ROOT/target/autobahn"
rm -rf "$OUT"
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_server_role() {
  local driver="$1" port
  port="$(free_port)"
  "$WSX" serve "127.0.0.1:$port" --driver "$driver" --quiet "${BIG[@]}" >"$OUT/serve-$driver.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 100); do grep -q listening "$OUT/serve-$driver.log" && break; sleep 0.05; done
  local sel=()
  [ "$QUICK" = 1 ] && sel=("${QUICK_INCLUDE[@]}")
  echo "== server role, $driver driver (port $port)"
  (cd "$OUT" && timeout 3000 "$KOSOKU" -m fuzzingclient -p "$PAR" "${sel[@]}" -o "$OUT/server-$driver" "127.0.0.1:$port" >"$OUT/kosoku-server-$driver.log" 2>&1) || true
  kill "$pid" 2>/dev/null || true
  tail -n 1 "$OUT/kosoku-server-$driver.log"
}

run_client_role() {
  local driver="$1" port agent="wsx-$driver"
  port="$(free_port)"
  (cd "$OUT" && exec "$KOSOKU" -m fuzzingserver -o "$OUT/client-$driver" "127.0.0.1:$port" >"$OUT/kosoku-client-$driver.log" 2>&1) &
  local kpid=$!
  PIDS+=("$kpid")
  for _ in $(seq 1 100); do grep -q listening "$OUT/kosoku-client-$driver.log" && break; sleep 0.05; done
  echo "== client role, $driver driver (port $port)"
  local count
  # kosoku may reset this connection right after sending the count: ignore the exit code.
  count="$( (printf '' | timeout 30 "$WSX" connect "ws://127.0.0.1:$port/getCaseCount" --driver "$driver" 2>/dev/null || true) | head -n 1)"
  if ! [[ "$count" =~ ^[0-9]+$ ]]; then
    echo "could not read the case count (got '$count')" >&2
    count=0
  fi
  local ids=()
  if [ "$QUICK" = 1 ]; then
    mapfile -t ids < <(python3 "$ROOT/scripts/autobahn_cases.py" "${QUICK_INCLUDE[@]}")
  else
    mapfile -t ids < <(seq 1 "$count")
  fi
  local n=0
  for i in "${ids[@]}"; do
    timeout 600 "$WSX" connect --echo --driver "$driver" --deflate-client-no-context-takeover "${BIG[@]}" \
      "ws://127.0.0.1:$port/runCase?case=$i&agent=$agent" </dev/null >/dev/null 2>>"$OUT/client-$driver.stderr" || true
    n=$((n + 1))
  done
  printf '' | timeout 60 "$WSX" connect "ws://127.0.0.1:$port/updateReports?agent=$agent" --driver "$driver" >/dev/null 2>&1 || true
  sleep 1
  kill "$kpid" 2>/dev/null || true
  echo "ran $n of $count cases"
}

for role in $ROLES; do
  for driver in $DRIVERS; do
    "run_${role}_role" "$driver"
  done
done

python3 "$ROOT/scripts/autobahn_summary.py" "$OUT" "$ROOT/conformance/expected.json" "$QUICK" $ROLES -- $DRIVERS
