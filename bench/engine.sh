#!/usr/bin/env bash
# Engine benchmark for the two PyPI models at 1 and 2 threads: load time, prompt processing
# (512 tokens), generation (128 tokens), time to first token, and moat's overhead over llama.cpp's
# own timings. Medians of REPS runs, all measured in this one run. Results: bench/results/engine-*.txt
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
THREADS=${THREADS:-1,2}
cargo build --release --locked -q
out=bench/results
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
for model in smollm2-135m gemma3-270m; do
  ./target/release/moat models pull "$model"
  ./target/release/moat bench -m "$model" --threads-list "$THREADS" -r "$REPS" | tee "$out/engine-$model-$stamp.txt"
done
