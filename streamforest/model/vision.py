"""Truncated SigLIP vision tower (REFERENCE §1.2), built from a config dict — never downloaded.

The reference loads ``google/siglip-so400m-patch14-384``, deletes its last encoder layer, drops the
attention-pooling head and returns the last remaining layer's output **before** ``post_layernorm``
(= layer -2 of the original tower). We build the tower with ``num_hidden_layers - 1`` layers and no
head, and skip ``post_layernorm`` in the forward (its weights stay in the state dict, as in the released
checkpoints, but it is never computed).

Weight names: transformers 5's ``SiglipVisionModel`` has no ``vision_model.`` level; the released
checkpoints do (``model.vision_tower.vision_tower.vision_model.*``). ``streamforest.model.loader`` maps
between the two.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import torch
from torch import Tensor, nn
from transformers import SiglipVisionConfig, SiglipVisionModel

logger = logging.getLogger(__name__)

__all__ = ["SigLipVisionTower", "resolve_attn_implementation"]


def resolve_attn_implementation(requested: str | None) -> str:
    """``sdpa`` by default; ``flash_attention_2`` only if requested and flash-attn is importable."""
    if requested in (None, "sdpa"):
        return "sdpa"
    if requested == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            logger.warning("flash_attention_2 requested but flash-attn is not installed; using sdpa")
            return "sdpa"
        return requested
    if requested == "eager":
        return requested
    raise ValueError(
        f"attn_implementation {requested!r} is not supported; use 'sdpa', 'eager' or 'flash_attention_2'"
    )


class SigLipVisionTower(nn.Module):
    """SigLIP tower without its last layer and head: pixels ``[N,3,S,S]`` → features ``[N,P,C_v]``.

    Args:
        vision_config: SigLIP architecture **before** truncation (keys of
            :data:`streamforest.model.config.SO400M_VISION_CONFIG`).
        attn_implementation: ``"sdpa"`` (default), ``"eager"`` or ``"flash_attention_2"``.
    """

    def __init__(self, vision_config: dict[str, Any], attn_implementation: str | None = None) -> None:
        super().__init__()
        cfg = dict(vision_config)
        cfg["num_hidden_layers"] = int(cfg["num_hidden_layers"]) - 1  # the reference deletes the last layer
        siglip_cfg = SiglipVisionConfig(**cfg, vision_use_head=False)
        siglip_cfg._attn_implementation = resolve_attn_implementation(attn_implementation)
        self.vision_tower = SiglipVisionModel(siglip_cfg)
        self.vision_tower.requires_grad_(False)
        self.image_size: int = siglip_cfg.image_size
        self.patch_size: int = siglip_cfg.patch_size
        self.hidden_size: int = siglip_cfg.hidden_size
        self.num_heads: int = siglip_cfg.num_attention_heads

    @property
    def grid(self) -> int:
        """Patches per side ``G = S / patch``."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Tokens per frame ``P = G²`` (729 for so400m at 384²)."""
        return self.grid**2

    @property
    def dtype(self) -> torch.dtype:
        return self.vision_tower.embeddings.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.vision_tower.embeddings.patch_embedding.weight.device

    def forward(self, pixel_values: Tensor, chunk_size: int | None = None) -> Tensor:
        """Encode ``pixel_values [N,3,S,S]`` to ``[N,P,C_v]`` in chunks of ``chunk_size`` frames.

        Inputs are cast to the tower's device and dtype. The output is in the tower dtype.
        """
        if pixel_values.dim() != 4 or pixel_values.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(
                f"vision tower expects pixel_values [N,3,{self.image_size},{self.image_size}] "
                f"(use the model's image processor), got {tuple(pixel_values.shape)}"
            )
        n = pixel_values.shape[0]
        step = n if not chunk_size else max(1, int(chunk_size))
        outputs = [self._encode(pixel_values[i : i + step]) for i in range(0, n, step)]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=0)

    def _encode(self, pixels: Tensor) -> Tensor:
        """One ViT call: ``[n,3,S,S]`` → ``[n,P,C_v]`` (last kept layer, no post-LayerNorm)."""
        tower = self.vision_tower
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        hidden = tower.embeddings(pixels)
        hidden = tower.encoder(inputs_embeds=hidden).last_hidden_state
        if hidden.shape[1] != self.num_patches:
            raise RuntimeError(f"vision tower produced {hidden.shape[1]} tokens, expected {self.num_patches}")
        return hidden
