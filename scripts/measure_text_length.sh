#!/usr/bin/env bash
# The paper-length text comparison (docs/influence.md), one seed: hyperfit SmolLM2-135M on 8 random 256-token
# Wikipedia windows, then continue 8 held-out 32-token contexts by 256 tokens under base greedy / base top-p /
# hyperfitted greedy / + citation blocker, and score them (TTR over the last 96 tokens, length curves).
# Usage: scripts/measure_text_length.sh SEED [OUT_ROOT] (default OUT_ROOT=runs/influence-text-length); the base
# model is the SmolLM2 GGUF converted once to an HF folder (BASE, default data/text/smollm2-hf):
#   python -c "from hyperfit_text.model import load_text_model as l; m = l('data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'); \
#     m.model.save_pretrained('data/text/smollm2-hf'); m.tokenizer.save_pretrained('data/text/smollm2-hf')"
# then aggregate the seeds: python scripts/data_influence.py text-length --collect OUT_ROOT/paper-s*/eval/* ...
# Measured (2 shared CPU cores) with: scripts/measure_text_length.sh 0 /work/runs-infl (and 1, 2), nice -n 10.
# Environment: BASE, DATA (data/text/wikipedia.txt), and for smaller checks NUM_TRAIN (8), EPOCHS (12), NEW (256).
# Finished steps are skipped on a rerun (OUT_ROOT/paper-sSEED/gen/done.txt; a stopped training resumes from its
# checkpoint), so an interrupted seed continues and only its own runs are scored; a rerun asking for other settings
# than the seed folder's runs were made with (its settings.txt) is refused before any work.
set -euo pipefail
S=${1:-0}
ROOT=${2:-runs/influence-text-length}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
H="python3 -m hyperfit_core.cli"
OUT=$ROOT/paper-s$S
BASE=${BASE:-data/text/smollm2-hf}
DATA=${DATA:-data/text/wikipedia.txt}
NUM_TRAIN=${NUM_TRAIN:-8}; EPOCHS=${EPOCHS:-12}; NEW=${NEW:-256}
source "$(dirname "$0")/run_settings.sh"
count SEED "$S" 0
for setting in NUM_TRAIN EPOCHS NEW; do count "$setting" "${!setting}" 1; done
TTR_LAST=$(( NEW < 96 ? NEW : 96 ))  # the paper's 96, or every new token of a shorter check
model BASE "$BASE"
[[ -f "$DATA" ]] || { echo "error: DATA is not a file: '$DATA'" >&2; exit 2; }
hold_folder "$OUT"
same_settings "$OUT/settings.txt" "BASE=$BASE" "DATA=$DATA" "NUM_TRAIN=$NUM_TRAIN" "EPOCHS=$EPOCHS" "NEW=$NEW"
T=$OUT/timings.txt
stamp() { echo "$(date -u +%H:%M:%S) $*" >> "$T"; }
DONE=$OUT/gen/done.txt
gen() {  # LABEL extra-args...: one condition of 8 prompts (skipped when DONE lists it)
  local label=$1; shift
  [[ -n "$(done_run "$DONE" "$label")" ]] && return
  mkdir -p "$OUT/gen"
  record_step "$DONE" "$label" "$OUT/gen-$label.log" $H text generate --max-new-tokens "$NEW" --name "$label" \
    --batch-size 8 --device cpu --out "$OUT/gen" "$@"
  stamp "$label done"
}

TP=
# no training left running when a step fails: the background job is a subshell, the trainer its child
trap '[[ -z "$TP" ]] || { pkill -TERM -P "$TP"; kill "$TP"; } 2>/dev/null || true' EXIT
RUN=$(saved_run "$OUT/train")
if [[ -z "$RUN" ]]; then
  if [[ -n "$(stopped_run "$OUT/train")" ]]; then  # stamps its own stopped / resume / done lines
    resume_stopped train "$OUT/train" "$OUT/train.log" $H text train > /dev/null &
  else
    stamp "train start"
    rm -rf "$OUT/train"
    { $H text train --model "$BASE" --data "$DATA" --num-train "$NUM_TRAIN" --window 256 --num-eval 8 \
        --context 32 --reference 256 --epochs "$EPOCHS" --lr 2e-4 --batch-size 8 --target-loss 0.05 --seed "$S" \
        --data-seed "$S" --order-seed "$S" --save-every 100 --device cpu --out "$OUT/train" > "$OUT/train.log" 2>&1 \
      && stamp "train done $(saved_run "$OUT/train")"; } &
  fi
  TP=$!
fi
# the base conditions run while it trains, as soon as the run dir holds its held-out prompts
until ls "$OUT"/train/*/prompts.safetensors > /dev/null 2>&1; do
  [[ -n "$TP" ]] && kill -0 "$TP" 2>/dev/null \
    || { echo "error: training stopped before it wrote its prompts (see $OUT/train.log)" >&2; exit 2; }
  sleep 2
done
PROMPTS_RUN=$(dirname "$(ls "$OUT"/train/*/prompts.safetensors | head -1)")
echo "$PROMPTS_RUN" > "$OUT/run_path"
gen base-greedy --model "$BASE" --train-run "$PROMPTS_RUN"
gen base-top-p --model "$BASE" --train-run "$PROMPTS_RUN" --decoding top-p --decode-seed "$S"
if [[ -n "$TP" ]]; then
  wait "$TP" || { TP=; echo "error: training failed (see $OUT/train.log)" >&2; exit 2; }
  TP=
  RUN=$(saved_run "$OUT/train")
  [[ -n "$RUN" ]] || { echo "error: the train run under $OUT/train saved no model (see $OUT/train.log)" >&2; exit 2; }
fi
gen hyperfitted-greedy --model "$RUN/model"
gen hyperfitted-greedy-blocked5 --model "$RUN/model" --blocker
score_runs "$OUT/eval" "$DONE" $H text evaluate --ttr-last "$TTR_LAST" --device cpu
stamp "evaluate done"
