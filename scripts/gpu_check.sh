#!/usr/bin/env bash
# One prepared check of hyperfit's GPU paths for a bare GPU machine with no network (issue #11).
#
#   bash scripts/gpu_check.sh            # on the GPU machine, from anywhere: about 5-6 minutes, at most 7m45s
#   bash scripts/gpu_check.sh --dry-run  # anywhere, CPU: the same steps on micro shapes, about a minute idle
#
# Uses only what is installed there (python3 with torch + transformers; the repo is put on PYTHONPATH, not
# pip-installed; nothing is downloaded). Writes under $OUT (default: a new temp folder):
#   gpu_check.log             everything printed, with each step's exit code and seconds
#   gpu_tests.xml             junit report of python -m pytest tests/gpu
#   speed_real_imagegpt.json  bench_speed.py --shape real --only imagegpt   (ImageGPT-Large shape)
#   speed_real_llama.json     bench_speed.py --shape real --only llama      (TinyLlama-1.1B shape)
#                             (speed_micro_*.json under --dry-run)
# Every step runs under `timeout` inside one overall budget, so a hang cannot eat the machine's time; the
# bench JSONs are rewritten after each workload, so a step cut short keeps what it measured.
# Exit status: 0 when every step exited 0, else 1 (the log says which step failed).
set -u

DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
PY="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ "$DRY" = 1 ]; then
  # The dry run's limits are hang guards only: it checks that every step runs, not how fast (about a minute on an
  # idle CPU, several times that on a loaded one; a step at load 10 outran the old 120 s limit).
  BUDGET=1800                      # seconds for the whole check
  LIMIT_ENV=600 LIMIT_TESTS=600 LIMIT_IMAGEGPT=600 LIMIT_LLAMA=600
  SHAPE=micro
  BENCH=(--shape micro --device cpu --steps 1 --warmup-steps 1 --sequential --threads 1)
else
  BUDGET=465                       # 7 3/4 minutes: the issue asks for under 8
  LIMIT_ENV=30 LIMIT_TESTS=170 LIMIT_IMAGEGPT=190 LIMIT_LLAMA=120
  SHAPE=real
  BENCH=(--shape real --device cuda --steps 3 --warmup-steps 2)
fi
# ImageGPT-Large: one timed run per side (stock HF generate of 64 x 768 tokens alone takes ~20 s a run)
BENCH_IMAGEGPT=("${BENCH[@]}" --repeats 1)
BENCH_LLAMA=("${BENCH[@]}" --repeats 2)
START=$(date +%s)
FAILED=()

log() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT CMD...: runs CMD under timeout (capped by what is left of the budget), logs rc and time
step() {
  local name=$1 limit=$2 left rc began
  shift 2
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 10 ]; then
    log "== $name: SKIPPED (budget of ${BUDGET}s spent)"
    FAILED+=("$name(skipped)")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "== $name (limit ${limit}s): $*"
  began=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  log "== $name: rc=$rc in $(($(date +%s) - began))s$([ "$rc" = 124 ] && echo ' (TIMED OUT)')"
  [ "$rc" = 0 ] || FAILED+=("$name(rc=$rc)")
}

log "gpu_check $([ "$DRY" = 1 ] && echo '--dry-run ')at $(date -u +%FT%TZ) in $ROOT; OUT=$OUT"
(git -C "$ROOT" log --oneline -1 2>/dev/null || true) | tee -a "$LOG"
if [ "$DRY" = 0 ]; then
  (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true) | tee -a "$LOG"
fi
step environment "$LIMIT_ENV" "$PY" -c "
import platform, torch, transformers
print('python', platform.python_version(), 'torch', torch.__version__, 'transformers', transformers.__version__)
print('cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')
import hyperfit_core.train, hyperfit_vision.fast_decode, hyperfit_core.decoding  # the repo imports here
if not torch.cuda.is_available() and not $DRY:
    raise SystemExit('no CUDA device visible')
"
step gpu_tests "$LIMIT_TESTS" "$PY" -m pytest tests/gpu -q -rs -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml"
step bench_imagegpt "$LIMIT_IMAGEGPT" "$PY" scripts/bench_speed.py "${BENCH_IMAGEGPT[@]}" --only imagegpt \
  --out "$OUT/speed_${SHAPE}_imagegpt.json"
step bench_llama "$LIMIT_LLAMA" "$PY" scripts/bench_speed.py "${BENCH_LLAMA[@]}" --only llama \
  --out "$OUT/speed_${SHAPE}_llama.json"

# one line per workload: measured numbers beside the targets
"$PY" - "$OUT"/speed_"$SHAPE"_*.json <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
for path in sys.argv[1:]:
    try:
        result = json.load(open(path))
    except (OSError, ValueError) as exc:
        print(f"{path}: unreadable ({exc})")
        continue
    print(f"{path}: {result['device']}, shape {result['shape']}, {result['seconds']} s, complete={result['complete']}")
    for row in result["workloads"]:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"
        targets = ", ".join(f"{t['field']} {t['op']} {t['target']}: {'met' if t['met'] else 'NOT met'}"
                            for t in row["targets"]) or "no targets"
        print(f"  {row['name']:22s} stock {fmt(row['stock']):>10} ours {fmt(row['ours']):>10} {row['unit']:9s} "
              f"ratio {fmt(row['ratio'])} compile_s {fmt(row.get('compile_s'))}  [{targets}]")
EOF
log "== total $(($(date +%s) - START))s; failed: ${FAILED[*]:-none}"
[ "${#FAILED[@]}" = 0 ]
