"""FSTW + PEMF event memory of StreamForest — pure torch (REFERENCE §2).

The memory turns a stream of per-frame patch features ``[P, C]`` into a bounded token sequence:

* **FSTW now window** — the last ``now_frames`` frames, each merged to ``now_tokens`` tokens;
* **FSTW short window** — older frames merged to ``short_tokens`` tokens each (18–25 frames by default);
* **PEMF long memory** — events: runs of 1..``event_window`` short frames cut after the least-similar
  consecutive pair, compressed to ``long_tokens_per_frame`` tokens per frame ("slot"), then merged pairwise
  (adjacent events, chosen by a similarity / time / merge-count penalty) until they fit ``long_token_quota``.

``read()`` returns ``[long slots | short frames | now frames]`` flattened to ``[N, C]`` (≤ 9,049 tokens with
the defaults).

Consolidation policies
----------------------
``"deferred"`` (default, faithful): after any number of frames ``read()`` returns exactly (``torch.equal``)
what the reference returns when it builds a fresh memory from all frames so far (all ``update`` calls,
then one ``get_memory_tokens``; REFERENCE §2.5). Everything causal runs once per frame as it arrives: frame
cosine, now → short ToMe, event segmentation and compression, adjacent-event similarity. Only step C
(long-memory consolidation) depends on the whole stream — its time normaliser is the current frame
count — so each read replays it on a copy of the event list. Merge results and pair similarities are
cached by merge-tree identity (two events always merge to the same tokens), so a read only pays for
merges no earlier read performed; the cache keeps only entries the latest read touched.

``"eager"`` (bounded, **not** the reference): step C runs in place after every frame whose events push
the long memory over the quota, with the time normaliser of that moment. Stored tokens therefore stay
bounded for an unbounded stream, but outputs differ from the reference: a merge decided early never
sees later events (the reference decides all merges after the last frame with a global view) and the
time penalty uses the frame count at merge time instead of the final one. The released checkpoints
were trained on batch-built memories, so use ``"eager"`` only when the stream cannot be bounded.

Autograd: merges are differentiable in the input frames; only decisions (cosines, similarities,
argmin/argsort) are computed without gradient. Successive reads share autograd history (events, cached
merges), so backpropagating through two reads of one memory needs ``retain_graph=True`` on the first.
The memory keeps references to the frames it is given while they sit in the now window (cloned when they
would alias the caller's buffer).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from streamforest.tome import head_mean_metric, matching_scores, merge_tokens

__all__ = ["EventInfo", "EventMemory", "MemoryConfig"]

logger = logging.getLogger(__name__)

CONSOLIDATION_POLICIES = ("deferred", "eager")
_INGEST_CHUNK = 32
"""Frames merged per batched ToMe call in :meth:`EventMemory.add_frames` (bounds peak memory)."""


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
            raise ValueError(f"memory config must be a mapping of MemoryConfig fields, got {type(values).__name__}")
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


@dataclass(eq=False)
class _Node:
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
class _Touched:
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


def pair_penalties(centres: Tensor, counts: Tensor, sims: Tensor, normaliser: int, cfg: MemoryConfig) -> Tensor:
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


def pick_pair(nodes: list[_Node], sims: list[float], normaliser: int, cfg: MemoryConfig) -> int:
    """Index ``i`` of the adjacent pair ``(i, i+1)`` with the smallest penalty (first minimum wins)."""
    centres = torch.tensor([node.centre for node in nodes], dtype=torch.float64)
    counts = torch.tensor([node.merge_count for node in nodes], dtype=torch.float64)
    penalties = pair_penalties(centres, counts, torch.tensor(sims, dtype=torch.float64), normaliser, cfg)
    return int(torch.argmin(penalties))


class EventMemory:
    """FSTW + PEMF memory over a stream of frames (see the module docstring).

    Example::

        mem = EventMemory(MemoryConfig())
        for feats in stream:          # [729, 1152] pos-embedded SigLIP features per frame
            mem.add_frame(feats)
            if question_pending:
                tokens = mem.read()   # [N <= 9049, 1152], equal to a rebuild from frame 0
    """

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self.config = config if config is not None else MemoryConfig()
        if not isinstance(self.config, MemoryConfig):
            raise ValueError(f"EventMemory expects a MemoryConfig, got {type(self.config).__name__}")
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every frame (and the merge caches)."""
        self._num_frames = 0
        self._frame_shape: tuple[int, torch.dtype, torch.device] | None = None
        self._prev_flat: Tensor | None = None
        self._now: list[Tensor] = []  # [K_now, C] each
        self._short: list[Tensor] = []  # [K_short, C] each
        self._sims_ready: list[float] = []  # frame cosines of the oldest short frames, as floats
        self._sims_pending: list[Tensor] = []  # newer frame cosines, still 0-d tensors
        self._events: list[_Node] = []  # leaves (deferred) / consolidated events (eager)
        self._event_sims: list[float] = []  # similarity of events (i, i+1)
        self._last_pos = -1
        self._next_uid = 0
        self._merge_cache: dict[tuple[int, int], _Node] = {}
        self._sim_cache: dict[tuple[int, int], float] = {}
        self._plan: tuple[int, list[_Node]] | None = None  # (frame count, consolidated events)

    @property
    def num_frames(self) -> int:
        """Frames added since construction or the last :meth:`reset`."""
        return self._num_frames

    @property
    def events(self) -> list[EventInfo]:
        """Long-memory events, oldest first, exactly as :meth:`read` lays them out."""
        return [node.info() for node in self._consolidated()]

    @property
    def raw_events(self) -> list[EventInfo]:
        """Events as segmented, before the deferred consolidation (``"eager"``: same as :attr:`events`)."""
        return [node.info() for node in self._events]

    def token_counts(self) -> dict[str, int]:
        """``{"long", "short", "now", "total"}`` token counts of what :meth:`read` returns."""
        cfg = self.config
        long = sum(node.slots for node in self._consolidated()) * cfg.long_tokens_per_frame
        short = len(self._short) * cfg.short_tokens
        now = len(self._now) * cfg.now_tokens
        return {"long": long, "short": short, "now": now, "total": long + short + now}

    def layout(self) -> list[tuple[str, int, int]]:
        """What :meth:`read` returns, segment by segment: ``(part, ident, tokens)`` in read order.

        ``("long", uid, slots · long_tokens_per_frame)`` per long-memory event, then ``("short", frame,
        short_tokens)`` per short-window frame and ``("now", frame, now_tokens)`` per current frame
        (``frame`` = stream index since the last :meth:`reset`). Two segments with the same ``(part, ident)``
        hold the same tokens for as long as the memory is not reset: an event's ``uid`` names its exact
        tokens (a merge makes a new event with a new uid), a frame's short (or now) tokens never change while
        it stays in that window. A KV cache of the projected read-out can be keyed by this list.
        """
        cfg = self.config
        out = [("long", node.uid, node.slots * cfg.long_tokens_per_frame) for node in self._consolidated()]
        first = self._last_pos + 1
        out += [("short", first + i, cfg.short_tokens) for i in range(len(self._short))]
        first += len(self._short)
        out += [("now", first + i, cfg.now_tokens) for i in range(len(self._now))]
        return out

    def buffer_sizes(self) -> dict[str, int]:
        """Lengths of the internal buffers (to check that state stays bounded)."""
        return {
            "now": len(self._now),
            "short": len(self._short),
            "events": len(self._events),
            "frame_sims": len(self._sims_ready) + len(self._sims_pending),
            "event_sims": len(self._event_sims),
            "cached_merges": len(self._merge_cache),
            "cached_sims": len(self._sim_cache),
        }

    def nbytes(self) -> int:
        """Bytes of tensor storage the memory holds (frames, events, merge cache), each storage once."""
        tensors = [*self._now, *self._short, *(node.tokens for node in self._events)]
        tensors += [node.tokens for node in self._merge_cache.values()]
        if self._prev_flat is not None:
            tensors.append(self._prev_flat)
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
        return sum(storages.values())

    # ------------------------------------------------------------------ input
    def add_frame(self, frame: Tensor) -> None:
        """Add one frame ``[P, C]`` (validated before any state changes)."""
        if not isinstance(frame, Tensor) or frame.dim() != 2:
            shape = tuple(frame.shape) if isinstance(frame, Tensor) else type(frame).__name__
            raise ValueError(f"EventMemory.add_frame expects one frame [P, C], got {shape}; use add_frames for [T, P, C]")
        self.add_frames(frame.unsqueeze(0))

    def add_frames(self, frames: Tensor) -> None:
        """Add ``frames [T, P, C]`` in order; equivalent to ``add_frame`` on each (validated first)."""
        self._validate(frames)
        for start in range(0, frames.shape[0], _INGEST_CHUNK):
            self._ingest(frames[start : start + _INGEST_CHUNK])

    def _validate(self, frames: Tensor) -> None:
        cfg = self.config
        if not isinstance(frames, Tensor) or frames.dim() != 3:
            shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
            raise ValueError(f"EventMemory.add_frames expects frames [T, P, C], got {shape}")
        _, patches, width = frames.shape
        if width != cfg.hidden_size:
            raise ValueError(
                f"frame width {width} != MemoryConfig.hidden_size={cfg.hidden_size}; "
                "pass features of the vision tower the memory was configured for"
            )
        if patches < cfg.now_tokens:
            raise ValueError(
                f"frame has {patches} tokens < MemoryConfig.now_tokens={cfg.now_tokens}; "
                "lower now_tokens (and short_tokens) or pass full frames"
            )
        if not frames.is_floating_point():
            raise ValueError(f"frames must be floating point features, got dtype {frames.dtype}")
        if self._frame_shape is not None and self._frame_shape != (patches, frames.dtype, frames.device):
            raise ValueError(
                f"frame (P={patches}, {frames.dtype}, {frames.device}) does not match earlier frames "
                f"(P, dtype, device) = {self._frame_shape}; call reset() to start a new stream"
            )
        if frames.numel() and not bool(torch.isfinite(frames).all()):
            raise ValueError("frame contains NaN or Inf values; the memory was left unchanged")

    def _ingest(self, frames: Tensor) -> None:
        """Run the causal steps for a chunk of validated frames ``[t, P, C]``."""
        cfg = self.config
        if self._frame_shape is None:
            self._frame_shape = (frames.shape[1], frames.dtype, frames.device)
        flat = frames.reshape(frames.shape[0], -1)
        sims = []
        for k in range(frames.shape[0]):
            if self._prev_flat is not None or k > 0:
                sims.append(frame_cosine(flat[k - 1] if k > 0 else self._prev_flat, flat[k]))
        self._prev_flat = flat[-1].detach().clone()

        now = list(merge_tokens(frames, cfg.now_tokens, cfg.num_heads).unbind(0))  # [K_now, C] each
        if cfg.now_tokens == frames.shape[1]:  # identity merge: frames staying in the window would alias
            stay = max(0, len(now) - cfg.now_frames)  # the caller's (possibly large) buffer
            now[stay:] = [tok.clone() for tok in now[stay:]]
        queue = self._now + now
        n_leave = max(0, len(queue) - cfg.now_frames)
        leaving, self._now = queue[:n_leave], queue[n_leave:]
        # step A for every frame leaving the now window, batched (per-frame ToMe; rows are independent)
        short = iter(merge_tokens(torch.stack(leaving), cfg.short_tokens, cfg.num_heads).unbind(0) if leaving else ())
        sims_iter = iter(sims)
        in_window = len(queue) - len(now)  # frames already in the now window before this chunk
        for _ in range(frames.shape[0]):
            if self._num_frames > 0:
                self._sims_pending.append(next(sims_iter))
            self._num_frames += 1
            in_window += 1
            if in_window > cfg.now_frames:  # the oldest frame leaves the now window
                in_window -= 1
                self._short.append(next(short))
            self._segment()
            if cfg.consolidation == "eager" and len(self._events) >= 2:
                self._consolidate_in_place()
        self._plan = None

    # ------------------------------------------------------------------ step B
    def _sim_window(self, size: int) -> list[float]:
        if len(self._sims_ready) < size and self._sims_pending:
            self._sims_ready.extend(torch.stack(self._sims_pending).tolist())
            self._sims_pending = []
        return self._sims_ready[:size]

    def _segment(self) -> None:
        """Cut events off the short window while it holds >= short_frames + event_window frames."""
        cfg = self.config
        while len(self._short) >= cfg.short_frames + cfg.event_window:
            window = self._sim_window(cfg.event_window)
            size = window.index(min(window)) + 1
            frames = self._short[:size]
            del self._short[:size]
            del self._sims_ready[:size]
            tokens = torch.stack(frames).reshape(1, size * cfg.short_tokens, cfg.hidden_size)
            tokens = merge_tokens(tokens, size * cfg.long_tokens_per_frame, cfg.num_heads)
            node = self._new_node(
                tokens.reshape(size, cfg.long_tokens_per_frame, cfg.hidden_size),
                centre=(2 * self._last_pos + size + 1) / 2,
                merge_count=1,
                first_frame=self._last_pos + 1,
                last_frame=self._last_pos + size,
            )
            self._last_pos += size
            if self._events:
                self._event_sims.append(event_similarity(self._events[-1].tokens, node.tokens, cfg.num_heads))
            self._events.append(node)

    def _new_node(self, tokens: Tensor, **fields: Any) -> _Node:
        node = _Node(uid=self._next_uid, tokens=tokens, **fields)
        self._next_uid += 1
        return node

    # ------------------------------------------------------------------ step C
    def _normaliser(self) -> int:
        return self._last_pos + len(self._short) + len(self._now)

    def _merged(self, first: _Node, second: _Node, touched: _Touched | None) -> _Node:
        key = (first.uid, second.uid)
        node = self._merge_cache.get(key) if touched is not None else None
        if node is None:
            slots = first.slots + second.slots
            node = self._new_node(
                merge_events(first.tokens, second.tokens, self.config.num_heads),
                centre=(first.centre * first.slots + second.centre * second.slots) / slots,
                merge_count=first.merge_count + second.merge_count,
                first_frame=first.first_frame,
                last_frame=second.last_frame,
                parts=key,
            )
            if touched is not None:
                self._merge_cache[key] = node
        if touched is not None:
            touched.merges.add(key)
        return node

    def _similarity(self, first: _Node, second: _Node, touched: _Touched | None) -> float:
        key = (first.uid, second.uid)
        sim = self._sim_cache.get(key) if touched is not None else None
        if sim is None:
            sim = event_similarity(first.tokens, second.tokens, self.config.num_heads)
            if touched is not None:
                self._sim_cache[key] = sim
        if touched is not None:
            touched.sims.add(key)
        return sim

    def _consolidate(
        self, nodes: list[_Node], sims: list[float], touched: _Touched | None
    ) -> tuple[list[_Node], list[float]]:
        """Step C on copies of ``nodes``/``sims``: merge the cheapest adjacent pair until within quota.

        ``touched`` (deferred policy) enables the merge/similarity caches and records the keys used.
        """
        cfg = self.config
        nodes, sims = list(nodes), list(sims)
        tokens = sum(node.slots for node in nodes) * cfg.long_tokens_per_frame
        normaliser = self._normaliser()
        if tokens <= cfg.long_token_quota or len(nodes) < 2:
            return nodes, sims
        # float64 mirrors of the penalty inputs, updated in place per merge (argmin stays O(E) vectorised)
        centres = torch.tensor([node.centre for node in nodes], dtype=torch.float64)
        counts = torch.tensor([node.merge_count for node in nodes], dtype=torch.float64)
        sim_t = torch.tensor(sims, dtype=torch.float64)
        while tokens > cfg.long_token_quota and len(nodes) >= 2:
            i = int(torch.argmin(pair_penalties(centres, counts, sim_t, normaliser, cfg)))
            first, second = nodes[i], nodes[i + 1]
            merged = self._merged(first, second, touched)
            nodes[i : i + 2] = [merged]
            tokens -= (first.slots + second.slots - merged.slots) * cfg.long_tokens_per_frame
            del sims[i]
            if i > 0:
                sims[i - 1] = self._similarity(nodes[i - 1], merged, touched)
            if i < len(nodes) - 1:
                sims[i] = self._similarity(merged, nodes[i + 1], touched)
            centres = torch.cat([centres[:i], centres.new_tensor([merged.centre]), centres[i + 2 :]])
            counts = torch.cat([counts[:i], counts.new_tensor([merged.merge_count]), counts[i + 2 :]])
            lo, hi = max(i - 1, 0), min(i + 1, len(sims))
            sim_t = torch.cat([sim_t[:lo], sim_t.new_tensor(sims[lo:hi]), sim_t[i + 2 :]])
        return nodes, sims

    def _consolidate_in_place(self) -> None:
        """Eager policy: merge now, with the current frame count as time normaliser."""
        self._events, self._event_sims = self._consolidate(self._events, self._event_sims, touched=None)

    def _consolidated(self) -> list[_Node]:
        """Events as ``read`` lays them out (deferred: replayed on a copy, cached per frame count)."""
        if self.config.consolidation == "eager":
            return self._events
        if self._plan is not None and self._plan[0] == self._num_frames:
            return self._plan[1]
        touched = _Touched()
        nodes, _ = self._consolidate(self._events, self._event_sims, touched)
        # keep only what this read touched: older merge trees can reappear, but then they are recomputed
        self._merge_cache = {key: node for key, node in self._merge_cache.items() if key in touched.merges}
        self._sim_cache = {key: sim for key, sim in self._sim_cache.items() if key in touched.sims}
        self._plan = (self._num_frames, nodes)
        return nodes

    # ------------------------------------------------------------------ output
    def read(self) -> Tensor:
        """Memory tokens ``[N, C]``: long-memory slots, short frames, now frames (non-destructive).

        Returns an empty ``[0, C]`` float32 tensor before the first frame.
        """
        cfg = self.config
        if self._num_frames == 0:
            return torch.empty(0, cfg.hidden_size)
        parts = [node.tokens.reshape(-1, cfg.hidden_size) for node in self._consolidated()]
        parts += self._short + self._now
        return torch.cat(parts, dim=0)

    def __repr__(self) -> str:
        counts = self.token_counts() if self._num_frames else {"total": 0}
        return (
            f"EventMemory(frames={self._num_frames}, events={len(self._events)}, "
            f"tokens={counts['total']}, consolidation={self.config.consolidation!r})"
        )
