#!/usr/bin/env bash
# Evaluate one benchmark of configs/eval/benchmarks.yaml with lmms-eval and check that it produced results.
#
#   CKPT_PATH=/ckpts/StreamForest-Qwen2-7B scripts/eval/run_task.sh odvbench [--limit 8 ...]
#
# Environment (defaults): CKPT_PATH (required), MAX_FRAMES=2048, TIME_MSG=short_online_v2,
# NUM_GPUS (unset/0: one process; N: `python -m accelerate.commands.launch --num_processes N`),
# MAIN_PROCESS_PORT=10078, MODEL_ARGS_EXTRA (appended to --model_args, e.g. dtype=float16),
# RESULTS_DIR=results, PYTHON=python. Extra arguments go to lmms-eval unchanged.
# Output: $RESULTS_DIR/<ckpt-name>/<benchmark>/ (results JSON, sample logs, lmms-eval.log).
# Exit status: 0 only if a complete results JSON was written (lmms-eval itself exits 0 on failure).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH="${1:?usage: run_task.sh BENCHMARK [lmms-eval args...] (benchmarks: see configs/eval/benchmarks.yaml)}"
shift
: "${CKPT_PATH:?set CKPT_PATH to a checkpoint directory}"
MAX_FRAMES="${MAX_FRAMES:-2048}"
TIME_MSG="${TIME_MSG:-short_online_v2}"
RESULTS_DIR="${RESULTS_DIR:-results}"
PYTHON="${PYTHON:-python}"
CKPT_NAME="$(basename "${CKPT_PATH%/}")"
OUT="$RESULTS_DIR/$CKPT_NAME/$BENCH"

TASKS="$("$PYTHON" - "$REPO/configs/eval/benchmarks.yaml" "$BENCH" <<'PY'
import sys, yaml
entries = {e["name"]: e for e in yaml.safe_load(open(sys.argv[1]))["benchmarks"]}
if sys.argv[2] not in entries:
    sys.exit(f"unknown benchmark {sys.argv[2]!r}; known: {', '.join(entries)}")
print(entries[sys.argv[2]]["tasks"])
PY
)"

MODEL_ARGS="pretrained=$CKPT_PATH,conv_template=qwen_2,max_frames_num=$MAX_FRAMES,time_msg=$TIME_MSG"
[[ -n "${MODEL_ARGS_EXTRA:-}" ]] && MODEL_ARGS="$MODEL_ARGS,$MODEL_ARGS_EXTRA"

if [[ "${NUM_GPUS:-0}" -gt 0 ]]; then
  # `accelerate launch` (the console script) crashes when timm is installed without torchvision
  LAUNCH=("$PYTHON" -m accelerate.commands.launch --num_processes "$NUM_GPUS"
          --main_process_port "${MAIN_PROCESS_PORT:-10078}" -m lmms_eval)
else
  LAUNCH=("$PYTHON" -m lmms_eval)
fi

mkdir -p "$OUT"
echo "[$BENCH] tasks=$TASKS -> $OUT"
set +e
"${LAUNCH[@]}" --model streamforest --model_args "$MODEL_ARGS" --tasks "$TASKS" --batch_size 1 \
  --log_samples --log_samples_suffix "$BENCH" --output_path "$OUT" \
  --include_path "$REPO/lmms_eval/tasks" "$@" 2>&1 | tee "$OUT/lmms-eval.log"
set -e
if ! "$PYTHON" "$REPO/scripts/eval/summarize.py" "$RESULTS_DIR/$CKPT_NAME" --check "$BENCH"; then
  echo "[$BENCH] FAILED: no complete results JSON under $OUT (see $OUT/lmms-eval.log)" >&2
  exit 1
fi
