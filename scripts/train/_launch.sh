#!/usr/bin/env bash
# Shared launcher of the stage scripts (sourced; needs REPO_ROOT and CONFIG; forwards "$@" as config overrides).
#
#   LAUNCHER=torchrun (default)  single or multi node: NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, NPROC_PER_NODE
#   LAUNCHER=deepspeed           the DeepSpeed launcher (same variables; HOSTFILE optional)
#   LAUNCHER=srun                Slurm, one task per GPU (inside sbatch/salloc); ranks come from SLURM_* in Python
#   LAUNCHER=python              one process (debugging, CPU)
# Extra: PYTHON (interpreter), OUTPUT_DIR (overrides training.output_dir), SRUN_ARGS, LOG_FILE.
set -euo pipefail

cd "${REPO_ROOT}"
PYTHON=${PYTHON:-python}
LAUNCHER=${LAUNCHER:-torchrun}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
if [[ -z "${NPROC_PER_NODE:-}" ]]; then
    NPROC_PER_NODE=$( (nvidia-smi -L 2>/dev/null || true) | grep -c GPU || true)
    [[ "${NPROC_PER_NODE}" -ge 1 ]] || NPROC_PER_NODE=1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-${HOME}/.cache/streamforest/torch_extensions}

ARGS=("$@")
if [[ -n "${OUTPUT_DIR:-}" ]]; then ARGS+=("training.output_dir=${OUTPUT_DIR}"); fi
# The output dir as the trainer will see it (config + overrides), to keep the log beside the checkpoints.
RUN_DIR=$("${PYTHON}" -c 'import sys; from streamforest.train.config import load_config; print(load_config(sys.argv[1], sys.argv[2:]).training.output_dir)' "${CONFIG}" "${ARGS[@]}")
mkdir -p "${RUN_DIR}"
LOG_FILE=${LOG_FILE:-${RUN_DIR}/train_$(date +%Y%m%d_%H%M%S)_node${NODE_RANK}.log}
echo "[streamforest] ${LAUNCHER}: ${CONFIG} ${ARGS[*]} -> ${RUN_DIR} (log ${LOG_FILE})"

case "${LAUNCHER}" in
    torchrun)
        CMD=("${PYTHON}" -m torch.distributed.run --nnodes "${NNODES}" --node_rank "${NODE_RANK}"
             --master_addr "${MASTER_ADDR}" --master_port "${MASTER_PORT}" --nproc_per_node "${NPROC_PER_NODE}")
        ;;
    deepspeed)
        CMD=(deepspeed --num_nodes "${NNODES}" --num_gpus "${NPROC_PER_NODE}" --master_addr "${MASTER_ADDR}"
             --master_port "${MASTER_PORT}")
        if [[ -n "${HOSTFILE:-}" ]]; then CMD+=(--hostfile "${HOSTFILE}"); fi
        CMD+=(--module)
        ;;
    srun)
        # shellcheck disable=SC2206
        CMD=(srun ${SRUN_ARGS:-} "${PYTHON}" -u -m)
        ;;
    python)
        CMD=("${PYTHON}" -u -m)
        ;;
    *)
        echo "unknown LAUNCHER=${LAUNCHER}; use torchrun, deepspeed, srun or python" >&2
        exit 2
        ;;
esac
if [[ "${LAUNCHER}" == "torchrun" ]]; then CMD+=(-m); fi

"${CMD[@]}" streamforest.train "${CONFIG}" "${ARGS[@]}" 2>&1 | tee -a "${LOG_FILE}"
exit "${PIPESTATUS[0]}"
