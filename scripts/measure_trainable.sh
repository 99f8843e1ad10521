#!/usr/bin/env bash
# Full vs last-K vs LoRA hyperfitting of the same data on a two-CPU-core scale (issue #12's comparison):
# SmolLM2-135M-Instruct GGUF, real Wikipedia text, 16 windows of 64 tokens (a 256-token window took ~4 min a step
# on these busy cores), 256-token greedy continuations scored over
# the last 96 tokens (the paper's length), base greedy as the reference. Timings go to OUT/timings.txt.
#   scripts/measure_trainable.sh runs/trainable        (DATA=..., GGUF=... to change the inputs)
# Environment: GGUF (a GGUF file, an HF folder or a hub id), DATA, WINDOW (64), EPOCHS (8), and N (16 windows),
# PROMPTS (16), NEW (256 new tokens) for smaller checks. Finished steps are skipped on a rerun (OUT/gen/done.txt), so
# an interrupted run continues and only its own runs are scored; a rerun asking for other settings than OUT's runs
# were made with (its settings.txt) is refused before any work.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=${1:-runs/trainable}
GGUF=${GGUF:-data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:-data/text/wikipedia.txt}
N=${N:-16}; WINDOW=${WINDOW:-64}; PROMPTS=${PROMPTS:-16}; CONTEXT=32; REF=256; EPOCHS=${EPOCHS:-8}; NEW=${NEW:-256}
source "$(dirname "$0")/run_settings.sh"
for setting in N WINDOW PROMPTS EPOCHS NEW; do count "$setting" "${!setting}" 1; done
TTR_LAST=$(( NEW < 96 ? NEW : 96 ))  # the paper's 96, or every new token of a shorter check
model GGUF "$GGUF"
[[ -f "$DATA" ]] || { echo "error: DATA is not a file: '$DATA'" >&2; exit 2; }
hold_folder "$OUT"
same_settings "$OUT/settings.txt" "GGUF=$GGUF" "DATA=$DATA" "N=$N" "WINDOW=$WINDOW" "PROMPTS=$PROMPTS" \
  "EPOCHS=$EPOCHS" "NEW=$NEW"
T=$OUT/timings.txt
stamp() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$T"; }
H="python3 -m hyperfit_core.cli text"
COMMON=(--model "$GGUF" --data "$DATA" --num-train "$N" --window "$WINDOW" --num-eval "$PROMPTS" --context $CONTEXT
        --reference $REF --epochs "$EPOCHS" --batch-size 8 --device cpu --data-seed 0)
DONE=$OUT/gen/done.txt
gen() {  # LABEL extra-args...: one greedy condition (skipped when DONE lists it)
  local label=$1; shift
  [[ -n "$(done_run "$DONE" "$label")" ]] && return
  mkdir -p "$OUT/gen"
  record_step "$DONE" "$label" "$OUT/gen-$label.log" $H generate --max-new-tokens "$NEW" --name "$label" --device cpu \
    --out "$OUT/gen" "$@"
  stamp "gen $label done"
}

for variant in "full --lr 1e-4" "last1 --lr 1e-4 --train-layers last:1" "lora8 --lr 1e-3 --lora 8"; do
  set -- $variant; name=$1; shift
  RUN=$(saved_run "$OUT/train-$name")
  [[ -n "$RUN" ]] || RUN=$(train_fresh "train $name" "$OUT/train-$name" "$OUT/train-$name.log" \
    $H train "${COMMON[@]}" "$@")
  gen "$name-greedy" --model "$RUN/model"
done
gen base-greedy --model "$GGUF" --train-run "$RUN"
score_runs "$OUT/eval" "$DONE" $H evaluate --ttr-last "$TTR_LAST" --device cpu
stamp "evaluate done"
