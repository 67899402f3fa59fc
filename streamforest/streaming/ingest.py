"""Frame ingestion of a session: validated frames → preprocessed pixels → batches → ViT + position
embedding (``LlavaQwenForCausalLM.embed_frames``) → event memory. Not thread-safe on its own: the session
calls it under its lock."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from streamforest.streaming.metrics import SessionMetrics
from streamforest.streaming.types import StreamError, validate_frames

__all__ = ["FrameIngest", "FrameTimes", "OnEncoded"]

OnEncoded = Callable[[int, list[float], Tensor], list[Any]]
"""``(first stream index, timestamps, embedded frames [n,P,C_v]) -> events``, called after each batch."""


class FrameTimes:
    """Timestamps of the encoded frames: all of them (``keep_all``) or only their count, first and last.

    The time messages a bounded session allows (``short_online_v2``, ``short_online``, ``short``) need only
    the count and the two ends, so a ``bounded`` session keeps O(1) state for an endless stream;
    ``exact`` keeps every timestamp (8 bytes a frame) for the per-frame time messages.
    """

    def __init__(self, keep_all: bool) -> None:
        self.keep_all = keep_all
        self._all = array("d")
        self._count, self._first, self._last = 0, 0.0, 0.0

    def extend(self, times: Sequence[float]) -> None:
        if not times:
            return
        if self.keep_all:
            self._all.extend(times)
        if not self._count:
            self._first = float(times[0])
        self._count, self._last = self._count + len(times), float(times[-1])

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> float:
        if self.keep_all:
            return self._all[index]
        if index in (0, -self._count) and self._count:
            return self._first
        if index in (-1, self._count - 1) and self._count:
            return self._last
        raise IndexError(f"a bounded stream keeps only its first and last timestamps, not index {index}")

    def __iter__(self) -> Any:
        if not self.keep_all:
            raise TypeError("a bounded stream keeps only its first and last timestamps (iterate in 'exact' mode)")
        return iter(self._all)

    def nbytes(self) -> int:
        return self._all.itemsize * len(self._all)


class FrameIngest:
    """The pending-frame queue and the encoded frames' timestamps of one stream.

    Args:
        model: ``LlavaQwenForCausalLM`` with the memory projector.
        image_processor: its image processor.
        memory: the stream's ``EventMemory``.
        batch_size: frames per ViT call.
        start_time: the stream start (no frame may precede it).
        metrics: where frame latencies go.
        keep_all_times: keep every timestamp (``exact``) or only count/first/last (``bounded``, :class:`FrameTimes`).
    """

    def __init__(
        self, model: Any, image_processor: Any, memory: Any, batch_size: int, start_time: float,
        metrics: SessionMetrics, keep_all_times: bool = True,
    ) -> None:  # fmt: skip
        self.model, self.image_processor, self.memory = model, image_processor, memory
        self.batch_size, self.start_time, self.metrics = batch_size, start_time, metrics
        self.times = FrameTimes(keep_all_times)  # timestamps of encoded frames
        self.pending: list[Tensor] = []  # preprocessed pixels [3,S,S] waiting for the ViT
        self.pending_times: list[float] = []
        self.frame_size: tuple[int, int] | None = None
        self.pushed = 0

    @property
    def num_frames(self) -> int:
        """Frames pushed (encoded + pending)."""
        return len(self.times) + len(self.pending)

    @property
    def now(self) -> float | None:
        """Timestamp of the newest frame (None before the first)."""
        if self.pending_times:
            return self.pending_times[-1]
        return self.times[-1] if len(self.times) else None

    def all_times(self) -> list[float] | FrameTimes:
        """Timestamps of every frame pushed, oldest first (a bounded stream: count/first/last only)."""
        if not self.pending_times:
            return self.times
        if not self.times.keep_all:
            summary = FrameTimes(False)
            summary.extend([self.times[0]] if len(self.times) else [])
            summary._count = len(self.times)
            summary.extend(self.pending_times)
            return summary
        return [*self.times, *self.pending_times]

    def times_nbytes(self) -> int:
        """Bytes of the stored timestamps."""
        return self.times.nbytes()

    def add(self, frames: Sequence[Any], timestamps: Sequence[Any], on_encoded: OnEncoded) -> list[Any]:
        """Validate all ``frames`` (nothing changes on error), queue them, encode full batches."""
        arrays, times = validate_frames(frames, timestamps, first_index=self.pushed, size=self.frame_size,
                                        last=self.now, start_time=self.start_time)  # fmt: skip
        if not arrays:
            return []
        t0 = time.perf_counter()
        pixels = self.image_processor.preprocess(arrays, return_tensors="pt")["pixel_values"]
        self.frame_size = self.frame_size or arrays[0].shape[:2]
        self.pending.extend(pixels.unbind(0))
        self.pending_times.extend(times)
        self.pushed += len(arrays)
        self.metrics.preprocess_s += time.perf_counter() - t0
        events: list[Any] = []
        while len(self.pending) >= self.batch_size:
            events += self._encode(self.batch_size, on_encoded)
        return events

    def flush(self, on_encoded: OnEncoded) -> list[Any]:
        """Encode every pending frame."""
        events: list[Any] = []
        while self.pending:
            events += self._encode(self.batch_size, on_encoded)
        return events

    def _encode(self, limit: int, on_encoded: OnEncoded) -> list[Any]:
        """Encode the oldest ``<= limit`` pending frames as one batch."""
        n, first = min(limit, len(self.pending)), len(self.times)
        t0 = time.perf_counter()
        pixels = torch.stack(self.pending[:n]).to(device=self.model.device, dtype=self.model.dtype)
        try:
            with torch.no_grad():
                feats = self.model.embed_frames(pixels, start_index=first)
                self.memory.add_frames(feats)  # validates before changing anything
        except Exception as e:
            dropped = len(self.pending)
            self.pending, self.pending_times, self.metrics.preprocess_s = [], [], 0.0
            raise StreamError(
                f"frames {first}..{first + dropped - 1} could not be encoded ({e}); the pending frames were "
                "dropped and the memory is unchanged — check the frames (and the model's dtype/device)"
            ) from e
        times = self.pending_times[:n]
        self.times.extend(times)
        del self.pending[:n], self.pending_times[:n]
        self.metrics.frames_encoded(n, time.perf_counter() - t0, len(self.pending))
        return on_encoded(first, times, feats)
