#!/usr/bin/env bash
# Full vs last-K vs LoRA hyperfitting of the same data on a two-CPU-core scale (issue #12's comparison):
# SmolLM2-135M-Instruct GGUF, real Wikipedia text, 16 windows of 64 tokens (a 256-token window took ~4 min a step
# on these busy cores), 256-token greedy continuations scored over
# the last 96 tokens (the paper's length), base greedy as the reference. Timings go to OUT/timings.txt.
#   scripts/measure_trainable.sh runs/trainable        (DATA=..., GGUF=... to change the inputs)
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=${1:-runs/trainable}
GGUF=${GGUF:-data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:-data/text/wikipedia.txt}
N=16; WINDOW=${WINDOW:-64}; PROMPTS=16; CONTEXT=32; REF=256; EPOCHS=${EPOCHS:-8}; NEW=256
mkdir -p "$OUT"
T=$OUT/timings.txt; : > "$T"
stamp() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$T"; }
COMMON=(--model "$GGUF" --data "$DATA" --num-train $N --window $WINDOW --num-eval $PROMPTS --context $CONTEXT
        --reference $REF --epochs $EPOCHS --batch-size 8 --device cpu --data-seed 0)

for variant in "full --lr 1e-4" "last1 --lr 1e-4 --train-layers last:1" "lora8 --lr 1e-3 --lora 8"; do
  set -- $variant; name=$1; shift
  stamp "train $name start"
  RUN=$(hyperfit text train "${COMMON[@]}" "$@" --out "$OUT/train-$name" | tail -1)
  stamp "train $name done $RUN"
  hyperfit text generate --model "$RUN/model" --max-new-tokens $NEW --name "$name-greedy" --device cpu \
    --out "$OUT/gen" | tail -1
  stamp "gen $name done"
done
hyperfit text generate --model "$GGUF" --train-run "$RUN" --max-new-tokens $NEW --name base-greedy --device cpu \
  --out "$OUT/gen" | tail -1
stamp "gen base done"
hyperfit text evaluate "$OUT"/gen/* --ttr-last 96 --device cpu --out "$OUT/eval" | tail -1
stamp "evaluate done"
