"""Legacy ``build_vision_projector(config, vision_cfg)``: maps config attributes to
:func:`streamforest.model.projectors.build_projector` (no logic of its own)."""

from __future__ import annotations

from typing import Any

from torch import nn

from streamforest.memory import MemoryConfig
from streamforest.model.projectors import PROJECTOR_TYPES, build_projector

__all__ = ["PROJECTOR_TYPES", "build_vision_projector"]

_SO400M = {"image_size": 384, "patch_size": 14, "num_attention_heads": 16}


def build_vision_projector(config: Any, vision_cfg: Any = None, **kwargs: Any) -> nn.Module:
    """Projector for ``config.mm_projector_type``.

    ``config`` needs ``mm_projector_type``, ``mm_hidden_size``, ``hidden_size`` (``mm_pos_num_frames`` is
    accepted and unused: tables are built on demand) and optionally ``memory_config`` (dict);
    ``vision_cfg`` needs ``image_size``, ``patch_size``, ``num_attention_heads`` (SigLIP so400m when None).
    Extra keyword arguments are accepted for signature compatibility and ignored.
    """
    vision = {key: getattr(vision_cfg, key, default) for key, default in _SO400M.items()}
    memory = getattr(config, "memory_config", None)
    return build_projector(
        config.mm_projector_type,
        mm_hidden_size=config.mm_hidden_size,
        hidden_size=config.hidden_size,
        num_heads=vision["num_attention_heads"],
        grid=vision["image_size"] // vision["patch_size"],
        memory_config=MemoryConfig.from_dict(memory) if isinstance(memory, dict) else memory,
    )
