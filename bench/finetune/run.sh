#!/usr/bin/env bash
# Fine-tuning benchmarks for `moat classify train --encoder` (issue 18's goals table).
# Data: ../shared/data/sentiment (never copied into the repo). Results go to bench/results/
# (not committed). Run on an idle machine: training time is the figure most hurt by noise.
#
#   bench/finetune/run.sh tfns      # minilm-l6 on tfns_train (9,543 lines), eval on tfns_valid
#   bench/finetune/run.sh uci       # minilm-l6 on the 3,000 UCI sentences, 3 epochs (the time goal), eval on SST-2 dev
#   bench/finetune/run.sh freeze    # the same with --freeze 3
#   bench/finetune/run.sh english   # minilm-l6 on UCI + IMDb reviews, SST-2 dev scored every epoch
#   bench/finetune/run.sh zh        # m3e-small on chnsenticorp_train minus a held-out tenth of its
#                                   # distinct texts (duplicates never straddle the split)
#   EPOCHS=1 THREADS=2 bench/finetune/run.sh tfns
set -euo pipefail
cd "$(dirname "$0")/../.."
MOAT=${MOAT:-./target/release/moat}
DATA=${DATA:-../shared/data/sentiment}
OUT=${OUT:-bench/results}
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-3}
mkdir -p "$OUT"
what=${1:-tfns}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log="$OUT/finetune-$what-$stamp.txt"
train() { # $1 = output gguf, rest = args
  local gguf=$1; shift
  /usr/bin/time -f "wall %e s, user %U s, max RSS %M KB" \
    "$MOAT" classify train "$@" -o "$gguf" --epochs "$EPOCHS" --threads "$THREADS" --json
}
evaluate() { "$MOAT" -m "$1" classify --eval "$2" --threads "$THREADS"; }
case $what in
  tfns)
    train /tmp/moat-ft-tfns.gguf --encoder minilm-l6 "$DATA/tfns_train.tsv" --holdout 0.05 \
      --eval-file "$DATA/tfns_valid.tsv"
    evaluate /tmp/moat-ft-tfns.gguf "$DATA/tfns_valid.tsv" ;;
  english)
    # every English binary set but SST-2 (the test); IMDb's <br /> breaks become spaces
    tmp=$(mktemp --suffix=.tsv)
    { printf 'label\ttext\n'; for f in uci_yelp_sentences uci_amazon_sentences uci_imdb_sentences imdb_reviews_1000; do
        tail -n +2 "$DATA/$f.tsv"; done; } | sed 's|<br */>| |g' > "$tmp"
    train /tmp/moat-ft-en.gguf --encoder minilm-l6 "$tmp" --holdout 0.1 --eval-file "$DATA/sst2_dev.tsv" \
      ${FREEZE:+--freeze $FREEZE}
    evaluate /tmp/moat-ft-en.gguf "$DATA/sst2_dev.tsv"
    rm -f "$tmp" ;;
  uci|freeze)
    tmp=$(mktemp --suffix=.tsv)
    { printf 'label\ttext\n'; for f in yelp amazon imdb; do tail -n +2 "$DATA/uci_${f}_sentences.tsv"; done; } > "$tmp"
    extra=(); [ "$what" = freeze ] && extra=(--freeze 3)
    train /tmp/moat-ft-uci.gguf --encoder minilm-l6 "$tmp" --holdout 0.1 "${extra[@]}"
    evaluate /tmp/moat-ft-uci.gguf "$DATA/sst2_dev.tsv"
    rm -f "$tmp" ;;
  zh)
    # ChnSentiCorp repeats 1,308 texts (some with both labels): hold out a seeded tenth of the
    # distinct texts, and train on the rows whose text is not among them
    split=$(mktemp -d)
    python3 - "$DATA/chnsenticorp_train.tsv" "$split" <<'PY'
import random, sys
rows = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1], encoding="utf-8")][1:]
texts = sorted({t for _, t in rows})
random.Random(18).shuffle(texts)
test = set(texts[: len(texts) // 10])
for name, keep in (("train", lambda t: t not in test), ("test", lambda t: t in test)):
    seen = set()
    with open(f"{sys.argv[2]}/{name}.tsv", "w", encoding="utf-8") as f:
        f.write("label\ttext\n")
        for label, text in rows:
            if keep(text) and (name == "train" or text not in seen):
                seen.add(text)
                f.write(f"{label}\t{text}\n")
PY
    wc -l "$split"/*.tsv
    train /tmp/moat-ft-zh.gguf --encoder m3e-small "$split/train.tsv" --holdout 0.05 --eval-file "$split/test.tsv" \
      --max-tokens "${MAX_TOKENS:-128}" ${FREEZE:+--freeze $FREEZE}
    evaluate /tmp/moat-ft-zh.gguf "$split/test.tsv"
    rm -rf "$split" ;;
  *) echo "usage: $0 tfns|uci|freeze|english|zh" >&2; exit 2 ;;
esac 2>&1 | tee "$log"
echo "wrote $log"
