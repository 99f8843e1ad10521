#!/usr/bin/env bash
# The entropy-matched temperature condition of the text claim (issue 24; the follow-up's first control), one seed,
# after scripts/measure_text_claim.sh SEED: the temperature T at which the base model's mean predictive entropy on
# the train run's held-out contexts equals the hyperfitted model's at T = 1 (`text analyze --match-entropy`, by
# bisection, recorded in entropy_match.json), then the base sampled at T (no top-k / top-p, --decode-seed SEED)
# on each corpus's same 40 prompts, named base-temperature in gen-CORPUS/done.txt, which
# scripts/text_claim_stats.py compares with hyperfitted greedy.
#
# Usage: scripts/measure_text_claim_temperature.sh SEED [OUT_ROOT]   (default OUT_ROOT=runs/text-claim)
# Environment: BASE, PROMPTS, CORPORA, THREADS as scripts/measure_text_claim.sh. Finished steps are skipped.
set -euo pipefail
S=${1:?usage: measure_text_claim_temperature.sh SEED [OUT_ROOT]}
ROOT=${2:-runs/text-claim}
source "$(dirname "$0")/text_claim_common.sh"
model BASE "$BASE"
RUN=$(train_run)
[[ -n "$RUN" ]] || { echo "error: no train run under $OUT/train: run scripts/measure_text_claim.sh $S first" >&2; exit 2; }
hold_folder "$OUT"
same_settings "$OUT/settings.txt" "BASE=$BASE" "PROMPTS=$PROMPTS"

if ! ls $OUT/entropy/*/entropy_match.json > /dev/null 2>&1; then
  stamp "entropy match start"
  $H text analyze --model base="$BASE" --model hyperfitted="$RUN/model" --train-run "$RUN" --match-entropy \
    --device cpu --out "$OUT/entropy" > "$OUT/entropy.log" 2>&1
  stamp "entropy match done"
fi
TEMP=$(python3 -c "import glob, json; print(round(json.load(open(glob.glob('$OUT/entropy/*/entropy_match.json')[0]))['temperature'], 4))")
stamp "temperature T=$TEMP"

for corpus in $CORPORA; do
  gen "$corpus" base-temperature --model "$BASE" --decoding sample --temperature "$TEMP" --decode-seed "$S"
done
stamp "temperature done"
