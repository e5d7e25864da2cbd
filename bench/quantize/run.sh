#!/usr/bin/env bash
# Quantise the default model (SmolLM2-135M-Instruct, Q4_1) to other types with `moat quantize`,
# then measure each file in the same run: prompt processing and generation (`moat bench`, medians
# of -r runs) and perplexity on a short English text (`moat bench --perplexity`, windows of 256
# tokens, second halves scored). A benchmark, not a test: run it on an otherwise idle machine.
#
#   bench/quantize/run.sh                 # Q4_0 and Q8_0, 2 threads
#   TYPES="Q4_0 Q8_0 Q4_K_M" THREADS=4 bench/quantize/run.sh
#
# Prints one TSV row per file: file, type, size bytes, pp512 t/s, tg128 t/s, PPL, PPL stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
MOAT=${MOAT:-target/release/moat}
SRC=${SRC:-$HOME/.local/share/moat/models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${OUT:-${TMPDIR:-/tmp}/moat-quantize-bench}
TEXT=${TEXT:-bench/longdoc/src/en.md}
TYPES=${TYPES:-Q4_0 Q8_0}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
CTX=${CTX:-256}
mkdir -p "$OUT"

files=("$SRC")
for t in $TYPES; do
  f="$OUT/SmolLM2-135M-Instruct.$t.gguf"
  "$MOAT" -t "$THREADS" quantize "$SRC" "$f" --type "$t" --allow-requantize --force --json \
    | jq -r '.result | "quantised \(.from) -> \(.to): \(.tensors) tensors, \(.output_bytes) bytes, \(.seconds * 10 | round / 10) s"' >&2
  files+=("$f")
done

printf 'file\ttype\tbytes\tpp512_tok_s\ttg128_tok_s\tppl\tppl_stderr\n'
for f in "${files[@]}"; do
  speed=$("$MOAT" -m "$f" -t "$THREADS" --threads-batch "$THREADS" bench -r "$REPS" -p 512 -g 128 --json)
  ppl=$("$MOAT" -m "$f" -t "$THREADS" --threads-batch "$THREADS" -c "$CTX" bench --perplexity "$TEXT" --json)
  type=$("$MOAT" -m "$f" models info --json | jq -r '.gguf.file_type')
  printf '%s\t%s\t%s\t%.1f\t%.1f\t%.4f\t%.4f\n' "$(basename "$f")" "$type" "$(stat -c %s "$f")" \
    "$(jq '.results[0].pp_tok_s' <<<"$speed")" "$(jq '.results[0].gen_tok_s' <<<"$speed")" \
    "$(jq '.perplexity.ppl' <<<"$ppl")" "$(jq '.perplexity.ppl * .perplexity.nll_stderr' <<<"$ppl")"
done
