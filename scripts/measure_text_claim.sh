#!/usr/bin/env bash
# The paper's text claim with statistical power (issue 24, part 1), one seed: hyperfit a causal LM on N random
# 256-token Wikipedia windows, then continue 40 held-out 32-token contexts from each of three corpora (Wikipedia
# disjoint from the training windows, news, fiction) by 256 tokens under base greedy / base top-p / hyperfitted
# greedy / hyperfitted greedy + citation blocker. Every condition of one (seed, corpus) continues the same
# contexts, so differences can be paired per prompt (scripts/text_claim_stats.py).
#
# With MECHANISM=1 (issue 24, part 2, on the same models and prompts): the layer-by-layer analysis and the static
# logit bias (hyperfitted minus base mean log-probability shift over the train run's held-out contexts), then per
# corpus the ranks of hyperfitted greedy's tokens under the base and four more conditions: base greedy + that
# bias (base-logit-bias), and the base with its last 1 / 2 / all blocks taken from the hyperfitted model
# (swap-last1, swap-last2, swap-lastall: every block, the base's embeddings and final norm), decoded greedily.
#
# With LORA=1 (issue 24, part 2, late-stage training, on the same windows and prompts): for each K of LORA_LAYERS
# ("1 5 all"), LoRA adapters of rank LORA_RANK (16) on the last K blocks only (`--lora R --train-layers last:K`;
# K = all: on every block) trained with the full run's data, seeds, epochs and target loss at LORA_LR (1e-2, as for
# images: adapters start at zero and need a larger step than full fine-tuning; at 2e-3 rank 16 on the last block
# moved SmolLM2's loss from 3.30 to 2.92 in 11 epochs), merged, then decoded greedily on each corpus as
# lora-lastK; and one `text analyze` of the base, the hyperfitted and every LoRA model on the train run's held-out
# contexts (entropy, perplexity of the true continuation), in lora/analyze-K1-K2-... (one folder per set of K, so a
# pilot with fewer K does not stand in for the sweep).
#
# Usage: scripts/measure_text_claim.sh SEED [OUT_ROOT]   (default OUT_ROOT=runs/text-claim)
# Environment: BASE (default data/text/smollm2-hf, the SmolLM2 GGUF converted once to an HF folder, see
#   scripts/measure_text_length.sh), NUM_TRAIN (16), EPOCHS (16), LR (2e-4), TARGET (0.05), PROMPTS (40),
#   CORPORA ("wikipedia news fiction", files data/text/NAME.txt), THREADS (2).
# Finished steps are skipped on a rerun (a run dir whose output exists), so an interrupted seed continues; a rerun
# asking for other settings than the seed folder's runs were made with (its settings.txt, lora/settings.txt) is
# refused before any work.
set -euo pipefail
S=${1:?usage: measure_text_claim.sh SEED [OUT_ROOT]}
ROOT=${2:-runs/text-claim}
NUM_TRAIN=${NUM_TRAIN:-16}
EPOCHS=${EPOCHS:-16}
LR=${LR:-2e-4}
TARGET=${TARGET:-0.05}
source "$(dirname "$0")/text_claim_common.sh"
LORA_LAYERS=${LORA_LAYERS-1 5 all}  # set empty with LORA=1: refused below
LORA_RANK=${LORA_RANK:-16}
LORA_LR=${LORA_LR:-1e-2}
count NUM_TRAIN "$NUM_TRAIN" 1
count EPOCHS "$EPOCHS" 1
positive LR "$LR"
positive TARGET "$TARGET"
if [[ "${LORA:-0}" == 1 ]]; then  # a bad K is refused before the seed's hour of work, not after it
  count LORA_RANK "$LORA_RANK" 1
  positive LORA_LR "$LORA_LR"
  [[ -n "${LORA_LAYERS// }" ]] || { echo "error: LORA_LAYERS takes block counts >= 1 or all, got nothing" >&2; exit 2; }
  for K in $LORA_LAYERS; do
    [[ "$K" =~ ^([1-9][0-9]*|all)$ ]] || { echo "error: LORA_LAYERS takes block counts >= 1 or all, got '$K'" >&2; exit 2; }
  done
fi
model BASE "$BASE"
hold_folder "$OUT"
same_settings "$OUT/settings.txt" "BASE=$BASE" "PROMPTS=$PROMPTS" "NUM_TRAIN=$NUM_TRAIN" "EPOCHS=$EPOCHS" "LR=$LR" \
  "TARGET=$TARGET"
