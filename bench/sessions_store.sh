#!/usr/bin/env bash
# Session database benchmarks (issue 15): appending a turn, and full-text search over 100,000
# generated messages (English and Chinese). They are `#[ignore]`d unit tests that print timings
# and assert none; run on a quiet machine and quote medians from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --lib -- --ignored --nocapture --test-threads 1 append_bench search_bench 2>&1 |
    sed -E 's/^test [^ ]+ \.\.\. //' | grep -E '(append a turn|messages written|hits  median)'
