"""Legacy ``llava.model.builder`` (reference path): ``load_pretrained_model`` → ``streamforest.model.loader``.

No logic here: the reference's name-substring dispatch (``qwen``/``flash``/``moe`` …, REFERENCE §8.2 item 14) is
replaced by the loader's dispatch on ``config.json``'s ``architectures[0]``.
"""

from __future__ import annotations

import logging
from typing import Any

from streamforest.model.loader import load_pretrained

logger = logging.getLogger(__name__)

__all__ = ["load_pretrained_model"]


def load_pretrained_model(
    model_path: str,
    model_base: str | None,
    model_name: str | None,
    load_8bit: bool = False,
    load_4bit: bool = False,
    device_map: Any = "auto",
    attn_implementation: str | None = None,
    customized_config: Any = None,
    overwrite_config: dict[str, Any] | None = None,
    multimodal: bool = True,
    torch_dtype: Any = None,
    **kwargs: Any,
) -> tuple[Any, Any, Any, int]:
    """Return ``(tokenizer, model, image_processor, context_len)`` like the reference builder.

    ``model_base`` (LoRA merging), 8/4-bit loading and ``customized_config`` are not supported.
    ``torch_dtype=None`` keeps the checkpoint's dtype (the reference forced float16, REFERENCE §8.2 item 17).
    ``device_map`` may be a device string; ``"auto"`` means CUDA when available, else CPU.
    """
    if model_base is not None or load_8bit or load_4bit or customized_config is not None:
        raise NotImplementedError(
            "load_pretrained_model: model_base, load_8bit/load_4bit and customized_config are not supported; "
            "merge LoRA weights first and load the merged checkpoint"
        )
    if kwargs:
        logger.warning("load_pretrained_model ignores arguments %s", sorted(kwargs))
    device = device_map if isinstance(device_map, str) and device_map != "auto" else _auto_device()
    loaded = load_pretrained(
        model_path,
        dtype=torch_dtype if torch_dtype is not None else "auto",
        device=device,
        attn_implementation=attn_implementation,
        overrides=overwrite_config,
    )
    return loaded.tokenizer, loaded.model, loaded.image_processor, loaded.context_len


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
