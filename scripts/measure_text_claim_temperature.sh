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
BASE=${BASE:-data/text/smollm2-hf}
PROMPTS=${PROMPTS:-40}
CORPORA=${CORPORA:-wikipedia news fiction}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
H="python3 -m hyperfit_core.cli"
OUT=$ROOT/s$S
T_FILE=$OUT/timings.txt
stamp() { echo "$(date -u +%FT%H:%M:%S) $* load=$(cut -d' ' -f1 /proc/loadavg)" >> "$T_FILE"; }
RUN=$(ls -d $OUT/train/*/model 2>/dev/null | head -1 | xargs -r dirname || true)
[[ -n "$RUN" ]] || { echo "error: no train run under $OUT/train: run scripts/measure_text_claim.sh $S first" >&2; exit 2; }

if ! ls $OUT/entropy/*/entropy_match.json > /dev/null 2>&1; then
  stamp "entropy match start"
  $H text analyze --model base="$BASE" --model hyperfitted="$RUN/model" --train-run "$RUN" --match-entropy \
    --device cpu --out "$OUT/entropy" > "$OUT/entropy.log" 2>&1
  stamp "entropy match done"
fi
TEMP=$(python3 -c "import glob, json; print(round(json.load(open(glob.glob('$OUT/entropy/*/entropy_match.json')[0]))['temperature'], 4))")

for corpus in $CORPORA; do
  dest=$OUT/gen-$corpus
  mkdir -p "$dest"
  grep -qs "^base-temperature " "$dest/done.txt" && continue
  stamp "gen $corpus base-temperature T=$TEMP start"
  path=$($H text generate --train-run "$RUN" --prompts-from "data/text/$corpus.txt" --prompt-seed "$S" \
    --num-eval "$PROMPTS" --context 32 --max-new-tokens 256 --batch-size "$PROMPTS" --device cpu \
    --name base-temperature --model "$BASE" --decoding sample --temperature "$TEMP" --decode-seed "$S" \
    --out "$dest" 2> "$OUT/gen-$corpus-base-temperature.log" | tail -1)
  echo "base-temperature $path" >> "$dest/done.txt"
  stamp "gen $corpus base-temperature done"
done
stamp "temperature done"
