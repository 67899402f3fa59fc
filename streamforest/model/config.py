"""Model configuration: ``LlavaQwenConfig`` (flat ``mm_*`` keys, released format) and typed views over it.

The released checkpoints (REFERENCE §3.1) store a Qwen2 config plus flat multimodal keys (``mm_projector_type``,
``vision_encode_type``, ``mm_local_num_frames``, …) and — because of a class-vs-instance attribute slip in
the reference — ``"model_type": "qwen2"``. We keep the flat keys exactly (so released files load) and offer:

* :class:`MultimodalSettings` — a typed, validated view over the flat keys (reference defaults);
* ``vision_config`` — optional dict with the SigLIP vision architecture *before* truncation; absent in
  released files, in which case :data:`SO400M_VISION_CONFIG` (the architecture the reference hard-codes) is used;
* ``memory_config`` — optional dict of :class:`streamforest.memory.MemoryConfig` fields; reference
  defaults when absent, with width and ToMe heads taken from the vision tower.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from transformers import Qwen2Config

logger = logging.getLogger(__name__)

__all__ = [
    "ENCODE_TYPES",
    "SO400M_VISION_CONFIG",
    "LlavaQwenConfig",
    "MultimodalSettings",
    "vision_config_of",
]

SO400M_VISION_CONFIG: dict[str, Any] = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_channels": 3,
    "image_size": 384,
    "patch_size": 14,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "attention_dropout": 0.0,
}
"""SigLIP so400m-patch14-384 vision architecture (before the last layer is removed).

