#!/usr/bin/env bash
# Text hyperfitting measurement at a two-busy-CPU-core scale (SmolLM2-135M-Instruct GGUF, real Wikipedia text).
# Conditions: base greedy, base top-p, hyperfitted greedy, hyperfitted greedy + citation blocker.
# Usage: [DATA=data/text/news.txt] scripts/measure_text.sh [OUT]   (default OUT=runs/text-measure,
# DATA=data/text/wikipedia.txt); timings go to OUT/timings.txt. Measured with:
#   scripts/measure_text.sh runs/text-measure
#   DATA=data/text/news.txt scripts/measure_text.sh runs/text-measure-news
# Environment: GGUF (the base model: a GGUF file, an HF folder or a hub id), DATA, and the scale (defaults: the
# measured one) N (16 windows), WINDOW (64), PROMPTS (24), EPOCHS (15), LR (1e-4), NEW (64 new tokens).
# Finished steps are skipped on a rerun (OUT/gen/done.txt lists each condition's run), so an interrupted run
# continues and only its own runs are scored; a rerun asking for other settings than OUT's runs were made with (its
# settings.txt) is refused before any work.
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${1:-runs/text-measure}
GGUF=${GGUF:-data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:-data/text/wikipedia.txt}
N=${N:-16}; WINDOW=${WINDOW:-64}; PROMPTS=${PROMPTS:-24}; EPOCHS=${EPOCHS:-15}; LR=${LR:-1e-4}; NEW=${NEW:-64}
CONTEXT=32; REF=64; BS=8
source "$(dirname "$0")/run_settings.sh"
for setting in N WINDOW PROMPTS EPOCHS NEW; do count "$setting" "${!setting}" 1; done
positive LR "$LR"
model GGUF "$GGUF"
[[ -f "$DATA" ]] || { echo "error: DATA is not a file: '$DATA'" >&2; exit 2; }
hold_folder "$OUT"
same_settings "$OUT/settings.txt" "GGUF=$GGUF" "DATA=$DATA" "N=$N" "WINDOW=$WINDOW" "PROMPTS=$PROMPTS" \
  "EPOCHS=$EPOCHS" "LR=$LR" "NEW=$NEW"
T=$OUT/timings.txt
stamp() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$T"; }
H="python3 -m hyperfit_core.cli text"

RUN=$(saved_run "$OUT/train")
[[ -n "$RUN" ]] || RUN=$(train_fresh train "$OUT/train" "$OUT/train.log" $H train --model "$GGUF" --data "$DATA" \
  --num-train "$N" --window "$WINDOW" --num-eval "$PROMPTS" --context $CONTEXT --reference $REF --epochs "$EPOCHS" \
  --lr "$LR" --batch-size $BS --target-loss 0.05 --device cpu)

gen() {  # LABEL extra-args...: one condition (skipped when OUT/gen/done.txt lists it)
  local label=$1; shift
  [[ -n "$(done_run "$OUT/gen/done.txt" "$label")" ]] && return
  mkdir -p "$OUT/gen"
  record_step "$OUT/gen/done.txt" "$label" "$OUT/gen-$label.log" $H generate --max-new-tokens "$NEW" --device cpu \
    --out "$OUT/gen" "$@"
  stamp "gen $label done"
}
gen hyperfitted-greedy --model "$RUN/model"
gen hyperfitted-greedy-blocked --model "$RUN/model" --blocker
gen base-greedy --model "$GGUF" --train-run "$RUN" --name base-greedy
gen base-top-p --model "$GGUF" --train-run "$RUN" --decoding top-p --name base-top-p

score_runs "$OUT/eval" "$OUT/gen/done.txt" $H evaluate --ttr-last "$NEW" --device cpu
stamp "evaluate done"
