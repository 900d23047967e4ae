#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECS seconds each (default 30) and prints
# executions, exec/s and coverage per target. Installs cargo-fuzz (nightly
# toolchain needed) if missing. Fails on the first crash, assertion failure or
# leak (the input is saved under fuzz/artifacts/TARGET). scripts/test.sh (CI)
# runs it with 10 s per target.
# Usage: scripts/fuzz.sh [SECS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${1:-30}"
shift || true
START=$SECONDS
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
echo "== building the fuzz targets"
cargo +nightly fuzz build
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
mkdir -p corpus
echo "target | seconds | executions | exec/s | coverage (cov) | features (ft)" > fuzz-summary.txt
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  if [ -d "seeds/$t" ]; then cp -n "seeds/$t"/* "corpus/$t/" 2>/dev/null || true; fi
  echo "== fuzzing $t for ${SECS}s"
  log="$(mktemp)"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "FAILED: $t (crash input saved under fuzz/artifacts/$t)"
    exit 1
  fi
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
  last=$(grep -E '#[0-9]+' "$log" | tail -n 1)
  cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | awk '{print $2}')
  ft=$(echo "$last" | grep -oE 'ft: [0-9]+' | awk '{print $2}')
  echo "$t | $SECS | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?}" | tee -a fuzz-summary.txt
  rm -f "$log"
done
echo
cat fuzz-summary.txt
echo "fuzzing took $((SECONDS - START)) s in all (build included)"
