#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls exactly this).
# Formatting, lints (including ws-proto's sans-IO fence in crates/ws-proto/clippy.toml),
# docs without warnings, every test in the workspace (the hostile-peer suites
# included), then the short forms of the slow suites: fuzzing (10 s per
# target) and the Autobahn TestSuite's quick subset.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors; ws-proto must not touch sockets, threads or clocks)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked --quiet
echo "== cargo deny check licenses bans sources (installs cargo-deny if missing; the advisory database cannot be fetched here, see deny.toml)"
if ! cargo deny --version >/dev/null 2>&1; then
  cargo install cargo-deny --locked --quiet
fi
cargo deny --log-level error check licenses bans sources
echo "== real peers the tests need (installed when missing): node (HTTP/2 interop with Node's http2 module)"
if ! command -v node >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq nodejs
  else
    echo "node is missing and apt-get is not available: install Node.js (the HTTP/2 interop tests need it)" >&2
  fi
fi
echo "== cargo test"
cargo test --workspace --all-features --locked
echo "== fuzzing, short form: every cargo-fuzz target for 10 s (scripts/fuzz.sh 10; installs cargo-fuzz if missing, needs the nightly toolchain)"
./scripts/fuzz.sh 10
echo "== Autobahn TestSuite, quick subset, both roles x every driver: std, mio, tokio (scripts/autobahn.sh --quick)"
./scripts/autobahn.sh --quick --debug
