#!/usr/bin/env bash
# Evaluate another lmms-eval model on our tasks (here LLaVA-OneVision on ODV-Bench and StreamingBench),
# the counterpart of the reference's scripts/eval/others/eval_internvl2-8B.sh.
#
#   MODEL=llava_onevision MODEL_ARGS=pretrained=lmms-lab/llava-onevision-qwen2-7b-ov,max_frames_num=24 \
#     lmms_eval/examples/eval_other_model.sh [--limit 8]
#
# Caveat (see lmms_eval/README.md): the online benchmarks give the question time only as the clip end of the
# visual ([path, {"start", "end", ...}]); a model that ignores that dict sees the whole video.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL="${MODEL:-llava_onevision}"
MODEL_ARGS="${MODEL_ARGS:-pretrained=lmms-lab/llava-onevision-qwen2-7b-ov,max_frames_num=24}"
TASKS="${TASKS:-odvbench,streamingbench}"
OUT="${OUT:-results/$MODEL}"
"${PYTHON:-python}" -m lmms_eval --model "$MODEL" --model_args "$MODEL_ARGS" --tasks "$TASKS" --batch_size 1 \
  --log_samples --output_path "$OUT" --include_path "$REPO/lmms_eval/tasks" "$@"
ls "$OUT"/*/*_results.json >/dev/null 2>&1 || { echo "no results JSON under $OUT: the run failed" >&2; exit 1; }
