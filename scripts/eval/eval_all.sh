#!/usr/bin/env bash
# Evaluate a checkpoint on the eight benchmarks (the reference run_eval.sh), then print a summary table.
#
#   CKPT_PATH=/ckpts/StreamForest-Qwen2-7B NUM_GPUS=8 scripts/eval/eval_all.sh
#   CKPT_PATH=... BENCHMARKS="odvbench videomme" scripts/eval/eval_all.sh --limit 16
#
# Environment: see run_task.sh (CKPT_PATH, MAX_FRAMES=2048, TIME_MSG=short_online_v2, NUM_GPUS, ...), plus
# BENCHMARKS (default: all of configs/eval/benchmarks.yaml, in order). Extra arguments go to lmms-eval.
# Results: results/<ckpt-name>/<benchmark>/. Exit status 1 names every benchmark that produced no results.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${CKPT_PATH:?set CKPT_PATH to a checkpoint directory}"
PYTHON="${PYTHON:-python}"
RESULTS_DIR="${RESULTS_DIR:-results}"
DEFAULT_BENCHMARKS="odvbench streamingbench ovbench ovobench videomme mlvu_mc mvbench perceptiontest_val_mc"
read -r -a BENCHES <<< "${BENCHMARKS:-$DEFAULT_BENCHMARKS}"

FAILED=()
for bench in "${BENCHES[@]}"; do
  if ! "$REPO/scripts/eval/run_task.sh" "$bench" "$@"; then
    FAILED+=("$bench")
  fi
done

echo
"$PYTHON" "$REPO/scripts/eval/summarize.py" "$RESULTS_DIR/$(basename "${CKPT_PATH%/}")" --only "${BENCHES[@]}"
if (( ${#FAILED[@]} )); then
  echo "FAILED benchmarks (no results): ${FAILED[*]}" >&2
  exit 1
fi
echo "all ${#BENCHES[@]} benchmark(s) produced results"
