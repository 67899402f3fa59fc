"""Legacy import path ``llava.mm_utils``: ``tokenizer_image_token``, ``KeywordsStoppingCriteria``, model names."""

from __future__ import annotations

from typing import Any

from streamforest.prompts import tokenizer_image_token

__all__ = ["KeywordsStoppingCriteria", "get_model_name_from_path", "tokenizer_image_token"]  # noqa: F822


def get_model_name_from_path(model_path: str) -> str:
    """Last path component; ``<parent>_checkpoint-N`` for a ``checkpoint-N`` folder (reference naming)."""
    parts = str(model_path).strip("/").split("/")
    if parts[-1].startswith("checkpoint-") and len(parts) > 1:
        return parts[-2] + "_" + parts[-1]
    return parts[-1]


def __getattr__(name: str) -> Any:
    if name == "KeywordsStoppingCriteria":  # built lazily: it subclasses transformers.StoppingCriteria
        from streamforest import prompts

        return prompts.KeywordsStoppingCriteria
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