[[ "${LORA:-0}" != 1 ]] || same_settings "$OUT/lora/settings.txt" "LORA_RANK=$LORA_RANK" "LORA_LR=$LORA_LR"
trained() {  # LABEL DIR LOG extra-args...: the run under DIR that saved its model, hyperfitted first when there is
  # none (resumed from its checkpoint when one was stopped: stopped_run; a checkpoint each epoch), on the seed's
  # windows, seeds, epochs and target, so every variant (full, LoRA) sees the same data
  local label=$1 dir=$2 log=$3 run; shift 3
  run=$(train_run "$dir")
  [[ -n "$run" ]] || run=$(resume_stopped "$label" "$dir" "$log" $H text train) || return 2
  [[ -n "$run" ]] || run=$(train_fresh "$label" "$dir" "$log" $H text train --model "$BASE" \
    --data data/text/wikipedia.txt --num-train "$NUM_TRAIN" --window 256 --num-eval "$PROMPTS" --context 32 \
    --reference 256 --epochs "$EPOCHS" --batch-size 8 --target-loss "$TARGET" --seed "$S" --data-seed "$S" \
    --order-seed "$S" --device cpu "$@") || return 2
  echo "$run"
}

RUN=$(trained train "$OUT/train" "$OUT/train.log" --lr "$LR")

for corpus in $CORPORA; do
  gen "$corpus" hyperfitted-greedy --model "$RUN/model"
  gen "$corpus" base-greedy --model "$BASE"
  gen "$corpus" base-top-p --model "$BASE" --decoding top-p --decode-seed "$S"
  gen "$corpus" hyperfitted-greedy-blocked5 --model "$RUN/model" --blocker
done
stamp "seed done"

if [[ "${MECHANISM:-0}" == 1 ]]; then
  M=$OUT/mechanism
  mkdir -p "$M"
  if [[ ! -f "$M/logit_bias.safetensors" ]]; then
    stamp "mechanism layers + logit bias start"
    $H text analyze --model "base=$BASE" --model "hyperfitted=$RUN/model" --train-run "$RUN" --num-eval "$PROMPTS" \
      --layers --write-logit-bias "$M/logit_bias.safetensors" --device cpu --out "$M/analyze" > "$M/analyze.log" 2>&1
    stamp "mechanism layers + logit bias done"
  fi
  for K in 1 2 all; do
    [[ -f "$M/swap-last$K/config.json" ]] && continue
    $H text swap-blocks --base "$BASE" --donor "$RUN/model" --last "$K" --out "$M/swap-last$K" > "$M/swap-last$K.log" 2>&1
  done
  for corpus in $CORPORA; do
    if ! ls "$M"/ranks-"$corpus"/*/ranks.json > /dev/null 2>&1; then
      stamp "ranks $corpus start"
      $H text analyze --model "base=$BASE" --model "hyperfitted=$RUN/model" --train-run "$RUN" --num-eval "$PROMPTS" \
        --ranks "$(done_run "$OUT/gen-$corpus/done.txt" hyperfitted-greedy)" --device cpu \
        --out "$M/ranks-$corpus" > "$M/ranks-$corpus.log" 2>&1
      stamp "ranks $corpus done"
    fi
    gen "$corpus" base-logit-bias --model "$BASE" --logit-bias "$M/logit_bias.safetensors"
    gen "$corpus" swap-last1 --model "$M/swap-last1"
    gen "$corpus" swap-last2 --model "$M/swap-last2"
    gen "$corpus" swap-lastall --model "$M/swap-lastall"
  done
  stamp "mechanism done"
fi

[[ "${LORA:-0}" == 1 ]] || exit 0
L=$OUT/lora
mkdir -p "$L"
MODELS=(--model "base=$BASE" --model "hyperfitted=$RUN/model")
for K in $LORA_LAYERS; do
  name=lora-last$K
  layers=(--train-layers "last:$K"); [[ "$K" == all ]] && layers=()
  LRUN=$(trained "train $name" "$L/$name/train" "$L/$name.log" --lr "$LORA_LR" --lora "$LORA_RANK" "${layers[@]}")
  MODELS+=(--model "$name=$LRUN/model")
  for corpus in $CORPORA; do
    gen "$corpus" "$name" --model "$LRUN/model"
  done
done
A=$L/analyze-$(echo $LORA_LAYERS | tr ' ' -)
if ! ls "$A"/*/analysis.json > /dev/null 2>&1; then
  stamp "lora analyze start"
  $H text analyze "${MODELS[@]}" --train-run "$RUN" --num-eval "$PROMPTS" --device cpu --out "$A" > "$A.log" 2>&1
  stamp "lora analyze done"
fi
stamp "lora done"
