"""Training: stage configs, model building, trainer and ``python -m streamforest.train CONFIG [k=v ...]``.

Importing this package is light (no transformers / DeepSpeed); the heavy modules load on first use::

    from streamforest.train import load_config, run
    metrics = run(load_config("configs/train/tiny/stage1.yaml", ["training.max_steps=2"]))
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "streamforest.train.config",
    "StageConfig": "streamforest.train.config",
    "load_config": "streamforest.train.config",
    "save_config": "streamforest.train.config",
    "build_stage_model": "streamforest.train.build",
    "load_mm_projector": "streamforest.train.build",
    "StreamForestTrainer": "streamforest.train.trainer",
    "DataSkipError": "streamforest.train.trainer",
    "save_mm_projector": "streamforest.train.trainer",
    "run": "streamforest.train.run",
    "merge_lora": "streamforest.train.merge_lora",
    "make_training_fixtures": "streamforest.train.fixtures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'streamforest.train' has no attribute {name!r}")
