# Sourced by the measure_*.sh scripts. same_settings FILE KEY=VALUE...: the settings a folder's runs were made with,
# recorded in FILE on the first run; a rerun that asks for another value of a recorded key is refused in one line
# before any work, because finished steps are skipped on a rerun and would otherwise stand in silently for runs made
# with other settings. Keys not yet in FILE are added, so a later step may record its own.
same_settings() {
  local file=$1 pair key old; shift
  for pair in "$@"; do
    key=${pair%%=*}
    old=$(grep -m1 "^$key=" "$file" 2>/dev/null || true)
    if [[ -n "$old" && "$old" != "$pair" ]]; then
      echo "error: $(dirname "$file") was made with $old, not $pair; use another output folder or remove it" >&2
      exit 2
    fi
  done
  mkdir -p "$(dirname "$file")"
  { cat "$file" 2>/dev/null || true
    for pair in "$@"; do grep -qxF "$pair" "$file" 2>/dev/null || echo "$pair"; done; } > "$file.tmp"
  mv "$file.tmp" "$file"
}

# count NAME VALUE MIN / positive NAME VALUE: a setting that is not a whole number >= MIN / a number > 0 is refused
# in one line before the script writes anything (the CLI would refuse it too, but only after the seed folder exists
# and with the reason in a log).
count() {
  [[ "$2" =~ ^[0-9]+$ ]] && (( 10#$2 >= $3 )) || { echo "error: $1 must be a whole number >= $3, got '$2'" >&2; exit 2; }
}
positive() {
  [[ "$2" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] && awk "BEGIN { exit !($2 > 0) }" \
    || { echo "error: $1 must be a number > 0, got '$2'" >&2; exit 2; }
}

# model NAME VALUE: a model is a folder or file that exists, or a hub id (owner/name); a path that is not there
# (/abs/path, ./rel, a/b/c) is refused in one line before the script writes anything, not after its seed folder
# exists with the reason in a train log.
model() {
  [[ -e "$2" ]] && return
  [[ "$2" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] \
    || { echo "error: $1 is neither a folder that exists nor a hub id (owner/name): '$2'" >&2; exit 2; }
}

# saved_run DIR: the run under DIR that saved its model (a finished training); nothing when there is none.
saved_run() { ls -d "$1"/*/model 2>/dev/null | head -1 | xargs -r dirname || true; }

# stopped_run DIR: the run under DIR that saved a complete checkpoint but no model (its training was stopped: a
# killed session, a reboot, an out-of-memory kill). The measure scripts resume it from that checkpoint with
# `train --resume` instead of removing it and hyperfitting again from step 0 (hours lost on setting C).
stopped_run() {
  local run
  for run in "$1"/*/; do
    run=${run%/}
    [[ ! -d "$run/model" ]] && ls "$run"/checkpoints/step-*/state.json > /dev/null 2>&1 && { echo "$run"; return; }
  done
  true
}

# resume_stopped LABEL DIR LOG TRAIN...: when DIR holds a stopped run (stopped_run), run `TRAIN --resume RUN`
# (output appended to LOG) and print RUN once it saved its model; print nothing when there is none. The timings file
# $T gets "LABEL stopped CHECKPOINT", timed when RUN's newest checkpoint was saved, then (through the caller's
# `stamp`) "LABEL resume RUN" and "LABEL done RUN": the work kept from before the stop counts in a step's minutes
# (start to stopped, then resume to done), the steps lost after that checkpoint do not.
resume_stopped() {
  local label=$1 dir=$2 log=$3 run checkpoint; shift 3
  run=$(stopped_run "$dir")
  [[ -n "$run" ]] || return 0
  checkpoint=$(ls -d "$run"/checkpoints/step-*/ | tail -1)  # zero-padded step numbers: ls's order is the steps'
  echo "$(date -u -r "$checkpoint/state.json" +%FT%H:%M:%S) $label stopped $(basename "$checkpoint")" >> "$T"
  stamp "$label resume $run"
  "$@" --resume "$run" >> "$log" 2>&1 || { echo "error: resuming $label failed (see $log)" >&2; return 2; }
  [[ -d "$run/model" ]] || { echo "error: the resumed run $run saved no model (see $log)" >&2; return 2; }
  stamp "$label done $run"
  echo "$run"
}

# train_fresh LABEL DIR LOG TRAIN...: hyperfit afresh into DIR (an earlier attempt there removed): `TRAIN --out DIR`,
# its output into LOG, stamped (the caller's `stamp`) "LABEL start" and "LABEL done RUN"; prints RUN, the run that
# saved its model. A failed training, or one that saved no model, is one error line naming LOG. (Called as
# RUN=$(train_fresh ...): a `stamp` that also prints its line prints it on stderr, not into RUN.)
train_fresh() {
  local label=$1 dir=$2 log=$3 run; shift 3
  stamp "$label start" >&2
  rm -rf "$dir"
  "$@" --out "$dir" > "$log" 2>&1 || { echo "error: training $label failed (see $log)" >&2; exit 2; }
  run=$(saved_run "$dir")
  [[ -n "$run" ]] || { echo "error: the train run under $dir saved no model (see $log)" >&2; exit 2; }
  stamp "$label done $run" >&2
  echo "$run"
}

# hold_folder DIR: this script (and the commands it starts, which inherit the lock) alone works in DIR until it
# ends; a second run on the same seed folder is refused in one line instead of resuming the same training or
# appending to the same done lists beside the first. Called after the settings are checked, before any write.
hold_folder() {
  mkdir -p "$1"
  exec 9> "$1/.lock"
  flock -n 9 || { echo "error: $1 is in use by another run of a measure script (it holds $1/.lock)" >&2; exit 2; }
}

# A done list (LIST): one "NAME RUN_DIR" line per finished step, appended once the step's command succeeded, so a
# rerun skips what is listed and redoes what was cut off (an interrupted command lists nothing), and a scoring step
# reads the runs from the list, never a glob that would also take a half-written or an older run.
# done_run LIST NAME: the run LIST records for NAME; nothing when NAME is not done.
done_run() { grep -s "^$2 " "$1" | tail -1 | cut -d' ' -f2- || true; }
# record_run LIST NAME RUN_DIR: list RUN_DIR as NAME's run; a RUN_DIR that is not a folder (the command printed no
# run dir last) is one error line.
record_run() {
  [[ -d "$3" ]] || { echo "error: $2 printed no run dir (got '$3')" >&2; exit 2; }
  echo "$2 $3" >> "$1"
}
# record_step LIST NAME LOG COMMAND...: run COMMAND (its stderr into LOG), whose last line of output is the run dir
# it made, and list that as NAME's run; a failing COMMAND is one error line naming LOG, and lists nothing.
record_step() {
  local list=$1 name=$2 log=$3 run; shift 3
  run=$("$@" 2> "$log" | tail -1) || { echo "error: $name failed (see $log)" >&2; exit 2; }
  record_run "$list" "$name" "$run"
}
# score_runs DIR LIST COMMAND...: `COMMAND RUN_DIR... --out DIR` over every run LIST names, skipped when DIR holds
# a run with results.json made from the same LIST (DIR.scored keeps a copy), redone when steps were added since.
score_runs() {
  local dir=$1 list=$2 run runs; shift 2
  run=$(ls -d "$dir"/*/ 2>/dev/null | head -1 || true)
  [[ -n "$run" && -f "${run}results.json" ]] && cmp -s "$list" "$dir.scored" && return
  rm -rf "$dir" "$dir.scored"
  mapfile -t runs < <(cut -d' ' -f2- "$list")  # one run dir a line, spaces and all
  "$@" "${runs[@]}" --out "$dir" > "$dir.log" 2>&1 \
    || { echo "error: scoring into $dir failed (see $dir.log)" >&2; exit 2; }
  cp "$list" "$dir.scored.tmp" && mv "$dir.scored.tmp" "$dir.scored"
}
