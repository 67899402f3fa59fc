"""Fixed sin-cos position embeddings of the StreamForest projectors — pure torch.

Layout of a ``C``-wide vector (REFERENCE §1.4; SigLIP so400m: C = 1152):

============================  ===========================================================
dims                          content
============================  ===========================================================
``[0, C/4)``                  temporal: 1-D embedding (width C/4) of the frame position
``[C/4, C/4 + 3C/8)``         spatial 1: 1-D embedding (width 3C/8) of the **column** index
``[C/4 + 3C/8, C)``           spatial 2: 1-D embedding (width 3C/8) of the **row** index
============================  ===========================================================

A 1-D embedding of width ``D`` at position ``p`` is ``[sin(p * w_0..w_{D/2-1}), cos(p * w_0..)]`` with
``w_i = 10000 ** (-i / (D / 2))`` (all sines, then all cosines), computed in float32.

Two families use it:

* ToMe projectors (``tome16_mlp``/``tome64_mlp``): one 3-D table ``[L, G, G, C]`` holding temporal and
  spatial parts, ``t = 0..L-1`` restarting for every clip (an image is t = 0).
* The memory projector (``tome729_fstw_pemf``): a spatial table (temporal dims zero) plus a temporal
  table (spatial dims zero); frame ``k`` of the sampled sequence gets temporal position ``k mod 512``.
  Images get the spatial part only.

Tables are built in float32 and cached per (shape, device); callers cast to their dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "TEMPORAL_PERIOD",
    "memory_pos_embed",
    "sincos_1d",
    "sincos_3d",
    "spatial_pos_embed",
    "temporal_pos_embed",
]

TEMPORAL_PERIOD = 512
"""Frames after which the memory projector's temporal position wraps (``time_pos_embedding_window``)."""

_CACHE: dict[tuple, Tensor] = {}


def _split(width: int) -> tuple[int, int]:
    """``(temporal width, spatial width per axis)`` for a ``width``-d vector."""
    if width % 16 != 0:
        raise ValueError(f"position-embedding width must be a multiple of 16, got {width}")
    return width // 4, 3 * width // 8


def sincos_1d(width: int, positions: Tensor) -> Tensor:
    """MAE-style 1-D sin-cos embedding.

    Args:
        width: embedding width ``D`` (even).
        positions: ``[M]`` positions (any real values).

    Returns:
        ``[M, D]`` float32: sines in ``[:, :D/2]``, cosines in ``[:, D/2:]``.
    """
    if width % 2 != 0:
        raise ValueError(f"sin-cos width must be even, got {width}")
    half = width // 2
    omega = torch.arange(half, dtype=torch.float32, device=positions.device) / half
    omega = 1.0 / (10000.0**omega)
    angles = positions.to(torch.float32).reshape(-1, 1) * omega.reshape(1, -1)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def _cached(key: tuple, build) -> Tensor:
    table = _CACHE.get(key)
    if table is None:
        table = build()
        _CACHE[key] = table
    return table


def _spatial(grid: int, width: int, device: torch.device) -> Tensor:
    _, d_s = _split(width)
    coords = torch.arange(grid, dtype=torch.float32, device=device)
    col = sincos_1d(d_s, coords)  # [G, d_s] indexed by column
    row = sincos_1d(d_s, coords)  # [G, d_s] indexed by row
    col_part = col.unsqueeze(0).expand(grid, grid, d_s)  # [row, col, d_s]
    row_part = row.unsqueeze(1).expand(grid, grid, d_s)
    return torch.cat([col_part, row_part], dim=-1)  # [G, G, 3C/4]


def spatial_pos_embed(grid: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """Spatial table of the memory projector.

    Returns:
        ``[G, G, C]`` float32 indexed ``[row, column]``; temporal dims ``[0, C/4)`` are zero.
    """
    device = torch.device(device or "cpu")

    def build() -> Tensor:
        d_t, _ = _split(width)
        table = torch.zeros(grid, grid, width, dtype=torch.float32, device=device)
        table[..., d_t:] = _spatial(grid, width, device)
        return table

    return _cached(("spatial", grid, width, str(device)), build)


def temporal_pos_embed(num_positions: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """Temporal table: ``[num_positions, C]`` float32, positions 0.., spatial dims zero."""
    device = torch.device(device or "cpu")

    def build() -> Tensor:
        d_t, _ = _split(width)
        table = torch.zeros(num_positions, width, dtype=torch.float32, device=device)
        table[:, :d_t] = sincos_1d(d_t, torch.arange(num_positions, dtype=torch.float32, device=device))
        return table

    return _cached(("temporal", num_positions, width, str(device)), build)


def sincos_3d(num_frames: int, grid: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """The ToMe projectors' 3-D table for a clip of ``num_frames`` frames.

    Returns:
        ``[L * G * G, C]`` float32, frame-major then row-major (the token order of stacked frames).
    """
    device = torch.device(device or "cpu")

    def build() -> Tensor:
        d_t, _ = _split(width)
        table = torch.empty(num_frames, grid, grid, width, dtype=torch.float32, device=device)
        temporal = sincos_1d(d_t, torch.arange(num_frames, dtype=torch.float32, device=device))
        table[..., :d_t] = temporal[:, None, None, :]
        table[..., d_t:] = _spatial(grid, width, device)
        return table.reshape(num_frames * grid * grid, width)

    return _cached(("3d", num_frames, grid, width, str(device)), build)


def memory_pos_embed(
    num_frames: int,
    grid: int,
    width: int,
    start: int = 0,
    period: int = TEMPORAL_PERIOD,
    device: torch.device | str | None = None,
) -> Tensor:
    """Spatial + temporal embedding for frames ``start .. start + num_frames - 1`` of a stream.

    Frame ``k`` (index in the sampled sequence) gets temporal position ``k mod period``.

    Returns:
        ``[num_frames, G * G, C]`` float32.
    """
    if num_frames < 0 or start < 0:
        raise ValueError(f"frame range must be non-negative, got start={start}, num_frames={num_frames}")
    device = torch.device(device or "cpu")
    spatial = spatial_pos_embed(grid, width, device).reshape(1, grid * grid, width)
    temporal = temporal_pos_embed(period, width, device)
    idx = torch.arange(start, start + num_frames, device=device) % period
    return spatial + temporal[idx].unsqueeze(1)
