"""Entry point of the ``lmms_eval.models`` group (declared in pyproject.toml).

lmms-eval 0.7.3 (``ModelRegistryV2.load_entrypoint_manifests``) loads each entry point and accepts a
``ModelManifest``, an iterable of them, or a callable returning either; this is the callable. lmms-eval is
imported lazily so that importing ``streamforest`` never requires it.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "streamforest"
ADAPTER_CLASS_PATH = "streamforest.eval.adapter.StreamForestLMM"


def get_manifests() -> list[Any]:
    """``[ModelManifest("streamforest", simple_class_path=…StreamForestLMM)]`` for lmms-eval's registry."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=ADAPTER_CLASS_PATH)]
