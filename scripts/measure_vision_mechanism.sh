#!/usr/bin/env bash
# The follow-up's controls on images (issue 24, part 2; docs/mechanism.md), one seed: hyperfit an ImageGPT, then
# on the same NUM_TEST held-out images (their top 25% kept) complete under
#   hyperfitted-greedy, hyperfitted-greedy-blocked, base-greedy, base-top-p (the paper's conditions);
#   base-temperature-dD: the base sampled (no top-k / top-p) at the entropy-matched temperature T, for each decode
#     seed D of SAMPLE_SEEDS (T: the base's mean predictive entropy on NUM_ANALYZE held-out images equals the
#     hyperfitted model's, by bisection; `analyze --match-entropy`);
#   base-logit-bias: base greedy plus the static per-pixel-value bias (hyperfitted minus base mean log-probability);
#   swap-lastK: the base with its last K blocks from the hyperfitted model (K of SWAP_LAYERS), greedy;
#   lora-lastK: LoRA adapters of rank LORA_RANK on the last K blocks (K of LORA_LAYERS; all = every block) trained
#     on the same images, seeds and epochs at LORA_LR, merged, greedy;
# and score them all side by side (`vision evaluate`: repetition beside the real images', copying), FID / KID of the
# conditions FID_CONDITIONS names in a second `vision evaluate` (when FID=1), plus the layer-by-layer analysis, the
# ranks of hyperfitted greedy's pixels under the base, and one `vision analyze` of base, hyperfitted and every LoRA
# model (entropy, perplexity of the true pixels).
#
# Usage: scripts/measure_vision_mechanism.sh SEED [OUT_ROOT]   (default OUT_ROOT=runs/vision-mechanism)
# Environment (defaults: setting B of docs/results.md, 64 Fashion-MNIST images on assets/fashion-base):
#   BASE, DATA (fashion-mnist), DATA_ROOT (data), NUM_TRAIN (64), EPOCHS (60), LR (1e-3), TRAIN_ARGS (extra
#   `vision train` options, e.g. setting C's "--lr-schedule linear --warmup-steps 200 --target-loss 0.25"),
#   NUM_TEST (1000), NUM_ANALYZE (500), SAMPLE_SEEDS ("0 1 2"), SWAP_LAYERS ("1 2 all"; set empty: none),
#   LORA_LAYERS ("1 2 all"; set empty: none, e.g. setting C before its LoRA sweep, each K a training as long),
#   LORA_RANK (16), LORA_LR (1e-2), FID (1), THREADS (1), FID_CONDITIONS ("hyperfitted-greedy base-greedy base-top-p
#   base-temperature-d0": the entropy-matched temperature beside hyperfitted greedy and the paper's conditions; or
#   all. Inception features cost about 6 minutes per condition of 1000 images on one shared CPU thread).
# `vision evaluate` writes its own run dir; the FID one goes to OUT/evaluate-fid.
# Finished steps are skipped on a rerun, so an interrupted seed continues; a rerun asking for other settings than
# the seed folder's runs were made with (its settings.txt) is refused before any work, and the scoring is redone
# when the conditions or FID_CONDITIONS changed.
set -euo pipefail
S=${1:?usage: measure_vision_mechanism.sh SEED [OUT_ROOT]}
ROOT=${2:-runs/vision-mechanism}
BASE=${BASE:-assets/fashion-base}
DATA=${DATA:-fashion-mnist}
DATA_ROOT=${DATA_ROOT:-data}
NUM_TRAIN=${NUM_TRAIN:-64}
EPOCHS=${EPOCHS:-60}
LR=${LR:-1e-3}
read -r -a TRAIN_ARGS <<< "${TRAIN_ARGS:-}"
NUM_TEST=${NUM_TEST:-1000}
NUM_ANALYZE=${NUM_ANALYZE:-500}
SAMPLE_SEEDS=${SAMPLE_SEEDS-0 1 2}  # unset: the default; set empty: refused below
SWAP_LAYERS=${SWAP_LAYERS-1 2 all}  # set empty: no swap-in conditions
LORA_LAYERS=${LORA_LAYERS-1 2 all}  # set empty: no LoRA runs
LORA_RANK=${LORA_RANK:-16}
LORA_LR=${LORA_LR:-1e-2}
FID=${FID:-1}
FID_CONDITIONS=${FID_CONDITIONS-hyperfitted-greedy base-greedy base-top-p base-temperature-d0}
THREADS=${THREADS:-1}
source "$(dirname "$0")/run_settings.sh"
# every count is refused before the seed's work starts, not after it
count SEED "$S" 0
for setting in NUM_TRAIN EPOCHS NUM_TEST NUM_ANALYZE LORA_RANK THREADS; do count "$setting" "${!setting}" 1; done
positive LR "$LR"
positive LORA_LR "$LORA_LR"
for K in $SWAP_LAYERS $LORA_LAYERS; do
  [[ "$K" =~ ^([1-9][0-9]*|all)$ ]] || { echo "error: SWAP_LAYERS / LORA_LAYERS take block counts >= 1 or all, got '$K'" >&2; exit 2; }
