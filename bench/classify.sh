#!/usr/bin/env bash
# Classifier benchmark on the labelled sets in ../shared/data/sentiment (never copied into this
# repo): accuracy of the default method on each set, and naive vs batched throughput, all on
# THREADS threads in this one run. Results: bench/results/classify-<stamp>.txt
#   DATA=path/to/sentiment THREADS=2 bench/classify.sh            # everything (about 20 min on 2 cores)
#   QUICK=1 bench/classify.sh                                     # first 100 lines of each set
#   NATIVE=/tmp/minilm-sentiment.gguf bench/classify.sh           # also a native classifier GGUF
#                                                                 # (make one: bench/native-classifier/)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/sentiment}
THREADS=${THREADS:-2}
[ -d "$DATA" ] || { echo "no data at $DATA; set DATA=" >&2; exit 2; }
cargo build --release --locked -q
export MOAT_MODEL_THREADS=$THREADS MOAT_MODEL_THREADS_BATCH=$THREADS
moat=./target/release/moat
$moat models pull gemma3-270m >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
limit() { if [ -n "${QUICK:-}" ]; then head -n 101; else cat; fi; }

# Balanced, interleaved samples where a file is sorted by label.
python3 - "$DATA" "$tmp" <<'EOF'
import sys
data, tmp = sys.argv[1], sys.argv[2]
def rows(name):
    return [l for l in open(f"{data}/{name}", encoding="utf-8").read().split("\n")[1:] if l]
def interleave(a, b):
    return [x for pair in zip(a, b) for x in pair]
imdb = rows("imdb_reviews_1000.tsv")
pos = [r for r in imdb if r.startswith("positive\t")]
neg = [r for r in imdb if r.startswith("negative\t")]
open(f"{tmp}/imdb_reviews_200.tsv", "w").write("label\ttext\n" + "\n".join(interleave(pos[300:400], neg[300:400])) + "\n")
for name in ["uci_yelp_sentences.tsv", "uci_amazon_sentences.tsv", "uci_imdb_sentences.tsv"]:
    r = rows(name)
    p = [x for x in r if x.startswith("positive\t")]
    n = [x for x in r if x.startswith("negative\t")]
    open(f"{tmp}/{name}", "w").write("label\ttext\n" + "\n".join(interleave(p, n)[:300]) + "\n")
zh = rows("online_shopping_10_cats_sample2000.tsv")
open(f"{tmp}/zh_pool.tsv", "w").write("label\ttext\n" + "\n".join(zh[:1000]) + "\n")
open(f"{tmp}/zh_heldout.tsv", "w").write("label\ttext\n" + "\n".join(zh[1000:1300]) + "\n")
EOF

out=bench/results
mkdir -p "$out"
report="$out/classify-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "# moat classify, default method, $THREADS threads, $(date -u)"
  run() { # name, file, extra args
    local name=$1 file=$2; shift 2
    echo "## $name"
    limit <"$file" >"$tmp/in.tsv"
    /usr/bin/time -f "wall %e s, max RSS %M KB" $moat classify --eval "$@" "$tmp/in.tsv" 2>&1
    echo
  }
  run "SST-2 dev" "$DATA/sst2_dev.tsv"
  run "UCI Yelp (300, balanced)" "$tmp/uci_yelp_sentences.tsv"
  run "UCI Amazon (300, balanced)" "$tmp/uci_amazon_sentences.tsv"
  run "UCI IMDb sentences (300, balanced)" "$tmp/uci_imdb_sentences.tsv"
  run "IMDb reviews (200, balanced), --long chunk" "$tmp/imdb_reviews_200.tsv"
  run "IMDb reviews (200, balanced), --long truncate" "$tmp/imdb_reviews_200.tsv" --long truncate
  run "Chinese held-out (rows 1001-1300), built-in English examples" "$tmp/zh_heldout.tsv"
  run "Chinese held-out (rows 1001-1300), --examples from rows 1-1000" "$tmp/zh_heldout.tsv" --examples "$tmp/zh_pool.tsv"
  echo "## throughput: one at a time (full prompt) vs moat's batched path, first 64 SST-2 lines"
  $moat classify --bench "$DATA/sst2_dev.tsv" --limit 64
  if [ -n "${NATIVE:-}" ]; then
    run "native $NATIVE: SST-2 dev" "$DATA/sst2_dev.tsv" -m "$NATIVE"
    run "native: IMDb reviews (200, balanced), --long chunk" "$tmp/imdb_reviews_200.tsv" -m "$NATIVE"
    run "native: IMDb reviews (200, balanced), --long truncate" "$tmp/imdb_reviews_200.tsv" -m "$NATIVE" --long truncate
    echo "## native throughput, first 200 SST-2 lines"
    $moat classify -m "$NATIVE" --bench "$DATA/sst2_dev.tsv" --limit 200
  fi
} | tee "$report"
echo "wrote $report" >&2