This is what the reference builds for every released checkpoint (its ``SigLipVisionConfig()`` defaults,
REFERENCE §1.2); written down here so that no hub access is ever needed."""

ENCODE_TYPES = ("image", "image_video_new", "image_video_memory", "image_video_memory_batch")
"""``vision_encode_type`` values we implement (REFERENCE §1.7). ``"image"`` crashed in the reference and is run
as ``image_video_new`` with one frame per clip (docs/DEVIATIONS.md)."""


@dataclass
class MultimodalSettings:
    """Typed view over the flat ``mm_*`` keys of a :class:`LlavaQwenConfig`.

    Defaults are the reference's (``ModelArguments`` / ``getattr`` defaults, REFERENCE §4.2); keys stored only
    for compatibility (``mm_num_compress_latents`` …) are kept verbatim in the config but not listed here.
    """

    mm_vision_tower: str | None = None
    """Name of the vision tower; only its presence matters (architecture comes from ``vision_config``)."""
    mm_projector_type: str = "linear"
    mm_hidden_size: int = 1152
    mm_vision_select_layer: int = -2
    """Stored only: the SigLIP tower always returns layer -2 of the original tower (REFERENCE §1.2)."""
    mm_vision_select_feature: str = "patch"
    mm_patch_merge_type: str = "flat"
    vision_encode_type: str = "image"
    mm_local_num_frames: int = -1
    """Frames per ToMe clip; must be >= 1 before video can be encoded (reference default -1 asserts)."""
    mm_pos_num_frames: int = 8
    mm_newline_position: str = "one_token"
    mm_use_im_start_end: bool = False
    mm_use_im_patch_token: bool = False
    image_aspect_ratio: str = "square"
    tokenizer_padding_side: str = "right"
    tokenizer_model_max_length: int | None = None
    """Spliced sequences are truncated to this length (None: no truncation)."""
    time_msg_type: str | None = None
    mm_tunable_parts: str | None = None
    vision_chunk_size: int = 128
    """Frames per ViT call (ours; the reference hard-codes 128 in the memory path)."""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, config: Any) -> MultimodalSettings:
        """Read the flat keys of ``config`` (missing keys take the defaults above) and validate them."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name != "extra" and getattr(config, f.name, None) is not None:
                values[f.name] = getattr(config, f.name)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``ValueError`` naming the config key and the fix for unusable values."""
        if self.vision_encode_type not in ENCODE_TYPES:
            raise ValueError(
                f"config.json field 'vision_encode_type' = {self.vision_encode_type!r} is not supported; "
                f"use one of {ENCODE_TYPES} (video encoders 'video*' of the reference are not part of StreamForest)"
            )
        if self.mm_patch_merge_type != "flat":
            raise ValueError(
                f"config.json field 'mm_patch_merge_type' = {self.mm_patch_merge_type!r}: only 'flat' is used "
                "by StreamForest; set it to 'flat'"
            )
        if self.tokenizer_padding_side not in ("left", "right"):
            raise ValueError(
                f"config.json field 'tokenizer_padding_side' = {self.tokenizer_padding_side!r}; use 'right' or 'left'"
            )
        if self.vision_chunk_size < 1:
            raise ValueError(f"'vision_chunk_size' must be >= 1, got {self.vision_chunk_size}")

    @property
    def local_num_frames(self) -> int:
        """Frames per clip actually used: 1 for the (reference-broken) ``"image"`` encode type."""
        return 1 if self.vision_encode_type == "image" else self.mm_local_num_frames

    @property
    def uses_memory(self) -> bool:
        """True for the memory encode types (``image_video_memory*``)."""
        return self.vision_encode_type.startswith("image_video_memory")


def vision_config_of(config: Any) -> dict[str, Any]:
    """SigLIP architecture (before truncation) of ``config``: its ``vision_config`` over the so400m defaults."""
    given = getattr(config, "vision_config", None) or {}
    if not isinstance(given, dict):
        given = given.to_dict() if hasattr(given, "to_dict") else dict(given)
    merged = dict(SO400M_VISION_CONFIG)
    merged.update({k: v for k, v in given.items() if k in SO400M_VISION_CONFIG})
    if merged["num_hidden_layers"] < 2:
        raise ValueError(
            "config.json field 'vision_config.num_hidden_layers' must be >= 2 (the last layer is removed)"
        )
    return merged


class LlavaQwenConfig(Qwen2Config):
    """Qwen2 config plus the flat multimodal keys of the released StreamForest checkpoints.

    ``model_type`` is ``"llava_qwen"``; released files say ``"qwen2"`` and are accepted too (the loader
    dispatches on ``architectures[0]``). Extra keys are kept as plain attributes so that every released
    key survives a load/save round trip.
    """

    model_type = "llava_qwen"

    @property
    def multimodal(self) -> MultimodalSettings:
        """Validated typed view over the flat ``mm_*`` keys."""
        return MultimodalSettings.from_config(self)

    @property
    def is_multimodal(self) -> bool:
        """True when the config describes a vision tower (reference: ``hasattr(config, 'mm_vision_tower')``)."""
        return getattr(self, "mm_vision_tower", None) is not None

    def vision_settings(self) -> dict[str, Any]:
        """SigLIP architecture before truncation (``vision_config`` over :data:`SO400M_VISION_CONFIG`)."""
        return vision_config_of(self)

    def memory_settings(self) -> Any:
        """``streamforest.memory.MemoryConfig`` from ``memory_config`` over the reference defaults.

        Width and ToMe heads not given in ``memory_config`` come from the vision tower (``mm_hidden_size``
        and the tower's ``num_attention_heads``), as the reference builds its memory from the tower it
        loaded (REFERENCE §2.1); the other fields keep the reference defaults.
        """
        from streamforest.memory import MemoryConfig

        given = getattr(self, "memory_config", None) or {}
        if not isinstance(given, dict):
            return given
        known = {f.name for f in dataclasses.fields(MemoryConfig)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(
                f"config.json field 'memory_config' has unknown keys {unknown}; known keys: {sorted(known)}"
            )
        vision = vision_config_of(self)
        tower = {
            "hidden_size": int(getattr(self, "mm_hidden_size", None) or vision["hidden_size"]),
            "num_heads": int(vision["num_attention_heads"]),
        }
        return MemoryConfig(**{**tower, **given})
