#!/usr/bin/env bash
# Text hyperfitting measurement at a two-busy-CPU-core scale (SmolLM2-135M-Instruct GGUF, real Wikipedia text).
# Conditions: base greedy, base top-p, hyperfitted greedy, hyperfitted greedy + citation blocker.
# Usage: [DATA=data/text/news.txt] scripts/measure_text.sh [OUT]   (default OUT=runs/text-measure,
# DATA=data/text/wikipedia.txt); timings go to OUT/timings.txt. Measured with:
#   scripts/measure_text.sh runs/text-measure
#   DATA=data/text/news.txt scripts/measure_text.sh runs/text-measure-news
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${1:-runs/text-measure}
GGUF=data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
DATA=${DATA:-data/text/wikipedia.txt}
N=16; WINDOW=64; PROMPTS=24; CONTEXT=32; REF=64; EPOCHS=15; LR=1e-4; BS=8; NEW=64
mkdir -p "$OUT"
T=$OUT/timings.txt; : > "$T"
stamp() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$T"; }

stamp "train start"
RUN=$(hyperfit text train --model $GGUF --data $DATA --num-train $N --window $WINDOW \
  --num-eval $PROMPTS --context $CONTEXT --reference $REF --epochs $EPOCHS --lr $LR \
  --batch-size $BS --target-loss 0.05 --device cpu --out "$OUT/train" | tail -1)
stamp "train done $RUN"

hyperfit text generate --model "$RUN/model" --max-new-tokens $NEW --device cpu --out "$OUT/gen" | tail -1
stamp "gen hyperfitted greedy done"
hyperfit text generate --model "$RUN/model" --max-new-tokens $NEW --blocker --device cpu --out "$OUT/gen" | tail -1
stamp "gen hyperfitted greedy+blocker done"
hyperfit text generate --model $GGUF --train-run "$RUN" --max-new-tokens $NEW --name base-greedy --device cpu --out "$OUT/gen" | tail -1
stamp "gen base greedy done"
hyperfit text generate --model $GGUF --train-run "$RUN" --max-new-tokens $NEW --decoding top-p --name base-top-p --device cpu --out "$OUT/gen" | tail -1
stamp "gen base top-p done"

hyperfit text evaluate "$OUT"/gen/* --ttr-last $NEW --device cpu --out "$OUT/eval" | tail -1
stamp "evaluate done"
