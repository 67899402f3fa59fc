"""StreamForest model: config, truncated SigLIP tower, projectors, splice, LlavaQwen model, loader.

Importing this package is light; the transformers-based classes load on first attribute access::

    from streamforest.model import load_pretrained, LlavaQwenForCausalLM
    tokenizer, model, image_processor, context_len = load_pretrained("ckpt_dir", dtype="bfloat16")
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LlavaQwenConfig": "streamforest.model.config",
    "MultimodalSettings": "streamforest.model.config",
    "SO400M_VISION_CONFIG": "streamforest.model.config",
    "LlavaQwenForCausalLM": "streamforest.model.llava_qwen",
    "LlavaQwenModel": "streamforest.model.llava_qwen",
    "SigLipVisionTower": "streamforest.model.vision",
    "SigLipImageProcessor": "streamforest.model.processor",
    "SpliceResult": "streamforest.model.splice",
    "splice_visual_tokens": "streamforest.model.splice",
    "LoadedModel": "streamforest.model.loader",
    "load_pretrained": "streamforest.model.loader",
    "save_released": "streamforest.model.loader",
    "to_released_key": "streamforest.model.loader",
    "from_released_key": "streamforest.model.loader",
    "build_projector": "streamforest.model.projectors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'streamforest.model' has no attribute {name!r}")
