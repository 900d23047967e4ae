#!/usr/bin/env bash
# Runs `cargo test --workspace --locked` RUNS times in a row (default 3) while
# two CPU-burning processes run beside it, the way CI's shared 2-core machine
# may be busy. The burners are started here and stopped by their PIDs (and
# only those) when the script ends, however it ends.
#
# Usage: scripts/test-under-load.sh [RUNS]
# Prints one line per run (exit status, wall time, load average) and a final
# "N passed, M failed" line; exits non-zero if any run failed. Logs of each run
# go to target/test-under-load/run-K.log.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
OUT="target/test-under-load"
mkdir -p "$OUT"
export CARGO_TERM_COLOR=never

echo "== building the tests first (not timed, no burners)"
cargo test --workspace --locked --no-run --quiet

BURNERS=()
stop_burners() {
  for pid in "${BURNERS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${BURNERS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  BURNERS=()
}
trap stop_burners EXIT
for _ in 1 2; do
  # A bounded burner: it ends by itself after an hour even if this script is killed hard.
  timeout 3600 sh -c 'while :; do :; done' &
  BURNERS+=("$!")
done
echo "== two CPU burners running: PIDs ${BURNERS[*]}"

passed=0
failed=0
for k in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  if cargo test --workspace --locked >"$OUT/run-$k.log" 2>&1; then
    status=ok
    passed=$((passed + 1))
  else
    status=FAILED
    failed=$((failed + 1))
  fi
  end=$(date +%s)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  tests=$(grep -E '^test result:' "$OUT/run-$k.log" | awk '{p+=$4; f+=$6} END {printf "%d tests passed, %d failed", p, f}')
  echo "run $k: $status in $((end - start)) s ($tests; load average $load)"
  if [ "$status" = FAILED ]; then
    grep -E '^(test .* FAILED|failures:|---- )' "$OUT/run-$k.log" | head -20 || true
  fi
done
stop_burners
echo "under load: $passed passed, $failed failed"
[ "$failed" = 0 ]
