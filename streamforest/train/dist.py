"""Distributed environment: derive torch's variables from Slurm (``srun``) when the launcher did not set them.

Under ``srun`` (one task per GPU) the reference parsed ``scontrol show hostname``; we read the Slurm
variables directly: ``RANK = SLURM_PROCID``, ``WORLD_SIZE = SLURM_NTASKS``, ``LOCAL_RANK = SLURM_LOCALID``,
``LOCAL_WORLD_SIZE = SLURM_NTASKS_PER_NODE`` (first value), ``MASTER_ADDR`` = first host of
``SLURM_STEP_NODELIST`` / ``SLURM_JOB_NODELIST`` (bracket ranges expanded here), ``MASTER_PORT`` 10023 unless set.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import MutableMapping

logger = logging.getLogger(__name__)

DEFAULT_MASTER_PORT = "10023"


def first_host(nodelist: str) -> str:
    """First host of a Slurm node list: ``"gpu[03-05,9],cpu1"`` → ``"gpu03"``."""
    nodelist = nodelist.strip()
    m = re.match(r"^([^,\[]+)(?:\[([^\]]+)\])?", nodelist)
    if not m:
        raise ValueError(f"cannot parse the Slurm node list {nodelist!r}")
    prefix, ranges = m.groups()
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def setup_slurm_env(env: MutableMapping[str, str] | None = None) -> bool:
    """Fill RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* from Slurm when running under ``srun`` without them.

    Returns True when the variables were derived from Slurm.
    """
    env = os.environ if env is None else env
    if "RANK" in env or "SLURM_PROCID" not in env or "SLURM_NTASKS" not in env:
        return False
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = env["SLURM_NTASKS"]
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    per_node = env.get("SLURM_NTASKS_PER_NODE", env["SLURM_NTASKS"]).split("(")[0].split(",")[0]
    env["LOCAL_WORLD_SIZE"] = per_node
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "localhost"
    env.setdefault("MASTER_ADDR", first_host(nodelist))
    env.setdefault("MASTER_PORT", DEFAULT_MASTER_PORT)
    logger.info("Slurm: rank %s of %s, master %s:%s", env["RANK"], env["WORLD_SIZE"], env["MASTER_ADDR"], env["MASTER_PORT"])
    return True


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


class RankZeroFilter(logging.Filter):
    """Let records through on rank 0 only (warnings and errors pass on every rank)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return rank() == 0 or record.levelno >= logging.WARNING
