#!/usr/bin/env bash
# The demo (README "Run the demo"): builds wsx, starts `wsx serve` (echo
# server, ws-mio driver) on a free loopback port, runs `wsx connect` against
# it (three text messages over permessage-deflate, then a normal close),
# labels every line with who printed it and ends with a one-line verdict:
# "demo: OK ..." and exit 0, or "demo: FAILED ..." and exit 1.
#
# Environment:
#   PORT=N   listen on 127.0.0.1:N instead of a free port the system picks;
#            if N is taken the demo stops at once (it never talks to a
#            server it did not start).
#   WSX=path use this wsx binary instead of building one (tests use it).
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf 'demo: %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  exit 1
}

PORT="${PORT:-0}"
case "$PORT" in
  '' | *[!0-9]*) fail "PORT must be a number, not '$PORT'" ;;
esac

if [ -z "${WSX:-}" ]; then
  say "building wsx (cargo build -p ws-cli): about a minute on a fresh clone, seconds after that"
  cargo build -p ws-cli 2>&1 | sed -u 's/^/[build]  /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "the build failed (see the [build] lines above)"
  WSX="${CARGO_TARGET_DIR:-target}/debug/wsx"
fi
[ -x "$WSX" ] || fail "no wsx binary at $WSX"

DIR="$(mktemp -d)"
SERVER=""
SERVER_LOG=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  [ -n "$SERVER_LOG" ] && wait "$SERVER_LOG" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT

# The server: its announcement on stdout (read here for the URL), its log
# on stderr (shown live, labelled).
mkfifo "$DIR/server.err"
sed -u 's/^/[server] /' <"$DIR/server.err" &
SERVER_LOG=$!
say "starting the echo server: wsx serve 127.0.0.1:${PORT}"
"$WSX" serve "127.0.0.1:${PORT}" >"$DIR/server.out" 2>"$DIR/server.err" &
SERVER=$!

# Wait for the listening line (at most 20 s), or for the server to exit.
URL=""
for _ in $(seq 1 200); do
  URL="$(sed -n 's/^wsx: listening on //p' "$DIR/server.out" | head -n 1)"
  [ -n "$URL" ] && break
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$URL" ]; then
  if kill -0 "$SERVER" 2>/dev/null; then
    fail "the server did not start listening within 20 s"
  fi
  wait "$SERVER" 2>/dev/null
  SERVER=""
  fail "the server could not listen on 127.0.0.1:${PORT} (taken? PORT=0, the default, picks a free port)"
fi
say "the server listens on $URL"

say "connecting: wsx connect $URL/demo, sending 3 lines, then closing (1000)"
LINES=$'hello\nfrom wsx connect\nover permessage-deflate'
printf '%s\n' "$LINES" | "$WSX" connect "$URL/demo" 2>&1 | tee "$DIR/client.log" | sed -u 's/^/[client] /'
CODE="${PIPESTATUS[1]}"

# The verdict: a normal close (exit 0), every line echoed, deflate agreed.
[ "$CODE" -eq 0 ] || fail "wsx connect exited with $CODE"
while IFS= read -r line; do
  grep -qxF -- "$line" "$DIR/client.log" || fail "the echo of '$line' never came back"
done <<<"$LINES"
grep -q 'extensions permessage-deflate' "$DIR/client.log" ||
  fail "permessage-deflate was not negotiated"
grep -q 'closed: 1000 (normal closure)' "$DIR/client.log" ||
  fail "the connection did not close with 1000"
say "OK: 3 messages echoed over permessage-deflate, closed with 1000 (normal closure)"
