#!/usr/bin/env bash
# Fine-tuning benchmarks for `moat classify train --encoder` (issue 18's goals table).
# Data: ../shared/data/sentiment (never copied into the repo). Results go to bench/results/
# (not committed). Run on an idle machine: training time is the figure most hurt by noise.
#
#   bench/finetune/run.sh tfns      # minilm-l6 on tfns_train (9,543 lines), eval on tfns_valid
#   bench/finetune/run.sh uci       # minilm-l6 on the 3,000 UCI sentences, 3 epochs (the time goal), eval on SST-2 dev
#   bench/finetune/run.sh freeze    # the same with --freeze 3
#   bench/finetune/run.sh zh        # m3e-small on chnsenticorp_train (10 % held out)
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
    train /tmp/moat-ft-tfns.gguf --encoder minilm-l6 "$DATA/tfns_train.tsv" --holdout 0.05
    evaluate /tmp/moat-ft-tfns.gguf "$DATA/tfns_valid.tsv" ;;
  uci|freeze)
    tmp=$(mktemp --suffix=.tsv)
    { printf 'label\ttext\n'; for f in yelp amazon imdb; do tail -n +2 "$DATA/uci_${f}_sentences.tsv"; done; } > "$tmp"
    extra=(); [ "$what" = freeze ] && extra=(--freeze 3)
    train /tmp/moat-ft-uci.gguf --encoder minilm-l6 "$tmp" --holdout 0.1 "${extra[@]}"
    evaluate /tmp/moat-ft-uci.gguf "$DATA/sst2_dev.tsv"
    rm -f "$tmp" ;;
  zh)
    train /tmp/moat-ft-zh.gguf --encoder m3e-small "$DATA/chnsenticorp_train.tsv" --holdout 0.1 ;;
  *) echo "usage: $0 tfns|uci|freeze|zh" >&2; exit 2 ;;
esac 2>&1 | tee "$log"
echo "wrote $log"
