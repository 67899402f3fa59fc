"""Streaming session metrics: per-frame and per-question latencies, memory footprint, process RSS."""

from __future__ import annotations

import dataclasses
import os
import resource
from collections import deque
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["Latencies", "QuestionTiming", "SessionMetrics", "format_stats", "rss_bytes", "tensor_bytes"]

LATENCY_WINDOW = 4096
"""Latencies kept for percentiles (bounded so that ``bounded`` sessions stay constant in size)."""


class Latencies:
    """Count, sum and max of all samples plus a bounded window for percentiles (seconds in, ms out)."""

    def __init__(self) -> None:
        self.count, self.total, self.max = 0, 0.0, 0.0
        self.window: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def add(self, seconds: float, weight: int = 1) -> None:
        for _ in range(weight):
            self.window.append(seconds)
        self.count += weight
        self.total += seconds * weight
        self.max = max(self.max, seconds)

    def summary(self) -> dict[str, float]:
        if not self.count:
            return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0, "last": 0.0}
        ordered = sorted(self.window)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return {
            "count": self.count,
            "mean": 1e3 * self.total / self.count,
            "p50": 1e3 * pick(0.5),
            "p95": 1e3 * pick(0.95),
            "max": 1e3 * self.max,
            "last": 1e3 * self.window[-1],
        }


@dataclass
class QuestionTiming:
    """Breakdown of the last question (milliseconds and token counts)."""

    flush_ms: float = 0.0
    visual_ms: float = 0.0
    generate_ms: float = 0.0
    prompt_tokens: int = 0
    visual_tokens: int = 0
    new_tokens: int = 0


def tensor_bytes(obj: Any, _seen: set[int] | None = None, _depth: int = 0) -> int:
    """Bytes of the distinct tensor storages reachable from ``obj`` (lists, dicts, objects' attributes)."""
    seen = set() if _seen is None else _seen
    if _depth > 6 or id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, Tensor):
        storage = obj.untyped_storage()
        key = storage.data_ptr() or id(storage)
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set, deque)):
        return sum(tensor_bytes(v, seen, _depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(tensor_bytes(v, seen, _depth + 1) for v in vars(obj).values())
    return 0


def rss_bytes() -> tuple[int, int]:
    """``(current RSS, peak RSS)`` of this process in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    try:
        import psutil

        current = int(psutil.Process(os.getpid()).memory_info().rss)
    except Exception:  # noqa: BLE001 - psutil missing or restricted: fall back to the peak
        current = peak
    return current, peak


class SessionMetrics:
    """What a session measures: frame ingest latency (preprocessing shared out over the encoded frames),
    question latency, the last question's breakdown and the question count."""

    def __init__(self) -> None:
        self.frame, self.question = Latencies(), Latencies()
        self.last_question = QuestionTiming()
        self.questions = 0
        self.preprocess_s = 0.0  # preprocessing time of the frames not encoded yet

    def frames_encoded(self, n: int, encode_s: float, still_pending: int) -> None:
        """``n`` frames encoded in ``encode_s``; they take their share of the pending preprocessing time."""
        share = self.preprocess_s * n / (n + still_pending)
        self.preprocess_s -= share
        self.frame.add((encode_s + share) / n, n)

    def question_answered(self, latency_s: float, timing: QuestionTiming) -> None:
        self.question.add(latency_s)
        self.last_question = timing
        self.questions += 1

    def report(self, memory: Any, *, encoded: int, extra_bytes: int) -> dict[str, Any]:
        """Latencies, memory tokens/events/buffers/bytes and RSS; ``extra_bytes``: session tensors outside
        the memory (pending pixels, cached visual tokens, timestamps)."""
        current, peak = rss_bytes()
        memory_bytes = memory.nbytes() if hasattr(memory, "nbytes") else tensor_bytes(memory)
        return {
            "questions": self.questions,
            "frame_latency_ms": self.frame.summary(),
            "question_latency_ms": self.question.summary(),
            "last_question": dataclasses.asdict(self.last_question),
            "memory_tokens": memory.token_counts() if encoded else {"long": 0, "short": 0, "now": 0, "total": 0},
            "memory_events": len(memory.events) if encoded else 0,
            "memory_buffers": memory.buffer_sizes() if hasattr(memory, "buffer_sizes") else {},
            "memory_bytes": memory_bytes,
            "session_bytes": memory_bytes + extra_bytes,
            "rss_bytes": current,
            "peak_rss_bytes": peak,
        }


def format_stats(stats: dict[str, Any]) -> str:
    """One line for logs and the CLI: frames, latencies, memory tokens and bytes, RSS."""
    frame, question, tokens = stats["frame_latency_ms"], stats["question_latency_ms"], stats["memory_tokens"]
    mib = 1024 * 1024
    return (
        f"mode={stats['mode']} frames={stats['frames']} questions={stats['questions']} | "
        f"frame {frame['mean']:.1f} ms (p95 {frame['p95']:.1f}) | question {question['mean']:.1f} ms "
        f"(max {question['max']:.1f}) | memory tokens {tokens['total']} = long {tokens['long']} + short "
        f"{tokens['short']} + now {tokens['now']} | memory {stats['memory_bytes'] / mib:.2f} MiB | "
        f"RSS {stats['rss_bytes'] / mib:.0f} MiB (peak {stats['peak_rss_bytes'] / mib:.0f})"
    )
