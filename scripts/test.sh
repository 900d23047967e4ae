#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls exactly this).
# Formatting, lints (including ws-proto's sans-IO fence in crates/ws-proto/clippy.toml),
# docs without warnings, then every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors; ws-proto must not touch sockets, threads or clocks)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== cargo test"
cargo test --workspace --locked
echo "== Autobahn TestSuite, quick subset, both roles x both drivers (scripts/autobahn.sh --quick)"
./scripts/autobahn.sh --quick --debug
