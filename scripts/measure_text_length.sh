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
set -euo pipefail
S=${1:-0}
ROOT=${2:-runs/influence-text-length}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
H="python3 -m hyperfit_core.cli"
OUT=$ROOT/paper-s$S
BASE=${BASE:-data/text/smollm2-hf}
DATA=${DATA:-data/text/wikipedia.txt}
mkdir -p "$OUT"
T=$OUT/timings.txt
stamp() { echo "$(date -u +%H:%M:%S) $*" >> "$T"; }
stamp "train start"
$H text train --model $BASE --data $DATA --num-train 8 --window 256 --num-eval 8 \
  --context 32 --reference 256 --epochs 12 --lr 2e-4 --batch-size 8 --target-loss 0.05 --seed $S --data-seed $S \
  --order-seed $S --save-every 100 --device cpu --out $OUT/train > $OUT/train.log 2>&1 &
TP=$!
# the base conditions run while it trains, as soon as the run dir holds its held-out prompts
while ! ls $OUT/train/*/prompts.safetensors >/dev/null 2>&1; do sleep 5; done
RUN=$(dirname $(ls $OUT/train/*/prompts.safetensors))
echo $RUN > $OUT/run_path
stamp "prompts ready $RUN"
$H text generate --model $BASE --train-run $RUN --max-new-tokens 256 --name base-greedy --batch-size 8 --device cpu --out $OUT/gen > $OUT/gen-base-greedy.log 2>&1
stamp "base greedy done"
$H text generate --model $BASE --train-run $RUN --max-new-tokens 256 --decoding top-p --decode-seed $S --name base-top-p --batch-size 8 --device cpu --out $OUT/gen > $OUT/gen-base-topp.log 2>&1
stamp "base top-p done"
wait $TP
stamp "train done"
$H text generate --model $RUN/model --max-new-tokens 256 --name hyperfitted-greedy --batch-size 8 --device cpu --out $OUT/gen > $OUT/gen-hf.log 2>&1
stamp "hf greedy done"
$H text generate --model $RUN/model --max-new-tokens 256 --blocker --name hyperfitted-greedy-blocked5 --batch-size 8 --device cpu --out $OUT/gen > $OUT/gen-hfb.log 2>&1
stamp "hf blocker done"
$H text evaluate $OUT/gen/* --ttr-last 96 --device cpu --out $OUT/eval > $OUT/eval.log 2>&1
stamp "evaluate done"
