"""Tunable parts and optimizer parameter groups (REFERENCE §4.8 step 5, §4.9).

The reference's per-module learning rates (``mm_projector_lr``, ``mm_vision_tower_lr``) were silently
ignored whenever the DeepSpeed JSON had an ``optimizer`` block (stage 2 trained the ViT at 1e-5 instead of
2e-6). Here the groups are always built by us: :func:`strip_optimizer_block` removes any ``optimizer`` block
from the DeepSpeed config so that the HF trainer hands our torch AdamW to DeepSpeed as a client optimizer,
and the LR of every group is logged at start (docs/DEVIATIONS.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

VISION_KEYS = ("vision_tower",)
PROJECTOR_KEYS = ("mm_projector",)
NON_LLM_KEYS = ("vision_tower", "mm_projector", "vision_resampler")


def part_of(name: str) -> str:
    """``mm_vision_tower`` / ``mm_mlp_adapter`` / ``mm_language_model`` for a parameter name."""
    if "vision_tower" in name:
        return "mm_vision_tower"
    if "mm_projector" in name or "vision_resampler" in name:
        return "mm_mlp_adapter"
    return "mm_language_model"


def set_tunable_parts(model: nn.Module, parts: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Freeze everything, then unfreeze the named parts (reference ``mm_tunable_parts`` path).

    ``mm_mlp_adapter`` → ``mm_projector`` params; ``mm_vision_tower`` → names containing ``vision_tower``;
    ``mm_language_model`` → all other params (incl. ``embed_tokens`` and ``lm_head``).

    Returns:
        number of trainable parameters per part.
    """
    counts = {"mm_mlp_adapter": 0, "mm_vision_tower": 0, "mm_language_model": 0}
    wanted = set(parts)
    for name, p in model.named_parameters():
        part = part_of(name)
        p.requires_grad_(part in wanted)
        if part in wanted:
            counts[part] += _numel(p)
    return counts


def _numel(p: torch.Tensor) -> int:
    return int(getattr(p, "ds_numel", p.numel()))


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters without weight decay: biases and nn.LayerNorm weights (reference rule)."""
    out: set[str] = set()
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, nn.LayerNorm)  # reference: ALL_LAYERNORM_LAYERS = [nn.LayerNorm]
        for p_name, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if is_norm or p_name == "bias":
                out.add(full)
    return out


@dataclass
class GroupSpec:
    """One optimizer group: the parameters of one part with or without weight decay."""

    name: str
    lr: float
    weight_decay: float
    params: list[torch.nn.Parameter]


def build_param_groups(
    model: nn.Module,
    *,
    learning_rate: float,
    weight_decay: float,
    mm_projector_lr: float | None = None,
    mm_vision_tower_lr: float | None = None,
) -> list[GroupSpec]:
    """Parameter groups of the reference ``create_optimizer`` (only trainable params; empty groups dropped)."""
    skip_decay = no_decay_names(model)
    lrs = {"mm_mlp_adapter": mm_projector_lr, "mm_vision_tower": mm_vision_tower_lr}
    buckets: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = part_of(name)
        if lrs.get(part) is None:
            part = "default"
        buckets.setdefault((part, name not in skip_decay), []).append(p)
    groups = []
    for (part, decay), params in sorted(buckets.items()):
        lr = learning_rate if part == "default" else float(lrs[part])  # type: ignore[arg-type]
        groups.append(GroupSpec(f"{part}{'' if decay else '/no_decay'}", lr, weight_decay if decay else 0.0, params))
    return groups


def make_optimizer(groups: list[GroupSpec], *, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.AdamW:
    """Torch AdamW over ``groups`` (each group keeps a ``name`` key for logging)."""
    if not groups:
        raise ValueError("no trainable parameters: check model.mm_tunable_parts")
    param_groups: list[dict[str, Any]] = [
        {"params": g.params, "lr": g.lr, "weight_decay": g.weight_decay, "name": g.name} for g in groups
    ]
    opt = torch.optim.AdamW(param_groups, lr=groups[0].lr, betas=betas, eps=eps)
    for g in groups:
        logger.info("optimizer group %-28s lr=%.3g weight_decay=%g params=%d", g.name, g.lr, g.weight_decay, sum(_numel(p) for p in g.params))
    return opt


def strip_optimizer_block(ds_config: str | dict[str, Any]) -> dict[str, Any]:
    """Load a DeepSpeed config and drop its ``optimizer`` block (logged) so our groups are used."""
    if isinstance(ds_config, str):
        try:
            with open(ds_config, encoding="utf-8") as f:
                ds_config = json.load(f)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"training.deepspeed: {ds_config!r} does not exist; use scripts/deepspeed/zero2.json or similar") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"training.deepspeed: {ds_config!r} is not valid JSON: {e}") from e
    cfg = dict(ds_config)
    if "optimizer" in cfg:
        logger.warning(
            "DeepSpeed config has an 'optimizer' block: removed, so that the per-module learning rates "
            "(mm_projector_lr / mm_vision_tower_lr) really apply (the reference silently ignored them)"
        )
        cfg.pop("optimizer")
    return cfg
