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

Modules: :mod:`streamforest.memory_config` (``MemoryConfig``, ``EventInfo``), :mod:`streamforest.memory_ops`
(event similarity, merge and penalties; the merge-tree node) and this one (``EventMemory``); every public name
is importable from here.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from streamforest.memory_config import CONSOLIDATION_POLICIES, EventInfo, MemoryConfig
from streamforest.memory_ops import (
    EventNode,
    TouchedKeys,
    event_similarity,
    frame_cosine,
    merge_events,
    pair_penalties,
    pick_pair,
)
from streamforest.tome import merge_tokens

__all__ = [
    "CONSOLIDATION_POLICIES",
    "EventInfo",
    "EventMemory",
    "MemoryConfig",
    "event_similarity",
    "frame_cosine",
    "merge_events",
    "pair_penalties",
    "pick_pair",
]

logger = logging.getLogger(__name__)

_INGEST_CHUNK = 32
"""Frames merged per batched ToMe call in :meth:`EventMemory.add_frames` (bounds peak memory)."""


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
        self._events: list[EventNode] = []  # leaves (deferred) / consolidated events (eager)
        self._event_sims: list[float] = []  # similarity of events (i, i+1)
        self._last_pos = -1
        self._next_uid = 0
        self._merge_cache: dict[tuple[int, int], EventNode] = {}
        self._sim_cache: dict[tuple[int, int], float] = {}
        self._plan: tuple[int, list[EventNode]] | None = None  # (frame count, consolidated events)

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
            raise ValueError(
                f"EventMemory.add_frame expects one frame [P, C], got {shape}; use add_frames for [T, P, C]"
            )
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
        short = iter(
            merge_tokens(torch.stack(leaving), cfg.short_tokens, cfg.num_heads).unbind(0) if leaving else ()
        )
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

    def _new_node(self, tokens: Tensor, **fields: Any) -> EventNode:
        node = EventNode(uid=self._next_uid, tokens=tokens, **fields)
        self._next_uid += 1
        return node

    # ------------------------------------------------------------------ step C
    def _normaliser(self) -> int:
        return self._last_pos + len(self._short) + len(self._now)

    def _merged(self, first: EventNode, second: EventNode, touched: TouchedKeys | None) -> EventNode:
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

    def _similarity(self, first: EventNode, second: EventNode, touched: TouchedKeys | None) -> float:
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
        self, nodes: list[EventNode], sims: list[float], touched: TouchedKeys | None
    ) -> tuple[list[EventNode], list[float]]:
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

    def _consolidated(self) -> list[EventNode]:
        """Events as ``read`` lays them out (deferred: replayed on a copy, cached per frame count)."""
        if self.config.consolidation == "eager":
            return self._events
        if self._plan is not None and self._plan[0] == self._num_frames:
            return self._plan[1]
        touched = TouchedKeys()
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
