#!/usr/bin/env bash
# Stage 4: online fine-tuning with the FSTW/PEMF memory projector -> StreamForest-Qwen2-7B.
# Usage: bash s4_siglip_online_dynamic_tree_memory.sh [section.key=value ...]
#   e.g. NNODES=4 NODE_RANK=0 MASTER_ADDR=host0 bash s4_siglip_online_dynamic_tree_memory.sh training.output_dir=outputs/my_run
#   LAUNCHER=srun|deepspeed|python selects another launcher (see scripts/train/_launch.sh).
# Hyper-parameters live in configs/train/stage4_online_ft.yaml; CONFIG=<other.yaml> runs another config.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CONFIG="${CONFIG:-${REPO_ROOT}/configs/train/stage4_online_ft.yaml}"
# shellcheck source=../_launch.sh
source "${REPO_ROOT}/scripts/train/_launch.sh" "$@"
