# Sourced by scripts/measure_text_claim.sh and scripts/measure_text_claim_temperature.sh (after each sets S and
# ROOT): the settings both read from the environment, the timings log, the train run lookup, and gen, the one way a
# condition of one (seed, corpus) is generated, so every condition continues the same prompts the same way.
BASE=${BASE:-data/text/smollm2-hf}
PROMPTS=${PROMPTS:-40}
CORPORA=${CORPORA:-wikipedia news fiction}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
H="python3 -m hyperfit_core.cli"
source "$(dirname "${BASH_SOURCE[0]}")/run_settings.sh"
count SEED "$S" 0
count PROMPTS "$PROMPTS" 1
count THREADS "$THREADS" 1
OUT=$ROOT/s$S
T=$OUT/timings.txt
stamp() { echo "$(date -u +%FT%H:%M:%S) $* load=$(cut -d' ' -f1 /proc/loadavg)" >> "$T"; }
train_run() { saved_run "${1:-$OUT/train}"; }  # [DIR]: the run that saved its model (default: the seed's training)

gen() {  # corpus name extra-args...: one condition on the corpus's PROMPTS prompts (skipped when done.txt lists it)
  local corpus=$1 name=$2; shift 2
  local dest=$OUT/gen-$corpus
  mkdir -p "$dest"
  [[ -n "$(done_run "$dest/done.txt" "$name")" ]] && return
  stamp "gen $corpus $name start"
  record_step "$dest/done.txt" "$name" "$OUT/gen-$corpus-$name.log" $H text generate --train-run "$RUN" \
    --prompts-from "data/text/$corpus.txt" --prompt-seed "$S" --num-eval "$PROMPTS" --context 32 \
    --max-new-tokens 256 --batch-size "$PROMPTS" --device cpu --name "$name" --out "$dest" "$@"
  stamp "gen $corpus $name done"
}
