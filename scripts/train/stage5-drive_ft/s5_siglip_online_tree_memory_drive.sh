#!/usr/bin/env bash
# Stage 5: driving fine-tuning with the memory projector -> StreamForest-Drive-Qwen2-7B.
# Usage: bash s5_siglip_online_tree_memory_drive.sh [section.key=value ...]
#   e.g. NNODES=4 NODE_RANK=0 MASTER_ADDR=host0 bash s5_siglip_online_tree_memory_drive.sh training.output_dir=outputs/my_run
#   LAUNCHER=srun|deepspeed|python selects another launcher (see scripts/train/_launch.sh).
# Hyper-parameters live in configs/train/stage5_drive_ft.yaml; CONFIG=<other.yaml> runs another config.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CONFIG="${CONFIG:-${REPO_ROOT}/configs/train/stage5_drive_ft.yaml}"
# shellcheck source=../_launch.sh
source "${REPO_ROOT}/scripts/train/_launch.sh" "$@"
