#!/usr/bin/env bash
# The demo (README "Run the demo"): an echo server and a client on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p ws-proto --examples
PORT="${PORT:-9001}"
./target/debug/examples/proto_server "127.0.0.1:${PORT}" 1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
./target/debug/examples/proto_client "127.0.0.1:${PORT}"
wait "$SERVER"
