#!/usr/bin/env bash
# Stage 3: short/long video SFT (tome16_mlp, clips of 8 frames) -> StreamForest-Pretrain.
# Usage: bash s3_siglip_tome16_mlp.sh [section.key=value ...]
#   e.g. NNODES=4 NODE_RANK=0 MASTER_ADDR=host0 bash s3_siglip_tome16_mlp.sh training.output_dir=outputs/my_run
#   LAUNCHER=srun|deepspeed|python selects another launcher (see scripts/train/_launch.sh).
# Hyper-parameters live in configs/train/stage3_video_sft.yaml; CONFIG=<other.yaml> runs another config.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CONFIG="${CONFIG:-${REPO_ROOT}/configs/train/stage3_video_sft.yaml}"
# shellcheck source=../_launch.sh
source "${REPO_ROOT}/scripts/train/_launch.sh" "$@"
