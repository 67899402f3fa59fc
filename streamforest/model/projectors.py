"""Vision projectors ("connectors") of StreamForest (REFERENCE §1.4–1.6).

Every projector owns exactly one trainable module, ``mlp = Sequential(Linear(C_v, H), GELU(), Linear(H, H))``
(exact erf GELU), so the state-dict keys are ``mlp.0.*`` and ``mlp.2.*`` and the MLP weights are
interchangeable between the types (stage 3 reuses stage 2's, stage 4 stage 3's). Everything else is
parameter-free: sin-cos position embeddings (computed on demand, never in the state dict), ToMe merging
(:mod:`streamforest.tome`) and the FSTW + PEMF event memory (:mod:`streamforest.memory`).

========================  ==================================================================================
type                      ``forward(x, local_num_frames=L, is_image=False, generator=None)``
========================  ==================================================================================
``tome16_mlp``            ``[B, L·P, C_v]`` + 3-D pos-embed (t = 0..L−1 per clip) → ToMe to 16·L → mlp → ``[B, 16L, H]``
``tome64_mlp``            same with 64·L tokens
``tome729_fstw_pemf``     video ``[T, P, C_v]`` + spatial + temporal (k mod 512) pos-embed → fresh EventMemory →
                          mlp → ``[1, N, H]``; images ``[n, P, C_v]`` + spatial → ToMe to P or short_tokens →
                          mlp → ``[n, k, H]``
``linear``                legacy LLaVA: ``mlp = Sequential(Linear)`` on ``[..., C_v]``
``mlp2x_gelu``            legacy LLaVA: the same 2-layer mlp on ``[..., C_v]``
``identity``              no parameters, returns ``x``
========================  ==================================================================================

Deviation (docs/DEVIATIONS.md): the memory projector's image branch draws its token count from a
``torch.Generator`` the caller can seed (reference: Python's global ``random``, even at inference), and
``image_token_policy`` selects ``"random"`` (default in train mode), ``"full"`` (default in eval mode) or
``"compressed"``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from streamforest.memory import EventMemory, MemoryConfig
from streamforest.pos_embed import memory_pos_embed, sincos_3d, spatial_pos_embed
from streamforest.tome import merge_tokens

__all__ = [
    "IMAGE_TOKEN_POLICIES",
    "PROJECTOR_TYPES",
    "IdentityProjector",
    "LegacyMLPProjector",
    "MemoryProjector",
    "ToMeProjector",
    "build_projector",
]

logger = logging.getLogger(__name__)

PROJECTOR_TYPES = ("tome16_mlp", "tome64_mlp", "tome729_fstw_pemf", "linear", "mlp2x_gelu", "identity")
IMAGE_TOKEN_POLICIES = ("random", "full", "compressed")


def _mlp(mm_hidden_size: int, hidden_size: int) -> nn.Sequential:
    """``Linear(C_v, H) → GELU (erf) → Linear(H, H)``; keys ``0.*`` and ``2.*``."""
    return nn.Sequential(nn.Linear(mm_hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))


def _check_tokens(name: str, x: Tensor, dims: int, width: int, what: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != dims:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected {what}, got {shape}")
    if x.shape[-1] != width:
        raise ValueError(
            f"{name}: feature width {x.shape[-1]} != mm_hidden_size {width} (config.json 'mm_hidden_size')"
        )


class ToMeProjector(nn.Module):
    """``tome16_mlp`` / ``tome64_mlp``: 3-D sin-cos pos-embed per clip, ToMe to ``k·L`` tokens, mlp."""

    def __init__(
        self, tokens_per_frame: int, mm_hidden_size: int, hidden_size: int, num_heads: int, grid: int
    ) -> None:
        super().__init__()
        self.projector_type = f"tome{tokens_per_frame}_mlp"
        self.tokens_per_frame, self.num_heads, self.grid = tokens_per_frame, num_heads, grid
        self.mm_hidden_size = mm_hidden_size
        self.mlp = _mlp(mm_hidden_size, hidden_size)

    def forward(
        self, x: Tensor, local_num_frames: int = 1, is_image: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """``x [B, L·P, C_v]`` (clips of ``L = local_num_frames`` frames) → ``[B, k·L, H]``.

        ``is_image`` and ``generator`` are accepted for a uniform interface (an image is a clip of one frame).
        """
        name = self.projector_type
        _check_tokens(name, x, 3, self.mm_hidden_size, "clips [B, L*P, C]")
        patches = self.grid * self.grid
        if local_num_frames < 1 or x.shape[1] != local_num_frames * patches:
            raise ValueError(
                f"{name}: {x.shape[1]} tokens per clip != local_num_frames ({local_num_frames}) x {patches} "
                f"patches ({self.grid}x{self.grid} grid); check config.json 'mm_local_num_frames' and the vision tower"
            )
        pos = sincos_3d(local_num_frames, self.grid, x.shape[-1], device=x.device).to(x.dtype)
        x = merge_tokens(x + pos, self.tokens_per_frame * local_num_frames, self.num_heads)
        return self.mlp(x)


class MemoryProjector(nn.Module):
    """``tome729_fstw_pemf``: FSTW + PEMF event memory for video, ToMe for images (REFERENCE §1.6)."""

    projector_type = "tome729_fstw_pemf"

    def __init__(
        self,
        mm_hidden_size: int,
        hidden_size: int,
        num_heads: int,
        grid: int,
        memory_config: MemoryConfig | None = None,
        image_token_policy: str | None = None,
    ) -> None:
        super().__init__()
        cfg = memory_config if memory_config is not None else MemoryConfig(hidden_size=mm_hidden_size, num_heads=num_heads)
        if (cfg.hidden_size, cfg.num_heads) != (mm_hidden_size, num_heads):
            raise ValueError(
                f"memory_config (hidden_size={cfg.hidden_size}, num_heads={cfg.num_heads}) does not match the "
                f"vision tower (mm_hidden_size={mm_hidden_size}, num_heads={num_heads}); fix config.json 'memory_config'"
            )
        if cfg.now_tokens > grid * grid:
            raise ValueError(
                f"memory_config.now_tokens={cfg.now_tokens} exceeds the {grid * grid} patches per frame; "
                "set 'memory_config' in config.json for this vision tower"
            )
        if image_token_policy is not None and image_token_policy not in IMAGE_TOKEN_POLICIES:
            raise ValueError(f"image_token_policy={image_token_policy!r} is not one of {IMAGE_TOKEN_POLICIES}")
        self._memory_config = cfg
        self.image_token_policy = image_token_policy
        self.num_heads, self.grid, self.mm_hidden_size = num_heads, grid, mm_hidden_size
        self.mlp = _mlp(mm_hidden_size, hidden_size)

    @property
    def memory_config(self) -> MemoryConfig:
        """The memory hyper-parameters every video forward (and :meth:`new_memory`) uses."""
        return self._memory_config

    def new_memory(self, consolidation: str | None = None) -> EventMemory:
        """A fresh :class:`EventMemory` with this projector's config (optionally another policy)."""
        cfg = self._memory_config
        if consolidation is not None and consolidation != cfg.consolidation:
            cfg = MemoryConfig(**{**cfg.to_dict(), "consolidation": consolidation})
        return EventMemory(cfg)

    def project(self, tokens: Tensor) -> Tensor:
        """The mlp alone: ``[..., C_v] → [..., H]``."""
        return self.mlp(tokens)

    def encode_video(self, frames: Tensor) -> Tensor:
        """Position-embedded frames ``[T, P, C_v]`` → visual tokens ``[N, H]`` through a fresh memory.

        ``frames`` come from :meth:`add_pos_embed` (``LlavaQwenForCausalLM.embed_frames``); an online session
        keeps its own :meth:`new_memory` instead and projects ``memory.read()`` with :meth:`project`.
        """
        memory = self.new_memory()
        memory.add_frames(frames)
        return self.project(memory.read())

    def add_pos_embed(self, frames: Tensor, start_index: int = 0) -> Tensor:
        """``frames [T, P, C_v]`` + spatial + temporal pos-embed; frame ``i`` is stream frame ``start_index + i``.

        The temporal position is the sampled-frame index modulo 512 (REFERENCE §1.4).
        """
        self._check_frames(frames, "frames [T, P, C]")
        pos = memory_pos_embed(frames.shape[0], self.grid, frames.shape[-1], start=start_index, device=frames.device)
        return frames + pos.to(frames.dtype)

    def image_tokens(self, generator: torch.Generator | None = None) -> int:
        """Tokens per image for the current policy: ``P`` ("full"), ``short_tokens`` ("compressed") or a 50/50 draw."""
        policy = self.image_token_policy or ("random" if self.training else "full")
        full, compressed = self.grid * self.grid, self._memory_config.short_tokens
        if policy == "random":
            device = generator.device if generator is not None else "cpu"
            draw = int(torch.randint(0, 2, (1,), generator=generator, device=device))
            return full if draw == 0 else compressed
        return full if policy == "full" else compressed

    def forward(
        self, x: Tensor, local_num_frames: int = 1, is_image: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Video ``[T, P, C_v]`` → ``[1, N, H]``; images (``is_image``) ``[n, P, C_v]`` → ``[n, k, H]``."""
        if local_num_frames > 1:
            raise ValueError(
                f"{self.projector_type} takes one frame per step (local_num_frames={local_num_frames}); "
                "set config.json 'mm_local_num_frames' to 1"
            )
        if is_image:
            self._check_frames(x, "images [n, P, C]")
            pos = spatial_pos_embed(self.grid, x.shape[-1], device=x.device).reshape(1, -1, x.shape[-1])
            tokens = merge_tokens(x + pos.to(x.dtype), self.image_tokens(generator), self.num_heads)
            return self.mlp(tokens)
        return self.encode_video(self.add_pos_embed(x)).unsqueeze(0)

    def _check_frames(self, x: Tensor, what: str) -> None:
        _check_tokens(self.projector_type, x, 3, self.mm_hidden_size, what)
        if x.shape[1] != self.grid * self.grid:
            raise ValueError(
                f"{self.projector_type}: {x.shape[1]} tokens per frame != {self.grid}x{self.grid} patches "
                "of the vision tower (image_size // patch_size squared)"
            )
        if x.shape[0] == 0:
            raise ValueError(f"{self.projector_type}: got no frames ({what} with T = 0)")


class LegacyMLPProjector(nn.Module):
    """LLaVA legacy ``linear`` (one Linear) / ``mlp2x_gelu`` (the 2-layer mlp), applied token-wise."""

    def __init__(self, projector_type: str, mm_hidden_size: int, hidden_size: int) -> None:
        super().__init__()
        self.projector_type = projector_type
        if projector_type == "linear":
            self.mlp = nn.Sequential(nn.Linear(mm_hidden_size, hidden_size))
        else:
            self.mlp = _mlp(mm_hidden_size, hidden_size)

    def forward(
        self, x: Tensor, local_num_frames: int = 1, is_image: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """``[..., C_v] → [..., H]``."""
        return self.mlp(x)


class IdentityProjector(nn.Module):
    """LLaVA legacy ``identity``: no parameters, returns ``x`` unchanged."""

    projector_type = "identity"

    def forward(
        self, x: Tensor, local_num_frames: int = 1, is_image: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Returns ``x``."""
        return x


def build_projector(
    projector_type: str,
    *,
    mm_hidden_size: int,
    hidden_size: int,
    num_heads: int,
    grid: int,
    memory_config: MemoryConfig | None = None,
) -> nn.Module:
    """Build the projector named ``projector_type`` (config.json ``mm_projector_type``).

    Args:
        projector_type: one of :data:`PROJECTOR_TYPES`.
        mm_hidden_size: vision feature width ``C_v`` (1152 for SigLIP so400m).
        hidden_size: LLM width ``H`` (3584 for Qwen2-7B).
        num_heads: vision-tower heads = channel chunks of the ToMe metric (16).
        grid: patches per side (27 = 384 // 14); ``P = grid²``.
        memory_config: memory hyper-parameters of ``tome729_fstw_pemf`` (reference defaults when ``None``).

    Raises:
        ValueError: unknown type (the message lists the known ones) or inconsistent sizes.
    """
    if projector_type in ("tome16_mlp", "tome64_mlp"):
        tokens = 16 if projector_type == "tome16_mlp" else 64
        return ToMeProjector(tokens, mm_hidden_size, hidden_size, num_heads, grid)
    if projector_type == "tome729_fstw_pemf":
        return MemoryProjector(mm_hidden_size, hidden_size, num_heads, grid, memory_config=memory_config)
    if projector_type in ("linear", "mlp2x_gelu"):
        return LegacyMLPProjector(projector_type, mm_hidden_size, hidden_size)
    if projector_type == "identity":
        return IdentityProjector()
    raise ValueError(
        f"unknown projector type {projector_type!r} (config.json 'mm_projector_type'); known: {', '.join(PROJECTOR_TYPES)}"
    )
