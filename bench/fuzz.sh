#!/usr/bin/env bash
# A long fuzzing campaign over every parser of outside input: each property test (`prop_*` in the
# library's unit tests — sanitiser, text decoding, classify CSV/TSV/JSONL input, prompt TOML,
# config, session files, the GGUF header reader, JSON extraction and the JSON closer) runs with
# CASES random cases (default 1,000,000) instead of CI's fixed 256. Writes a table to
# bench/results/fuzz-<UTC time>.txt and prints it.
#
#   bench/fuzz.sh                 # 1 M cases per property
#   CASES=20000 bench/fuzz.sh     # a quick run
#   bench/fuzz.sh prop_gguf       # only the properties whose name contains this
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${CASES:-1000000}
FILTER=${1:-prop_}
mkdir -p bench/results
out="bench/results/fuzz-$(date -u +%Y%m%dT%H%M%SZ).txt"

cargo test --release --lib --no-run --locked 2>/dev/null
mapfile -t tests < <(cargo test --release --lib --locked -q -- --list 2>/dev/null | sed -n 's/: test$//p' | grep -- "$FILTER" | grep 'prop_')
if ((${#tests[@]} == 0)); then
  echo "no property tests match $FILTER" >&2
  exit 2
fi

{
  echo "# moat fuzz campaign: $(date -u +%Y-%m-%dT%H:%M:%SZ), $CASES cases per property, $(nproc) cores, commit $(git rev-parse --short HEAD)"
  printf '%-72s %12s %10s %s\n' "property" "cases" "seconds" "result"
} | tee "$out"
failed=0
for t in "${tests[@]}"; do
  start=$(date +%s.%N)
  if PROPTEST_CASES=$CASES PROPTEST_MAX_SHRINK_ITERS=100000 cargo test --release --lib --locked -q -- --exact "$t" \
    >"/tmp/moat-fuzz-$$.log" 2>&1; then
    result=passed
  else
    result="FAILED (see below)"
    failed=$((failed + 1))
  fi
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  printf '%-72s %12s %10.1f %s\n' "$t" "$CASES" "$secs" "$result" | tee -a "$out"
  if [ "$result" != passed ]; then
    grep -E -A3 "minimal failing input|Test aborted|Test failed" "/tmp/moat-fuzz-$$.log" | head -8 | tee -a "$out"
  fi
done
rm -f "/tmp/moat-fuzz-$$.log"
echo "$((${#tests[@]} - failed)) passed, $failed failed" | tee -a "$out"
exit $((failed > 0))
