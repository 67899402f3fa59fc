"""Evaluation through the real lmms-eval 0.7.3.

* :mod:`streamforest.eval.scoring` — answer extraction and metrics (reference and strict) for all tasks.
* :mod:`streamforest.eval.media` — annotation/video locations (``streamforest/assets/eval_paths.yaml`` + env vars),
  doc loading and ``[path, media_dict]`` visuals.
* :mod:`streamforest.eval.official` — readers of the benchmarks' own release files (OVO-Bench, StreamingBench)
  and the per-config layout detection.
* :mod:`streamforest.eval.manifest` — the ``lmms_eval.models`` entry point (model id ``streamforest``).
* :mod:`streamforest.eval.adapter` — the lmms model class (imports lmms-eval; loaded only by lmms-eval).

The task folders live in ``lmms_eval/tasks/`` at the repository root (``--include_path lmms_eval/tasks``).
Nothing here imports lmms-eval at package import time.
"""

from __future__ import annotations

__all__ = ["media", "official", "scoring"]
