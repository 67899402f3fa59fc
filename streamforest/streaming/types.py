"""Streaming session types and input validation: modes, errors, questions, answers, frame checks.

Nothing here touches session state: a frame batch is validated completely before the session changes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from streamforest.inputs import check_question as check_text

__all__ = [
    "MODES",
    "Question",
    "StreamAnswer",
    "StreamError",
    "check_question",
    "parse_questions",
    "validate_frames",
]

MODES = {"exact": "deferred", "bounded": "eager"}
"""Session mode → ``MemoryConfig.consolidation`` policy."""


class StreamError(ValueError):
    """Bad input to a streaming session; the message says what was wrong and how to fix it.

    The session is left exactly as it was before the call that raised.
    """


@dataclass(frozen=True)
class Question:
    """A question scheduled at stream time ``time`` (seconds); ``follow_up`` continues the dialogue."""

    time: float
    text: str
    follow_up: bool = False


@dataclass(frozen=True)
class StreamAnswer:
    """One answer of a :class:`~streamforest.streaming.StreamingSession`.

    Attributes:
        text: the decoded answer (special tokens skipped, stripped).
        question: the question text.
        time: the time the question refers to (seconds of stream time).
        frame_time: timestamp of the newest frame the answer saw.
        first_frame_time: timestamp of the oldest frame in the stream.
        num_frames: frames seen (``N`` of the time message).
        turn: 1 for a new dialogue, 2, 3, … for follow-ups.
        output_ids: generated token ids.
        latency_s: wall time of the question (flush of pending frames + read-out + generation).
        visual_tokens: visual tokens spliced into the prompt.
        prompt_tokens: prompt length after splicing (text + visual tokens).
    """

    text: str
    question: str
    time: float
    frame_time: float
    first_frame_time: float
    num_frames: int
    turn: int
    output_ids: list[int] = field(repr=False)
    latency_s: float = 0.0
    visual_tokens: int = 0
    prompt_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field."""
        return dataclasses.asdict(self)


