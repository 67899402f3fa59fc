#!/usr/bin/env bash
# Stage 1: initialise the connector (tome64_mlp, plain template, only the MLP trains).
# Usage: bash s1_siglip_tome64_mlp.sh [section.key=value ...]
#   e.g. NNODES=4 NODE_RANK=0 MASTER_ADDR=host0 bash s1_siglip_tome64_mlp.sh training.output_dir=outputs/my_run
#   LAUNCHER=srun|deepspeed|python selects another launcher (see scripts/train/_launch.sh).
# Hyper-parameters live in configs/train/stage1_init_connector.yaml; CONFIG=<other.yaml> runs another config.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CONFIG="${CONFIG:-${REPO_ROOT}/configs/train/stage1_init_connector.yaml}"
# shellcheck source=../_launch.sh
source "${REPO_ROOT}/scripts/train/_launch.sh" "$@"
