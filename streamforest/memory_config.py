"""Configuration of the FSTW + PEMF event memory — pure (stdlib only; REFERENCE §2.1).

:class:`MemoryConfig` holds the hyper-parameters (reference defaults) and validates them; :class:`EventInfo`
describes one long-memory event for introspection. Re-exported by :mod:`streamforest.memory`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["CONSOLIDATION_POLICIES", "EventInfo", "MemoryConfig"]

CONSOLIDATION_POLICIES = ("deferred", "eager")
"""``MemoryConfig.consolidation`` values (see :mod:`streamforest.memory`)."""


@dataclass
class MemoryConfig:
    """Hyper-parameters of the FSTW + PEMF memory (REFERENCE §2.1; defaults = training and all benchmarks)."""

    hidden_size: int = 1152
    """Feature width ``C`` (reference ``hidden_size``)."""
    num_heads: int = 16
    """Channel chunks averaged into the ToMe metric (reference ``num_attention_heads``)."""
    now_frames: int = 1
    """Frames in the FSTW current window (reference ``st_memory_windows[0]``)."""
    short_frames: int = 18
    """Minimum frames kept in the FSTW short window (reference ``st_memory_windows[1]``)."""
    now_tokens: int = 729
    """Tokens per current frame (reference ``st_memory_tokens[0]``; 729 = no compression)."""
    short_tokens: int = 128
    """Tokens per short-window frame (reference ``st_memory_tokens[1]``)."""
    event_window: int = 8
    """Short frames searched for an event boundary (reference ``event_split_window``)."""
    long_tokens_per_frame: int = 64
    """Tokens per long-memory slot (reference ``long_memory_tokens_per_frame``)."""
    long_token_quota: int = 5120
    """Maximum long-memory tokens (reference ``long_memory_tokens_quota``; 80 slots)."""
    sim_weight: float = 0.4
    """Weight of the ``1 - similarity`` penalty (reference ``sim_weight_g``)."""
    time_weight: float = 0.2
    """Weight of the temporal-position penalty (reference ``time_weight_a``)."""
    merge_weight: float = 0.4
    """Weight of the merge-count penalty (reference ``merge_weight_b``)."""
    consolidation: str = "deferred"
    """``"deferred"`` (exact reference outputs) or ``"eager"`` (bounded state, differs; module docstring)."""

    _INT_FIELDS: ClassVar[tuple[str, ...]] = (
        "hidden_size",
        "num_heads",
        "now_frames",
        "short_frames",
        "now_tokens",
        "short_tokens",
        "event_window",
        "long_tokens_per_frame",
        "long_token_quota",
    )

    def __post_init__(self) -> None:
        for name in self._INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MemoryConfig.{name} must be a positive integer, got {value!r}")
        for name in ("sim_weight", "time_weight", "merge_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"MemoryConfig.{name} must be a number >= 0, got {value!r}")
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(
                f"MemoryConfig.hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}"
            )
        if self.short_tokens > self.now_tokens:
            raise ValueError(
                f"MemoryConfig.short_tokens={self.short_tokens} must be <= now_tokens={self.now_tokens} "
                "(short-window frames are merged from current-window frames)"
            )
        if self.long_tokens_per_frame > self.short_tokens:
            raise ValueError(
                f"MemoryConfig.long_tokens_per_frame={self.long_tokens_per_frame} must be <= "
                f"short_tokens={self.short_tokens} (events are merged from short-window frames)"
            )
        largest_event = self.event_window * self.long_tokens_per_frame
        if self.long_token_quota < largest_event:
            raise ValueError(
                f"MemoryConfig.long_token_quota={self.long_token_quota} must be >= event_window * "
                f"long_tokens_per_frame = {largest_event} so that a single event fits"
            )
        if self.consolidation not in CONSOLIDATION_POLICIES:
            raise ValueError(
                f"MemoryConfig.consolidation={self.consolidation!r} is not one of {CONSOLIDATION_POLICIES}"
            )

    @classmethod
    def demo_online(cls, **overrides: Any) -> MemoryConfig:
        """The reference ``generate_online`` configuration (REFERENCE §2.1, right column; ≤ 1,008 tokens)."""
        values: dict[str, Any] = dict(
            short_frames=6, now_tokens=64, short_tokens=16, event_window=4, long_tokens_per_frame=16
        )
        values["long_token_quota"] = 800
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: value}`` dict (JSON/YAML friendly)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MemoryConfig:
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(values, dict):
            raise ValueError(
                f"memory config must be a mapping of MemoryConfig fields, got {type(values).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown MemoryConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    @property
    def max_tokens(self) -> int:
        """Upper bound of ``read()`` length: quota + (short_frames + event_window - 1) short + now frames."""
        short = (self.short_frames + self.event_window - 1) * self.short_tokens
        return self.long_token_quota + short + self.now_frames * self.now_tokens


@dataclass(frozen=True)
class EventInfo:
    """One long-memory event as ``read()`` would return it."""

    slots: int
    """Number of ``long_tokens_per_frame``-token slots."""
    centre: float
    """Temporal centre (frame index; slot-weighted after merges — reference ``time_buffer``)."""
    merge_count: int
    """Original events merged into this one (reference ``mergecnt_buffer``)."""
    first_frame: int
    """Index of the first frame covered."""
    last_frame: int
    """Index of the last frame covered."""
