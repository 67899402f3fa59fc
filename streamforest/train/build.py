"""Build the model of a training stage (REFERENCE §4.8): from a plain Qwen2 LLM + a SigLIP checkpoint (stages
1–2), or from a previous StreamForest checkpoint (stages 3–5, projector type may change), then load the
stage-1 connector (``pretrain_mm_mlp_adapter``) and select the tunable parts.

Loading never downloads: hub ids must already be in the local HF cache (or pass local directories).
Under DeepSpeed ZeRO-3 the weights loaded after construction are written inside
``deepspeed.zero.GatheredParameters`` so that every rank's partition is updated.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from streamforest.model.config import LlavaQwenConfig, checkpoint_keys
from streamforest.model.llava_qwen import LlavaQwenForCausalLM
from streamforest.model.loader import (
    is_streamforest_checkpoint,
    load_pretrained,
    load_tokenizer,
    read_config_json,
    resolve_local_dir,
)
from streamforest.model.processor import SigLipImageProcessor
from streamforest.model.vision import resolve_attn_implementation
from streamforest.train.config import StageConfig, resolve_path
from streamforest.train.optim import set_tunable_parts

logger = logging.getLogger(__name__)

SIGLIP_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_channels",
    "image_size",
    "patch_size",
    "hidden_act",
    "layer_norm_eps",
    "attention_dropout",
)


class BuiltModel(NamedTuple):
    """Tokenizer, model (train mode, tunable parts set) and image processor of a stage."""

    tokenizer: Any
    model: Any
    image_processor: Any


# ----------------------------------------------------------------------------------------------- helpers
def local_dir(path: str, what: str = "model.model_name_or_path") -> Path:
    """A local directory for the stage setting ``what`` (:func:`streamforest.model.loader.resolve_local_dir`)."""
    return resolve_local_dir(resolve_path(path) or path, what=what)


def zero3_enabled() -> bool:
    try:
        from transformers.integrations import is_deepspeed_zero3_enabled
    except ImportError:  # pragma: no cover
        return False
    return bool(is_deepspeed_zero3_enabled())


@contextlib.contextmanager
def gathered(params: list[nn.Parameter]) -> Iterator[None]:
    """Gather ZeRO-3 partitioned ``params`` for writing (rank 0's values are kept); no-op otherwise."""
    if zero3_enabled():
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
            yield
    else:
        yield


def load_into(module: nn.Module, state: dict[str, torch.Tensor], *, what: str) -> None:
    """Copy ``state`` into ``module`` (strict: every key must exist with the same shape)."""
    params = dict(module.named_parameters())
    buffers = dict(module.named_buffers())
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params) - set(buffers))
    if missing or unexpected:
        raise ValueError(f"{what}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    with gathered(list(params.values())), torch.no_grad():
        for name, tensor in state.items():
            target = params.get(name, buffers.get(name))
            if target is None:
                continue
            if tuple(target.shape) != tuple(tensor.shape):
                raise ValueError(f"{what}: {name} has shape {tuple(tensor.shape)}, the model expects {tuple(target.shape)}")
            target.copy_(tensor.to(dtype=target.dtype))


# ----------------------------------------------------------------------------------------------- SigLIP
def siglip_vision_config(path: Path) -> dict[str, Any]:
    """The vision architecture of a SigLIP checkpoint (full SigLIP or vision-only)."""
    raw = read_config_json(path)
    vision = raw.get("vision_config", raw)
    return {k: vision[k] for k in SIGLIP_KEYS if k in vision}


def siglip_state_dict(path: Path, num_layers_kept: int) -> dict[str, torch.Tensor]:
    """Vision weights of a SigLIP checkpoint in transformers-5 ``SiglipVisionModel`` names, minus the last
    layer and the head (the reference deletes both)."""
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: no *.safetensors weights in the SigLIP checkpoint (model.vision_tower)")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        for key, val in load_file(str(f)).items():
            if key.startswith("text_model.") or key.startswith("logit_") or ".head." in f".{key}":
                continue
            key = key.split("vision_model.", 1)[1] if "vision_model." in key else key
            if key.startswith("head."):
                continue
            if key.startswith("encoder.layers.") and int(key.split(".")[2]) >= num_layers_kept:
                continue
            out[key] = val
    return out


# ----------------------------------------------------------------------------------------------- building
def stage_config_keys(cfg: StageConfig) -> dict[str, Any]:
    """Flat config keys a stage writes (REFERENCE §3.1): the checkpoint schema's released values
    (:func:`streamforest.model.config.checkpoint_keys`, tower keys excluded) with this stage's settings."""
    m, d, t = cfg.model, cfg.data, cfg.training
    keys = checkpoint_keys(
        tower=False,
        mm_projector_type=m.mm_projector_type,
        vision_encode_type=m.vision_encode_type,
        mm_local_num_frames=m.mm_local_num_frames,
        mm_pos_num_frames=m.mm_pos_num_frames,
        mm_vision_select_layer=m.mm_vision_select_layer,
        mm_patch_merge_type=m.mm_patch_merge_type,
        mm_use_im_start_end=m.mm_use_im_start_end,
        mm_use_im_patch_token=m.mm_use_im_patch_token,
        image_aspect_ratio=d.image_aspect_ratio,
        tokenizer_model_max_length=t.model_max_length,
        time_msg_type=d.time_msg,
        mm_tunable_parts=",".join(m.mm_tunable_parts),
        mm_projector_lr=t.mm_projector_lr,
        mm_vision_tower_lr=t.mm_vision_tower_lr,
    )
    return {**keys, **m.config_overrides}


def _dtype(cfg: StageConfig) -> torch.dtype:
    return torch.bfloat16 if cfg.training.bf16 else torch.float16 if cfg.training.fp16 else torch.float32


def build_from_llm(cfg: StageConfig) -> BuiltModel:
    """Plain Qwen2 checkpoint + SigLIP checkpoint → a fresh LlavaQwen model (projector randomly initialised)."""
    m = cfg.model
    if not m.vision_tower:
        raise ValueError(f"{cfg.source}: model.vision_tower is required when model_name_or_path is a plain LLM")
    llm_dir, vt_dir = local_dir(m.model_name_or_path), local_dir(m.vision_tower, "model.vision_tower")
    raw = read_config_json(llm_dir)
    for k in ("model_type", "architectures", "transformers_version", "auto_map"):
        raw.pop(k, None)
    vision = siglip_vision_config(vt_dir)
    config = LlavaQwenConfig(
        **raw,
        mm_vision_tower=m.vision_tower,
        vision_tower_pretrained=None,
        mm_hidden_size=vision.get("hidden_size", 1152),
        vision_config=vision,
        **stage_config_keys(cfg),
    )
    config.architectures = ["LlavaQwenForCausalLM"]
    attn = resolve_attn_implementation(m.attn_implementation)  # flash-attn absent → sdpa, with a warning
    model, info = LlavaQwenForCausalLM.from_pretrained(
        str(llm_dir), config=config, dtype=_dtype(cfg), attn_implementation=attn, output_loading_info=True
    )
    not_llm = [k for k in info.get("missing_keys", []) if "vision_tower" not in k and "mm_projector" not in k]
    if not_llm or info.get("mismatched_keys"):
        raise ValueError(f"{llm_dir}: the LLM checkpoint lacks or mis-shapes weights: {(not_llm + list(info.get('mismatched_keys') or []))[:5]}")
    tower = model.get_vision_tower()
    kept = len(tower.vision_tower.encoder.layers)
    load_into(tower.vision_tower, siglip_state_dict(vt_dir, kept), what=f"SigLIP weights from {vt_dir}")
    tokenizer = load_tokenizer(llm_dir)
    logger.info("built LlavaQwen from LLM %s + vision tower %s (%s)", llm_dir, vt_dir, m.mm_projector_type)
    return BuiltModel(tokenizer, model, SigLipImageProcessor(size=tower.image_size))


def build_from_checkpoint(cfg: StageConfig) -> BuiltModel:
    """A previous StreamForest stage (ours or released) with this stage's projector / encode settings."""
    ckpt = local_dir(cfg.model.model_name_or_path)
    loaded = load_pretrained(
        ckpt, dtype=_dtype(cfg), device="cpu", attn_implementation=cfg.model.attn_implementation, overrides=stage_config_keys(cfg)
    )
    logger.info("continuing from StreamForest checkpoint %s (projector %s)", ckpt, cfg.model.mm_projector_type)
    return BuiltModel(loaded.tokenizer, loaded.model, loaded.image_processor)


def load_mm_projector(model: nn.Module, path: str) -> None:
    """Load a stage-1 ``mm_projector.bin`` (keys ``model.mm_projector.mlp.{0,2}.*``; everything up to
    ``mm_projector.`` is stripped, strict)."""
    resolved = resolve_path(path) or path
    if not Path(resolved).is_file():
        raise FileNotFoundError(f"model.pretrain_mm_mlp_adapter {path!r} does not exist; run stage 1 first or fix the path")
    state = torch.load(resolved, map_location="cpu", weights_only=True)
    stripped = {k.split("mm_projector.", 1)[1]: v for k, v in state.items() if "mm_projector." in k}
    if not stripped:
        raise ValueError(f"{resolved}: no 'mm_projector.*' keys; expected a stage-1 mm_projector.bin")
    load_into(model.get_model().mm_projector, stripped, what=f"mm_projector weights from {resolved}")
    logger.info("loaded the stage-1 connector from %s (%d tensors)", resolved, len(stripped))


def build_stage_model(cfg: StageConfig) -> BuiltModel:
    """Everything of REFERENCE §4.8: build or load, load the connector, tokenizer settings, tunable parts."""
    m = cfg.model
    base = local_dir(m.model_name_or_path)
    built = build_from_checkpoint(cfg) if is_streamforest_checkpoint(base) else build_from_llm(cfg)
    model, tokenizer = built.model, built.tokenizer
    if m.pretrain_mm_mlp_adapter:
        load_mm_projector(model, m.pretrain_mm_mlp_adapter)
    tokenizer.model_max_length = cfg.training.model_max_length
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None and getattr(tokenizer, "unk_token", None) is not None:
        tokenizer.pad_token = tokenizer.unk_token
    model.config.use_cache = False
    counts = set_tunable_parts(model, m.mm_tunable_parts)
    logger.info("tunable parts %s: trainable parameters %s", m.mm_tunable_parts, counts)
    model.train()
    return BuiltModel(tokenizer, model, built.image_processor)