done
[[ -n "${SAMPLE_SEEDS// }" ]] || { echo "error: SAMPLE_SEEDS takes whole numbers >= 0, got nothing" >&2; exit 2; }
for D in $SAMPLE_SEEDS; do
  [[ "$D" =~ ^[0-9]+$ ]] || { echo "error: SAMPLE_SEEDS takes whole numbers >= 0, got '$D'" >&2; exit 2; }
done
[[ "$FID" == 0 || "$FID" == 1 ]] || { echo "error: FID is 0 or 1, got '$FID'" >&2; exit 2; }
CONDITIONS="hyperfitted-greedy hyperfitted-greedy-blocked base-greedy base-top-p"
for D in $SAMPLE_SEEDS; do CONDITIONS+=" base-temperature-d$D"; done
CONDITIONS+=" base-logit-bias"
for K in $SWAP_LAYERS; do CONDITIONS+=" swap-last$K"; done  # (printf with an empty list would still print one)
for K in $LORA_LAYERS; do CONDITIONS+=" lora-last$K"; done
[[ -n "${FID_CONDITIONS// }" ]] || { echo "error: FID_CONDITIONS names conditions or all, got nothing" >&2; exit 2; }
for name in $FID_CONDITIONS; do
  [[ "$FID_CONDITIONS" == all || " $CONDITIONS " == *" $name "* ]] \
    || { echo "error: FID_CONDITIONS takes all or conditions of this run ($CONDITIONS), got '$name'" >&2; exit 2; }
done
model BASE "$BASE"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
H="python3 -m hyperfit_core.cli vision"
DATA_ARGS=(--data "$DATA" --data-root "$DATA_ROOT")
OUT=$ROOT/s$S
T=$OUT/timings.txt
hold_folder "$OUT"
same_settings "$OUT/settings.txt" "BASE=$BASE" "DATA=$DATA" "NUM_TRAIN=$NUM_TRAIN" "EPOCHS=$EPOCHS" "LR=$LR" \
  "TRAIN_ARGS=${TRAIN_ARGS[*]}" "NUM_TEST=$NUM_TEST" "NUM_ANALYZE=$NUM_ANALYZE" "LORA_RANK=$LORA_RANK" "LORA_LR=$LORA_LR"
