"""Shared fixtures: tiny released-format checkpoints built once per session (offline, CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_flag, "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny StreamForest checkpoint (memory projector ``tome729_fstw_pemf``) in the released format."""
    from streamforest.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_memory"), projector_type="tome729_fstw_pemf")


@pytest.fixture(scope="session")
def tiny_checkpoint_tome16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny StreamForest-Pretrain-like checkpoint (``tome16_mlp``, clips of 8 frames) in the released format."""
    from streamforest.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_tome16"), projector_type="tome16_mlp")
