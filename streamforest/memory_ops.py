"""Event-level operations of the FSTW + PEMF memory — pure torch (REFERENCE §2.3 B.6, C).

Frame cosine, adjacent-event similarity and merge (one ToMe step on the slots of two events), the
consolidation penalty of every adjacent pair, and the event node that the merge trees of
:class:`streamforest.memory.EventMemory` are built from. Re-exported by :mod:`streamforest.memory`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from streamforest.memory_config import EventInfo, MemoryConfig
from streamforest.tome import head_mean_metric, matching_scores, merge_tokens

__all__ = [
    "EventNode",
    "TouchedKeys",
    "event_similarity",
    "frame_cosine",
    "merge_events",
    "pair_penalties",
    "pick_pair",
]


@dataclass(eq=False)
class EventNode:
    """An event: a leaf (segmented from short frames) or the merge of two adjacent events."""

    uid: int
    tokens: Tensor  # [S, K_long, C]
    centre: float
    merge_count: int
    first_frame: int
    last_frame: int
    parts: tuple[int, int] | None = field(default=None)  # uids of the merged children

    @property
    def slots(self) -> int:
        return self.tokens.shape[0]

    def info(self) -> EventInfo:
        return EventInfo(self.slots, self.centre, self.merge_count, self.first_frame, self.last_frame)


@dataclass
class TouchedKeys:
    """Cache keys ``(uid, uid)`` used by one deferred consolidation."""

    merges: set[tuple[int, int]] = field(default_factory=set)
    sims: set[tuple[int, int]] = field(default_factory=set)


@torch.no_grad()
def frame_cosine(prev: Tensor, cur: Tensor) -> Tensor:
    """Cosine similarity of two flattened frames (0-d tensor, eps 1e-8, no grad)."""
    return F.cosine_similarity(prev, cur, dim=0, eps=1e-8)


@torch.no_grad()
def event_similarity(first: Tensor, second: Tensor, num_heads: int) -> float:
    """Mean best-match score of the token pairs a merge of two adjacent events would combine.

    Args:
        first, second: ``[S1, K, C]`` and ``[S2, K, C]`` event slots.
        num_heads: channel chunks of the ToMe metric.

    Returns:
        Mean of the ``r = n·K − ceil(n/2)·K`` largest best scores (``n = S1 + S2``) — REFERENCE §2.3 B.6.
    """
    slots, k, c = first.shape[0] + second.shape[0], first.shape[1], first.shape[2]
    r = slots * k - math.ceil(slots / 2) * k
    tokens = torch.cat([first, second], dim=0).reshape(1, slots * k, c)
    node_max, _ = matching_scores(head_mean_metric(tokens, num_heads))
    return torch.sort(node_max[0], descending=True).values[:r].mean().item()


def merge_events(first: Tensor, second: Tensor, num_heads: int) -> Tensor:
    """Merge two adjacent events' slots ``[S1,K,C]``, ``[S2,K,C]`` into ``[ceil(n/2), K, C]`` (one ToMe step)."""
    slots, k, c = first.shape[0] + second.shape[0], first.shape[1], first.shape[2]
    keep = math.ceil(slots / 2)
    tokens = torch.cat([first, second], dim=0).reshape(1, slots * k, c)
    return merge_tokens(tokens, keep * k, num_heads).reshape(keep, k, c)


def pair_penalties(
    centres: Tensor, counts: Tensor, sims: Tensor, normaliser: int, cfg: MemoryConfig
) -> Tensor:
    """Merge penalty of every adjacent event pair (REFERENCE §2.3 C.1), vectorised in float64.

    ``0.4·(1 − sim) + 0.2·(mean centre / normaliser) + 0.4·(mean merge count / max + 1e-6)``, evaluated in
    the same operation order as the scalar formula, so each value is bit-identical to it.

    Args:
        centres: ``[E]`` float64 event centres (frame-index units).
        counts: ``[E]`` float64 merge counts.
        sims: ``[E - 1]`` float64 similarity of events ``i`` and ``i + 1``.
        normaliser: the time normaliser (number of frames seen − 1).

    Returns:
        ``[E - 1]`` float64 penalties.
    """
    pair_counts = (counts[:-1] + counts[1:]) / 2
    merge_pen = pair_counts / pair_counts.max() + 1e-6
    time_pen = ((centres[:-1] + centres[1:]) / 2) / normaliser
    return cfg.sim_weight * (1 - sims) + cfg.time_weight * time_pen + cfg.merge_weight * merge_pen


def pick_pair(nodes: list[EventNode], sims: list[float], normaliser: int, cfg: MemoryConfig) -> int:
    """Index ``i`` of the adjacent pair ``(i, i+1)`` with the smallest penalty (first minimum wins)."""
    centres = torch.tensor([node.centre for node in nodes], dtype=torch.float64)
    counts = torch.tensor([node.merge_count for node in nodes], dtype=torch.float64)
    penalties = pair_penalties(centres, counts, torch.tensor(sims, dtype=torch.float64), normaliser, cfg)
    return int(torch.argmin(penalties))
