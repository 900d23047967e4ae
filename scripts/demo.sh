#!/usr/bin/env bash
# The demo (README "Run the demo"): `wsx serve` and a `wsx connect` against it,
# both via cargo run, on loopback. The client sends three lines, prints the
# echoes, closes with 1000 and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-9001}"
cargo build --quiet -p ws-cli
READY="$(mktemp)"
cargo run --quiet -p ws-cli -- serve "127.0.0.1:${PORT}" | tee "$READY" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; pkill -P "$$" wsx 2>/dev/null || true; rm -f "$READY"' EXIT
for _ in $(seq 1 100); do
  grep -q listening "$READY" && break
  sleep 0.1
done
printf 'hello\nfrom wsx connect\nover permessage-deflate\n' |
  cargo run --quiet -p ws-cli -- connect "ws://127.0.0.1:${PORT}/demo"
