"""Model configuration: ``LlavaQwenConfig`` (flat ``mm_*`` keys, released format) and typed views over it.

The released checkpoints (REFERENCE §3.1) store a Qwen2 config plus flat multimodal keys (``mm_projector_type``,
``vision_encode_type``, ``mm_local_num_frames``, …) and — because of a class-vs-instance attribute slip in
the reference — ``"model_type": "qwen2"``. We keep the flat keys exactly (so released files load) and offer:

* :class:`MultimodalSettings` — a typed, validated view over the flat keys (reference defaults);
* ``vision_config`` — optional dict with the SigLIP vision architecture *before* truncation; absent in
  released files, in which case :data:`SO400M_VISION_CONFIG` (the architecture the reference hard-codes) is used;
* ``memory_config`` — optional dict of :class:`streamforest.memory.MemoryConfig` fields; reference
  defaults when absent, with width and ToMe heads taken from the vision tower;
* the checkpoint schema — :data:`RELEASED_KEYS` (every flat key of a released ``config.json`` and its released
  value), :data:`RELEASED_PRESETS` (the keys that differ between released checkpoints), :data:`STORED_ONLY_KEYS`
  (keys carried verbatim that nothing reads) and :func:`checkpoint_keys`. The trainer, the builder and the tiny
  checkpoints all write their flat keys through :func:`checkpoint_keys`;
* :func:`is_memory_model` — the one test for "this is the event-memory model".
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
    "MEMORY_PROJECTOR_TYPES",
    "RELEASED_KEYS",
    "RELEASED_PRESETS",
    "SO400M_VISION_CONFIG",
    "STORED_ONLY_KEYS",
    "TOWER_KEYS",
    "LlavaQwenConfig",
    "MultimodalSettings",
    "checkpoint_keys",
    "is_memory_model",
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

MEMORY_ENCODE_PREFIX = "image_video_memory"
"""``vision_encode_type`` values starting with this run the event-memory path (REFERENCE §1.7)."""
MEMORY_PROJECTOR_TYPES = ("tome729_fstw_pemf",)
"""``mm_projector_type`` values that hold an event memory (and read ``memory_config``)."""

# ----------------------------------------------------------------------------------------------------------
# The checkpoint schema: flat keys of the released config.json (REFERENCE §3.1)
# ----------------------------------------------------------------------------------------------------------

STORED_ONLY_KEYS: dict[str, str] = {
    "vision_tower_pretrained": "reference loader option; always null in the released files",
    "use_mm_proj": "reference flag; the projector is always built",
    "mm_num_compress_latents": "latents of a compressor the StreamForest projectors do not have",
    "mm_num_compress_query_type": "query type of that compressor",
    "mm_close_init": "init switch of that compressor",
    "min_slow_num_frames": "slow-fast option of VideoChat-Flash; unused by StreamForest",
    "mm_llm_compress": "LLM token compression (off in every released model)",
    "llm_compress_layer_list": "layers of that compression",
    "llm_image_token_ratio_list": "token ratios of that compression",
    "llm_compress_type": "kind of that compression",
    "enable_depth_vision_tower": "depth tower of the parent code base (off)",
    "use_pos_skipping": "position skipping during training (off in every stage)",
    "pos_skipping_range": "range of that skipping",
    "mm_spatial_pool_mode": "pooling of a projector StreamForest does not use",
    "frame_aspect_ratio": "frame resizing mode; frames are always resized square",
    "max_num_pixels": "any-resolution limit; unused (square images)",
    "image_grid_pinpoints": "any-resolution grid; unused",
    "frame_grid_pinpoints": "any-resolution grid for frames; unused",
    "image_crop_resolution": "any-resolution crop; unused",
    "image_split_resolution": "any-resolution split; unused",
    "time_msg_per_frame_token": "per-frame time tokens; unused (time messages are text)",
    "mm_projector_lr": "training record: learning rate of the connector (null = the LLM's)",
    "mm_vision_tower_lr": "training record: learning rate of the ViT",
}
"""Keys the released files carry and we keep verbatim (load → save round trip) but that nothing reads.
They are not training options; a stage YAML can still write one through ``model.config_overrides``."""

RELEASED_KEYS: dict[str, Any] = {
    "mm_vision_tower": "google/siglip-so400m-patch14-384",
    "vision_tower_pretrained": None,
    "use_mm_proj": True,
    "mm_hidden_size": 1152,
    "mm_vision_select_layer": -2,
    "mm_vision_select_feature": "patch",
    "mm_patch_merge_type": "flat",
    "mm_num_compress_latents": 128,
    "mm_num_compress_query_type": "pooling",
    "mm_close_init": True,
    "min_slow_num_frames": 4,
    "mm_llm_compress": False,
    "llm_compress_layer_list": [8, 16, 24],
    "llm_image_token_ratio_list": [1.0, 0.5, 0.25, 0.125],
    "llm_compress_type": "attention",
    "mm_newline_position": "one_token",
    "enable_depth_vision_tower": False,
    "use_pos_skipping": False,
    "pos_skipping_range": 4096,
    "mm_spatial_pool_mode": "bilinear",
    "image_aspect_ratio": "square",
    "frame_aspect_ratio": "square",
    "max_num_pixels": 14745600000,
    "image_grid_pinpoints": None,
    "frame_grid_pinpoints": None,
    "image_crop_resolution": None,
    "image_split_resolution": None,
    "tokenizer_padding_side": "right",
    "tokenizer_model_max_length": 32768,
    "time_msg_per_frame_token": None,
    "mm_use_im_start_end": False,
    "mm_use_im_patch_token": False,
    "mm_projector_lr": None,
    "mm_vision_tower_lr": 2e-06,
    # the keys below differ between checkpoints (RELEASED_PRESETS); values of StreamForest-Qwen2-7B
    "mm_projector_type": "tome729_fstw_pemf",
    "vision_encode_type": "image_video_memory_batch",
    "mm_local_num_frames": 1,
    "mm_pos_num_frames": 1,
    "time_msg_type": "short_online_v2",
    "mm_tunable_parts": "mm_mlp_adapter,mm_language_model",
}
"""Every flat multimodal key of a released ``config.json`` with its released value (REFERENCE §3.1).
What each key means: :class:`MultimodalSettings` (keys the model reads) or :data:`STORED_ONLY_KEYS`."""

RELEASED_PRESETS: dict[str, dict[str, Any]] = {
    # StreamForest-Qwen2-7B / -Drive (stages 4–5)
    "tome729_fstw_pemf": {
        "vision_encode_type": "image_video_memory_batch",
        "mm_local_num_frames": 1,
        "mm_pos_num_frames": 1,
        "time_msg_type": "short_online_v2",
        "mm_tunable_parts": "mm_mlp_adapter,mm_language_model",
    },
    # StreamForest-Pretrain-Qwen2-7B (stage 3)
    "tome16_mlp": {
        "vision_encode_type": "image_video_new",
        "mm_local_num_frames": 8,
        "mm_pos_num_frames": 8,
        "time_msg_type": "short",
        "mm_tunable_parts": "mm_vision_tower,mm_mlp_adapter,mm_language_model",
    },
    # stage-2 output (never released; same keys)
    "tome64_mlp": {
        "vision_encode_type": "image_video_new",
        "mm_local_num_frames": 2,
        "mm_pos_num_frames": 2,
        "time_msg_type": "short",
        "mm_tunable_parts": "mm_vision_tower,mm_mlp_adapter,mm_language_model",
    },
}
"""Per ``mm_projector_type``: the flat keys that differ between the released checkpoints."""

TOWER_KEYS = ("mm_vision_tower", "vision_tower_pretrained", "mm_hidden_size")
"""Keys that name the vision tower a checkpoint was built from (set when the tower is attached, not by a stage)."""


def checkpoint_keys(projector_type: str | None = None, *, tower: bool = True, **values: Any) -> dict[str, Any]:
    """The flat keys of a checkpoint: :data:`RELEASED_KEYS`, the preset of ``projector_type``, then ``values``.

    Args:
        projector_type: a key of :data:`RELEASED_PRESETS` (also written as ``mm_projector_type``), or None.
        tower: include :data:`TOWER_KEYS` (False for a stage continuing from a checkpoint: keep its tower).
        values: flat keys to set; each must be a key of :data:`RELEASED_KEYS` or a field of
            :class:`MultimodalSettings` (a typo is an error, not a silently stored attribute).
    """
    known = set(RELEASED_KEYS) | MultimodalSettings.keys()
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown flat config key(s) {unknown}; the checkpoint schema is streamforest.model.config")
    out = dict(RELEASED_KEYS)
    if projector_type is not None:
        if projector_type not in RELEASED_PRESETS:
            raise ValueError(f"no released preset for mm_projector_type {projector_type!r}; use one of {sorted(RELEASED_PRESETS)}")
        out.update(RELEASED_PRESETS[projector_type], mm_projector_type=projector_type)
    out.update(values)
    if not tower:
        for key in TOWER_KEYS:
            out.pop(key, None)
    return out


def is_memory_model(config: Any) -> bool:
    """True when ``config`` (a config, a :class:`MultimodalSettings`, or a model with ``.config``) encodes video
    through the event memory: ``vision_encode_type`` ``image_video_memory*`` (REFERENCE §1.7).

    This is the one test for "the memory model"; released memory checkpoints pair it with the
    ``tome729_fstw_pemf`` projector (:data:`MEMORY_PROJECTOR_TYPES`)."""
    if not hasattr(config, "vision_encode_type") and hasattr(config, "config"):
        config = config.config
    return str(getattr(config, "vision_encode_type", None) or "").startswith(MEMORY_ENCODE_PREFIX)


@dataclass
class MultimodalSettings:
    """Typed view over the flat ``mm_*`` keys of a :class:`LlavaQwenConfig`.

    Defaults are the reference's when a key is absent (``ModelArguments`` / ``getattr`` defaults, REFERENCE §4.2);
    the values in the released files are :data:`RELEASED_KEYS`. Keys stored only for compatibility
    (:data:`STORED_ONLY_KEYS`) are kept verbatim in the config but not listed here.
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

    @classmethod
    def keys(cls) -> set[str]:
        """The flat config keys this view reads."""
        return {f.name for f in dataclasses.fields(cls)} - {"extra"}

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
        """True for the memory encode types (``image_video_memory*``): :func:`is_memory_model`."""
        return is_memory_model(self)


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