mkdir -p "$OUT/complete"
stamp() { echo "$(date -u +%FT%H:%M:%S) $* load=$(cut -d' ' -f1 /proc/loadavg)" >> "$T"; }
run_in() { ls -d "$1"/*/ 2>/dev/null | head -1 | sed 's:/$::' || true; }  # the run dir a command made in DIR

trained() {  # LABEL DIR extra-args...: the train run under DIR that saved its model: hyperfitted first when none,
  # resumed from its checkpoint when one was stopped (stopped_run)
  local label=$1 dir=$2 run; shift 2
  run=$(saved_run "$dir")
  [[ -n "$run" ]] || run=$(resume_stopped "$label" "$dir" "$dir.log" $H train) || return 2
  [[ -n "$run" ]] || run=$(train_fresh "$label" "$dir" "$dir.log" $H train --model "$BASE" "${DATA_ARGS[@]}" \
    --num-train "$NUM_TRAIN" --epochs "$EPOCHS" --batch-size 8 --seed "$S" --data-seed "$S" --order-seed "$S" \
    --device cpu "${TRAIN_ARGS[@]}" "$@") || return 2
  echo "$run"
}

complete() {  # NAME extra-args...: one condition on the NUM_TEST images (skipped when done.txt lists it)
  local name=$1; shift
  [[ -n "$(done_run "$OUT/complete/done.txt" "$name")" ]] && return
  stamp "complete $name start"
  rm -rf "$OUT/complete/$name"
  $H complete "${DATA_ARGS[@]}" --num-eval "$NUM_TEST" --device cpu --name "$name" --out "$OUT/complete/$name" "$@" \
    > "$OUT/complete/$name.log" 2>&1 || { echo "error: completing $name failed (see $OUT/complete/$name.log)" >&2; return 2; }
  record_run "$OUT/complete/done.txt" "$name" "$(run_in "$OUT/complete/$name")"
  stamp "complete $name done"
}
completed() { done_run "$OUT/complete/done.txt" "$1"; }

analyze() {  # DIR args...: one `vision analyze` into DIR (skipped when it finished)
  local dir=$1; shift
  [[ -n "$(run_in "$dir")" && -f "$(run_in "$dir")/analysis.json" ]] && return
  stamp "analyze $(basename "$dir") start"
  rm -rf "$dir"
  $H analyze "${DATA_ARGS[@]}" --num-eval "$NUM_ANALYZE" --device cpu --out "$dir" "$@" > "$dir.log" 2>&1 \
    || { echo "error: analyze $(basename "$dir") failed (see $dir.log)" >&2; return 2; }
  stamp "analyze $(basename "$dir") done"
}

RUN=$(trained train "$OUT/train" --lr "$LR")
MODELS=(--model "base=$BASE" --model "hyperfitted=$RUN/model")

analyze "$OUT/controls" "${MODELS[@]}" --match-entropy --layers --write-logit-bias "$OUT/logit_bias.safetensors"
TEMP=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['temperature'])" \
  "$(run_in "$OUT/controls")/entropy_match.json")

complete hyperfitted-greedy --model "$RUN/model"
complete hyperfitted-greedy-blocked --model "$RUN/model" --blocker
complete base-greedy --model "$BASE"
complete base-top-p --model "$BASE" --decoding top-p --decode-seed "$S"
for D in $SAMPLE_SEEDS; do
  complete "base-temperature-d$D" --model "$BASE" --decoding sample --temperature "$TEMP" --decode-seed "$D"
done
complete base-logit-bias --model "$BASE" --logit-bias "$OUT/logit_bias.safetensors"
for K in $SWAP_LAYERS; do
  [[ -f "$OUT/swap-last$K/config.json" ]] || $H swap-blocks --base "$BASE" --donor "$RUN/model" --last "$K" \
    --out "$OUT/swap-last$K" > "$OUT/swap-last$K.log" 2>&1
  complete "swap-last$K" --model "$OUT/swap-last$K"
done
for K in $LORA_LAYERS; do
  layers=(--train-layers "last:$K"); [[ "$K" == all ]] && layers=()
  LRUN=$(trained "train lora-last$K" "$OUT/lora-last$K" --lr "$LORA_LR" --lora "$LORA_RANK" "${layers[@]}")
  MODELS+=(--model "lora-last$K=$LRUN/model")
  complete "lora-last$K" --model "$LRUN/model"
done

analyze "$OUT/ranks" --model "base=$BASE" --model "hyperfitted=$RUN/model" --ranks "$(completed hyperfitted-greedy)"
# one analysis of base, hyperfitted and this run's LoRA models; one made for other LORA_LAYERS is replaced
models_analyzed="$OUT/lora-analyze-$(echo ${LORA_LAYERS:-none} | tr ' ' -)"
for old in "$OUT"/lora-analyze-*/; do [[ "${old%/}" == "$models_analyzed" ]] || rm -rf "${old%/}" "${old%/}.log"; done
analyze "$models_analyzed" "${MODELS[@]}"

keep_features() {  # DIR: the Inception features of DIR's earlier scoring, copied beside each condition's completions
  # (the real images' beside the first), where `vision evaluate` finds and reuses them (keyed by pixels and weights:
  # a stale one is recomputed); otherwise scoring FID again for one more condition would redo every condition's
  local old name path real
  old=$(run_in "$1")
  [[ -n "$old" ]] || return 0
  real=$old/real.inception.safetensors
  while read -r name path; do
    [[ -f "$path/$name.completions.safetensors" && -f "$old/$name.inception.safetensors" ]] || continue
    copy_file "$old/$name.inception.safetensors" "$path/$name.inception.safetensors"
    if [[ -f "$real" ]]; then copy_file "$real" "$path/real.inception.safetensors"; real=; fi
  done < "$OUT/complete/done.txt"
}
copy_file() { cp "$1" "$2.tmp" && mv "$2.tmp" "$2"; }  # SOURCE DEST: never a cut-off DEST
score() {  # DIR SCORED extra-args...: one `vision evaluate` of the named conditions into DIR, redone when it scored
  # other conditions than SCORED says (a rerun that added SAMPLE_SEEDS or LORA_LAYERS, or named other FID_CONDITIONS)
  local dir=$1 scored=$2; shift 2
  if [[ -n "$(run_in "$dir")" && -f "$(run_in "$dir")/results.json" \
        && "$(cat "$dir.scored" 2>/dev/null)" == "$scored" ]]; then
    return
  fi
  stamp "$(basename "$dir") start"
  keep_features "$dir"
  rm -rf "$dir" "$dir.scored"
  $H evaluate "$@" --train-run "$RUN" --device cpu --out "$dir" > "$dir.log" 2>&1 \
    || { echo "error: $(basename "$dir") failed (see $dir.log)" >&2; exit 2; }
  echo "$scored" > "$dir.scored.tmp" && mv "$dir.scored.tmp" "$dir.scored"
  stamp "$(basename "$dir") done"
}
named=()
while read -r name path; do named+=("$name=$path"); done < "$OUT/complete/done.txt"
score "$OUT/evaluate" "$(cat "$OUT/complete/done.txt")" "${named[@]}" --no-fid
if [[ "$FID" == 1 ]]; then
  # FID / KID only where they are asked for: Inception features of every condition would cost hours of a CPU
  chosen=()
  for item in "${named[@]}"; do
    name=${item%%=*}
    [[ "$FID_CONDITIONS" == all || " $FID_CONDITIONS " == *" $name "* ]] && chosen+=("$item")
  done
  score "$OUT/evaluate-fid" "$(printf '%s\n' "${chosen[@]}")" "${chosen[@]}"
fi
stamp "seed done"
echo "$(run_in "$OUT/evaluate")"