def _frame_array(frame: Any, index: int) -> np.ndarray:
    """A pushed frame as a ``uint8 [H, W, 3]`` RGB array, or :class:`StreamError` saying what is wrong."""
    from PIL import Image

    where = f"frame {index}"
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    if isinstance(frame, Tensor):
        frame = frame.detach().cpu().numpy()
    if not isinstance(frame, np.ndarray):
        raise StreamError(
            f"{where}: expected a uint8 RGB array [H,W,3] (numpy or torch) or a PIL image, got {type(frame).__name__}"
        )
    if frame.dtype != np.uint8:
        raise StreamError(
            f"{where}: dtype {frame.dtype}, expected uint8 pixels 0..255; convert floats in [0,1] with "
            "(x * 255).round().astype(np.uint8)"
        )
    if frame.ndim != 3:
        raise StreamError(f"{where}: shape {frame.shape}, expected [H,W,3] (one RGB frame; push frames one by one)")
    if frame.shape[-1] != 3:
        hint = "it looks channels-first: use frame.transpose(1, 2, 0)" if frame.shape[0] == 3 else (
            "drop the alpha channel with frame[..., :3]" if frame.shape[-1] == 4 else "convert it to RGB"
        )
        raise StreamError(f"{where}: shape {frame.shape} has {frame.shape[-1]} channels, expected 3 (RGB); {hint}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise StreamError(f"{where}: empty frame of shape {frame.shape}")
    return frame


def _seconds(value: Any, what: str) -> float:
    """``value`` as finite seconds >= 0, else a :class:`StreamError` naming ``what`` (e.g. "frame 3: timestamp")."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise StreamError(f"{what} {value!r} is not a number of seconds") from None
    if not math.isfinite(t) or t < 0:
        raise StreamError(f"{what} {value!r} must be a finite number of seconds >= 0")
    return t


def _timestamp(value: Any, index: int) -> float:
    return _seconds(value, f"frame {index}: timestamp")


def validate_frames(
    frames: Sequence[Any],
    timestamps: Sequence[Any],
    *,
    first_index: int,
    size: tuple[int, int] | None,
    last: float | None,
    start_time: float,
) -> tuple[list[np.ndarray], list[float]]:
    """Check a batch of frames against the stream so far; returns ``(uint8 [H,W,3] arrays, times)``.

    Args:
        first_index: stream index of ``frames[0]`` (named in errors).
        size: ``(H, W)`` of the stream's frames (None before the first frame).
        last: timestamp of the newest frame (None before the first frame).
        start_time: the stream start; no frame may precede it.

    Raises:
        StreamError: naming the frame, what is wrong and the fix.
    """
    if len(frames) != len(timestamps):
        raise StreamError(f"got {len(frames)} frames but {len(timestamps)} timestamps; give one time per frame")
    arrays: list[np.ndarray] = []
    times: list[float] = []
    for k, (frame, stamp) in enumerate(zip(frames, timestamps)):
        index = first_index + k
        array_ = _frame_array(frame, index)
        t = _timestamp(stamp, index)
        if size is not None and array_.shape[:2] != size:
            raise StreamError(
                f"frame {index}: size {array_.shape[0]}x{array_.shape[1]} differs from the stream's frames "
                f"({size[0]}x{size[1]}); resize it to the stream size or reset() for a new stream"
            )
        if last is not None and t < last:
            raise StreamError(
                f"frame {index}: timestamp {t:.3f} s goes backwards (previous frame at {last:.3f} s); "
                "frames must arrive in time order (reset() to start a new stream)"
            )
        if t < start_time:
            raise StreamError(f"frame {index}: timestamp {t:.3f} s is before the stream start ({start_time} s)")
        size, last = array_.shape[:2], t
        arrays.append(array_)
        times.append(t)
    return arrays, times


def check_question(question: Any, at: Any, now: float | None) -> float:
    """The stream time of a question asked at ``at`` (default: ``now``, the newest frame's time)."""

    try:
        check_text(question)
    except (TypeError, ValueError) as e:
        raise StreamError(str(e)) from None
    if now is None:
        raise StreamError("no frame has been pushed yet; push at least one frame before asking")
    if at is None:
        return now
    try:
        when = float(at)
    except (TypeError, ValueError):
        raise StreamError(f"question time at={at!r} is not a number of seconds") from None
    if not math.isfinite(when):
        raise StreamError(f"question time at={at!r} must be a finite number of seconds (or None for the newest frame)")
    if when < now:
        raise StreamError(
            f"question time {at!r} s is before the newest frame ({now:.3f} s); ask before pushing later "
            "frames (the memory cannot go back in time)"
        )
    return when


def parse_questions(items: Iterable[Any], source: str = "questions") -> list[Question]:
    """Validate ``(time, text)`` pairs, ``{"time", "question"[, "follow_up"]}`` dicts or :class:`Question`\\ s.

    Returns them sorted by time (stable). Errors name ``source``, the entry and the field.
    """

    out: list[Question] = []
    for i, item in enumerate(items):
        where = f"{source}[{i}]"
        if isinstance(item, Question):
            out.append(item)
            continue
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"time", "question", "follow_up"})
            if unknown:
                raise StreamError(f"{where}: unknown fields {unknown}; use 'time', 'question' and optionally 'follow_up'")
            if "time" not in item or "question" not in item:
                raise StreamError(f"{where}: needs the fields 'time' (seconds) and 'question' (text), got {sorted(item)}")
            when, text, follow = item["time"], item["question"], item.get("follow_up", False)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            (when, text), follow = item, False
        else:
            raise StreamError(f"{where}: expected {{'time': s, 'question': text}} or (time, text), got {item!r}")
        when = _seconds(when, f"{where}: field 'time' =")
        if not isinstance(text, str) or not text.strip():
            raise StreamError(f"{where}: field 'question' must be a non-empty string, got {text!r}")
        try:
            check_text(text, f"{where}: field 'question'")
        except ValueError as e:
            raise StreamError(str(e)) from None
        if not isinstance(follow, bool):
            raise StreamError(f"{where}: field 'follow_up' must be true or false, got {follow!r}")
        out.append(Question(when, text, follow))
    return sorted(out, key=lambda q: q.time)
