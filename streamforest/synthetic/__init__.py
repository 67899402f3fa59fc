"""Procedural driving streams and their QA in the real annotation formats (the data behind ``make demo``).

* :mod:`~streamforest.synthetic.scenes` — seeded world state over time and its renderer (numpy);
* :mod:`~streamforest.synthetic.writer` — mp4 (PyAV) and PNG writers;
* :mod:`~streamforest.synthetic.questions` — question families, balancing, captions from the ground truth;
* :mod:`~streamforest.synthetic.dataset` — :func:`generate_dataset` writes everything (layout documented there).

CLI: ``python -m streamforest.synthetic OUT_DIR --seed 0 --train-videos N --eval-videos M [--quick]``.
"""

from __future__ import annotations

from streamforest.synthetic.dataset import DatasetParams, DatasetPaths, generate_dataset, make_scene
from streamforest.synthetic.questions import EVAL_CONFIGS, FAMILIES, format_mc_prompt
from streamforest.synthetic.scenes import Scene, SceneConfig

__all__ = [
    "EVAL_CONFIGS",
    "FAMILIES",
    "DatasetParams",
    "DatasetPaths",
    "Scene",
    "SceneConfig",
    "format_mc_prompt",
    "generate_dataset",
    "make_scene",
]
