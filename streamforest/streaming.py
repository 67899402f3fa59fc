"""Online streaming runtime: encode every frame once, answer questions at any moment (docs/ARCHITECTURE.md).

The reference answers a question asked at time ``q`` by re-decoding ``[start, q]``, re-encoding every sampled
frame with the ViT and rebuilding the FSTW + PEMF memory from scratch (REFERENCE §2.5, §8.4). A
:class:`StreamingSession` instead ingests frames as they arrive — image processor, vision tower, position
embedding (temporal index = frame count mod 512) and memory update, each done **once per frame**, in small
batches (``encode_batch_size``) flushed when full or when a question comes — and answers a question with
what it already holds: memory read-out → projector MLP → prompt → greedy generation.

    >>> session = StreamingSession.from_pretrained("ckpt", mode="exact")
    >>> for t, frame in camera:                       # uint8 [H,W,3] RGB, t in seconds
    ...     session.push(frame, t)
    ...     if t >= 12.5 and not asked:
    ...         print(session.ask("What is the car in front doing?").text)
    >>> answers = session.play("drive.mp4", questions=[(12.5, "What is ahead?"), (40, "Any pedestrians?")])
    >>> session.stats()["question_latency_ms"]

Modes
-----
``"exact"`` (memory consolidation ``deferred``): the answer to a question equals — same visual embeddings
(``torch.equal``), same generated token ids — what the released model gives through the reference rebuild
path ``model.generate(ids, images=[pixels], modalities=["video"])`` **on the session's frames**: the frames
pushed (or played) so far, with temporal indices ``0..T-1`` in arrival order, and the ``short_online_v2``
time message built from those frames' timestamps exactly as the evaluation builds it
(``str(round(t, 1))`` per frame, REFERENCE §1.11). The memory keeps every event leaf (O(T) tokens) and replays
the long-memory merges at read time, so state and read cost grow slowly with the stream.
Bit-equality assumes the vision tower is batch-invariant (it is on CPU, fp32 and bf16, tested); on GPUs
different batch sizes may change the last bits of the ViT features, just as the reference's own 128-frame
chunking does.

``"bounded"`` (consolidation ``eager``): long-memory merges happen as soon as the quota is exceeded, so the
stored tokens, the per-frame cost and the per-question cost stay constant for unbounded streams. Outputs
differ from the reference once long-memory merges start (they are decided without the final global view,
see ``streamforest.memory``); use it for live streams that never end.

When does ``exact`` coincide with the benchmark sampling?
----------------------------------------------------------
The reference samples frames *for each question*: ⌊q' + 1⌋ mid-bin frames over the clip ``[0, q']``
(q' = q clamped to the video end − 0.1 s; min 4, max 2048 frames; REFERENCE §5.3) — the set of frames depends on
q, so no single frame-by-frame stream can reproduce it for every q. It coincides exactly when:

* a file is played from 0 to ``end = q`` (``play(path, end=q)``, ``iter_video_frames`` applies the same
  rule to the whole span ``[0, q]``) and the question is asked at ``q``: the answer equals
  ``StreamForest.ask(path, question, at=q)`` for 3 s ≤ q ≤ 2047 s (outside, the evaluation's min-4 /
  max-2048 frame bounds act). The CLI uses this: by default it plays up to the last question's time, so
  the last question is benchmark-exact;
* the same holds for a question at the end of a video played to its end.

Earlier questions of a played file see the frames of the ``[0, end]`` grid up to their time: with 1 fps the
frame times differ from the per-question benchmark sampling by less than one bin (≈ 1 s) and the frame
count by at most one. Frames pushed by the user are taken as they are (e.g. 1 fps frames at
``k + 0.5`` s); questions longer than 2048 frames are not re-sampled to 2048 as in the benchmark.

Multi-turn dialogue
-------------------
``ask(question, follow_up=True)`` continues the current dialogue. As in the reference (one ``<image>`` at
the start of the first user turn, REFERENCE §5.2 item 4), the visual tokens and the time message always sit at
the start of the **first** user turn and describe the memory *at the time of the latest question*; the
earlier questions and answers follow as plain text turns. ``follow_up=False`` (default) starts a new
single-turn dialogue — the benchmark setting.

What is reused between questions
--------------------------------
ViT features, position embeddings and the memory's causal work (frame → short compression, event cutting,
event similarities; merged events in ``deferred`` mode are cached by merge-tree identity) are computed once
per frame. The projected visual tokens are reused when no frame arrived since the previous question. The
LLM's KV cache is **not** reused: the visual tokens come first in the user turn, so any memory change
invalidates everything after the system prompt, and even with an unchanged memory an incremental prefill is
not bit-identical to the one-shot prefill of the reference path (``exact`` must stay exact).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import resource
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "Question",
    "StreamAnswer",
    "StreamError",
    "StreamingSession",
    "format_stats",
    "parse_questions",
]

MODES = {"exact": "deferred", "bounded": "eager"}
"""Session mode → ``MemoryConfig.consolidation`` policy."""
STOP_STRING = "<|im_end|>"
_LATENCY_WINDOW = 4096
"""Latencies kept for percentiles (bounded so that ``bounded`` sessions stay constant in size)."""


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
    """One answer of a :class:`StreamingSession`.

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


# ----------------------------------------------------------------------------------------------------------
# Input validation (nothing here touches session state)
# ----------------------------------------------------------------------------------------------------------


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


def _timestamp(value: Any, index: int) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise StreamError(f"frame {index}: timestamp {value!r} is not a number of seconds") from None
    if not math.isfinite(t) or t < 0:
        raise StreamError(f"frame {index}: timestamp {value!r} must be a finite number of seconds >= 0")
    return t


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
        try:
            when = float(when)
        except (TypeError, ValueError):
            raise StreamError(f"{where}: field 'time' = {when!r} is not a number of seconds") from None
        if not math.isfinite(when) or when < 0:
            raise StreamError(f"{where}: field 'time' = {when!r} must be a finite number of seconds >= 0")
        if not isinstance(text, str) or not text.strip():
            raise StreamError(f"{where}: field 'question' must be a non-empty string, got {text!r}")
        if not isinstance(follow, bool):
            raise StreamError(f"{where}: field 'follow_up' must be true or false, got {follow!r}")
        out.append(Question(when, text, follow))
    return sorted(out, key=lambda q: q.time)


# ----------------------------------------------------------------------------------------------------------
# Latency bookkeeping and footprint
# ----------------------------------------------------------------------------------------------------------


class _Latencies:
    """Count, sum and max of all samples plus a bounded window for percentiles (seconds in, ms out)."""

    def __init__(self) -> None:
        self.count, self.total, self.max = 0, 0.0, 0.0
        self.window: deque[float] = deque(maxlen=_LATENCY_WINDOW)

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


# ----------------------------------------------------------------------------------------------------------
# The session
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _QuestionTiming:
    flush_ms: float = 0.0
    visual_ms: float = 0.0
    generate_ms: float = 0.0
    prompt_tokens: int = 0
    visual_tokens: int = 0
    new_tokens: int = 0


class StreamingSession:
    """A live StreamForest stream: push frames, ask questions, read :meth:`stats` (module docstring).

    Args:
        model: a loaded ``LlavaQwenForCausalLM`` with the memory projector (``tome729_fstw_pemf``).
        tokenizer: its tokenizer.
        image_processor: its image processor (``preprocess(frames)["pixel_values"]``).
        mode: ``"exact"`` (equals the reference rebuild on the session's frames) or ``"bounded"``
            (constant memory and per-question cost, differs from the reference).
        time_msg: time-message kind (``short_online_v2`` as in stages 4–5 and evaluation; None for none).
        template: conversation template name.
        max_new_tokens: default generation length (16 = the multiple-choice benchmarks).
        encode_batch_size: frames encoded per ViT call; pending frames are also flushed before a question.
        start_time: stream time (s) of the stream start; the time message's ``duration`` is measured from it.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        *,
        mode: str = "exact",
        time_msg: str | None = "short_online_v2",
        template: str = "qwen_2",
        max_new_tokens: int = 16,
        encode_batch_size: int = 8,
        start_time: float = 0.0,
    ) -> None:
        from streamforest.prompts import get_template

        if mode not in MODES:
            raise StreamError(f"mode={mode!r} is not one of {sorted(MODES)} ('exact' = reference answers, "
                              "'bounded' = constant memory for endless streams)")
        if int(encode_batch_size) < 1:
            raise StreamError(f"encode_batch_size must be >= 1, got {encode_batch_size}")
        if int(max_new_tokens) < 1:
            raise StreamError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        get_template(template)  # unknown names raise ValueError listing the known ones
        projector = model.get_projector()
        if not hasattr(projector, "new_memory"):
            raise StreamError(
                f"the model's projector ({type(projector).__name__}, config 'mm_projector_type' = "
                f"{getattr(model.config, 'mm_projector_type', '?')!r}) has no event memory; streaming needs a "
                "StreamForest memory checkpoint ('tome729_fstw_pemf', e.g. StreamForest-Qwen2-7B)"
            )
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.projector = projector
        self.mode, self.time_msg, self.template = mode, time_msg, template
        self.max_new_tokens = int(max_new_tokens)
        self.encode_batch_size = int(encode_batch_size)
        self.start_time = float(start_time)
        self.reset()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: str | torch.dtype = "auto",
        device: str = "cpu",
        load_kwargs: dict[str, Any] | None = None,
        **session_kwargs: Any,
    ) -> StreamingSession:
        """Load a checkpoint with ``streamforest.model.loader.load_pretrained`` and open a session on it."""
        from streamforest.model.loader import load_pretrained

        loaded = load_pretrained(path, dtype=dtype, device=device, **(load_kwargs or {}))
        return cls(loaded.model, loaded.tokenizer, loaded.image_processor, **session_kwargs)

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every frame, the dialogue and the statistics (the model stays loaded)."""
        self.memory = self.projector.new_memory(consolidation=MODES[self.mode])
        self._times = array("d")  # timestamps of encoded frames
        self._pending: list[Tensor] = []  # preprocessed pixels [3,S,S] waiting for the ViT
        self._pending_times: list[float] = []
        self._preprocess_s = 0.0  # preprocessing time of the pending frames
        self._frame_size: tuple[int, int] | None = None
        self._pushed = 0
        self._dialogue: list[tuple[str, str]] = []
        self._visual_cache: tuple[int, Tensor] | None = None
        self._frame_lat, self._question_lat = _Latencies(), _Latencies()
        self._last_question = _QuestionTiming()
        self._questions = 0

    @property
    def num_frames(self) -> int:
        """Frames pushed so far (encoded + pending)."""
        return len(self._times) + len(self._pending)

    @property
    def now(self) -> float | None:
        """Timestamp of the newest frame (None before the first frame)."""
        if self._pending_times:
            return self._pending_times[-1]
        return self._times[-1] if len(self._times) else None

    @property
    def dialogue(self) -> list[tuple[str, str]]:
        """(question, answer) turns of the current dialogue, oldest first."""
        return list(self._dialogue)

    # ------------------------------------------------------------------ frames
    def push(self, frame: Any, timestamp: float) -> None:
        """Add one frame (``uint8 [H,W,3]`` RGB numpy/torch, or a PIL image) seen at ``timestamp`` seconds.

        Raises:
            StreamError: wrong type/dtype/channels, a size different from the stream's first frame, a
                timestamp that is not a number or goes backwards. The session is unchanged.
        """
        self.push_many([frame], [timestamp])

    def push_many(self, frames: Sequence[Any] | np.ndarray, timestamps: Sequence[float]) -> None:
        """Add several frames in order; all are validated before any is added."""
        if len(frames) != len(timestamps):
            raise StreamError(f"got {len(frames)} frames but {len(timestamps)} timestamps; give one time per frame")
        arrays, times = self._validate(frames, timestamps)
        if not arrays:
            return
        t0 = time.perf_counter()
        pixels = self.image_processor.preprocess(arrays, return_tensors="pt")["pixel_values"]
        if self._frame_size is None:
            self._frame_size = arrays[0].shape[:2]
        self._pending.extend(pixels.unbind(0))
        self._pending_times.extend(times)
        self._pushed += len(arrays)
        self._preprocess_s += time.perf_counter() - t0
        while len(self._pending) >= self.encode_batch_size:
            self._encode_pending(self.encode_batch_size)

    def _validate(self, frames: Sequence[Any], timestamps: Sequence[float]) -> tuple[list[np.ndarray], list[float]]:
        size = self._frame_size
        last = self.now
        arrays: list[np.ndarray] = []
        times: list[float] = []
        for k, (frame, stamp) in enumerate(zip(frames, timestamps)):
            index = self._pushed + k
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
            if t < self.start_time:
                raise StreamError(f"frame {index}: timestamp {t:.3f} s is before the stream start ({self.start_time} s)")
            size, last = array_.shape[:2], t
            arrays.append(array_)
            times.append(t)
        return arrays, times

    def flush(self) -> int:
        """Encode all pending frames now (ViT → position embedding → memory); returns how many."""
        done = 0
        while self._pending:
            done += self._encode_pending(self.encode_batch_size)
        return done

    def _encode_pending(self, limit: int) -> int:
        """Encode the oldest ``<= limit`` pending frames as one batch; returns how many."""
        n = min(limit, len(self._pending))
        t0 = time.perf_counter()
        pixels = torch.stack(self._pending[:n])
        try:
            with torch.no_grad():
                feats = self._encode(pixels)
                self.memory.add_frames(feats)  # validates before changing anything
        except Exception as e:
            first, dropped = len(self._times), len(self._pending)
            self._pending, self._pending_times, self._preprocess_s = [], [], 0.0
            raise StreamError(
                f"frames {first}..{first + dropped - 1} could not be encoded ({e}); the pending frames were "
                "dropped and the memory is unchanged — check the frames (and the model's dtype/device)"
            ) from e
        self._times.extend(self._pending_times[:n])
        del self._pending[:n], self._pending_times[:n]
        share = self._preprocess_s * n / (n + len(self._pending))  # preprocessing time of these frames
        self._preprocess_s -= share
        self._frame_lat.add((time.perf_counter() - t0 + share) / n, n)
        return n

    def _encode(self, pixels: Tensor) -> Tensor:
        """``[B,3,S,S]`` → pos-embedded features ``[B,P,C_v]`` with temporal indices continuing the stream."""
        model = self.model
        pixels = pixels.to(device=model.device, dtype=model.dtype)
        feats = model.encode_frames(pixels)
        params = list(self.projector.parameters())
        feats = feats.to(params[0].dtype if params else model.dtype)
        return self.projector.add_pos_embed(feats, start_index=len(self._times))

    # ------------------------------------------------------------------ questions
    def visual_features(self) -> Tensor:
        """Projected visual tokens ``[N, H]`` of the memory now (flushes pending frames first)."""
        self.flush()
        if not len(self._times):
            raise StreamError("no frame has been pushed yet; push at least one frame before asking")
        if self._visual_cache is not None and self._visual_cache[0] == len(self._times):
            return self._visual_cache[1]
        with torch.no_grad():
            tokens = self.memory.read()
            feats = self.projector.project(tokens)
        self._visual_cache = (len(self._times), feats)
        return feats

    def time_message_text(self, at: float | None = None) -> str:
        """The time message for the frames seen so far (evaluation text, REFERENCE §1.11)."""
        from streamforest.prompts import time_message

        times = list(self._times) + self._pending_times
        if not times or not self.time_msg:
            return ""
        sec = [str(round(t, 1)) for t in times]
        end = times[-1] if at is None else max(float(at), times[-1])
        return time_message(self.time_msg, sec, end - self.start_time)

    def prompt(self, question: str, *, follow_up: bool = False, at: float | None = None) -> str:
        """The full prompt :meth:`ask` would generate from (visual tokens at the single ``<image>``)."""
        from streamforest.constants import DEFAULT_IMAGE_TOKEN
        from streamforest.prompts import build_eval_question, build_inference_prompt, get_template

        msg = self.time_message_text(at) or None
        if not follow_up or not self._dialogue:
            return build_inference_prompt(question, msg, template=self.template)
        if DEFAULT_IMAGE_TOKEN in question:
            raise StreamError(f"a follow-up question cannot contain {DEFAULT_IMAGE_TOKEN}: the visual tokens sit in the first turn")
        conv = get_template(self.template)
        for i, (past_q, past_a) in enumerate(self._dialogue):
            conv.append_message(conv.roles[0], build_eval_question(past_q, msg) if i == 0 else past_q)
            conv.append_message(conv.roles[1], past_a)
        conv.append_message(conv.roles[0], question)
        conv.append_message(conv.roles[1], None)
        return conv.get_prompt()

    def _check_question(self, question: Any, at: float | None) -> float:
        if not isinstance(question, str) or not question.strip():
            raise StreamError(f"question must be a non-empty string, got {question!r}")
        now = self.now
        if now is None:
            raise StreamError("no frame has been pushed yet; push at least one frame before asking")
        if at is None:
            return now
        try:
            when = float(at)
        except (TypeError, ValueError):
            raise StreamError(f"question time at={at!r} is not a number of seconds") from None
        if not math.isfinite(when) or when < now:
            raise StreamError(
                f"question time {at!r} s is before the newest frame ({now:.3f} s); ask before pushing later "
                "frames (the memory cannot go back in time)"
            )
        return when

    def ask(
        self,
        question: str,
        at: float | None = None,
        *,
        follow_up: bool = False,
        max_new_tokens: int | None = None,
    ) -> StreamAnswer:
        """Answer ``question`` with everything seen so far.

        Args:
            question: the question text (options included for multiple choice).
            at: the question's stream time (default: the newest frame's time); must not precede the newest frame.
            follow_up: continue the current dialogue (earlier turns are part of the prompt).
            max_new_tokens: generation length (default: the session's).
        """
        from streamforest.prompts import KeywordsStoppingCriteria, tokenizer_image_token

        when = self._check_question(question, at)
        prompt = self.prompt(question, follow_up=follow_up, at=when)
        t0 = time.perf_counter()
        timing = _QuestionTiming(flush_ms=1e3 * self._timed(self.flush))
        t1 = time.perf_counter()
        feats = self.visual_features()
        timing.visual_ms = 1e3 * (time.perf_counter() - t1)
        ids = tokenizer_image_token(prompt, self.tokenizer, return_tensors="pt").unsqueeze(0).to(self.model.device)
        t2 = time.perf_counter()
        out = self.model.generate(
            ids,
            visual_features=[feats],
            max_new_tokens=int(max_new_tokens or self.max_new_tokens),
            do_sample=False,
            num_beams=1,
            use_cache=True,
            pad_token_id=self.tokenizer.pad_token_id,
            stopping_criteria=[KeywordsStoppingCriteria([STOP_STRING], self.tokenizer, ids)],
        )
        timing.generate_ms = 1e3 * (time.perf_counter() - t2)
        latency = time.perf_counter() - t0
        text = self.tokenizer.batch_decode(out, skip_special_tokens=True)[0].strip()
        timing.visual_tokens = int(feats.shape[0])
        timing.prompt_tokens = int(ids.shape[1]) - 1 + timing.visual_tokens
        timing.new_tokens = int(out.shape[1])
        self._dialogue = ([*self._dialogue] if follow_up else []) + [(question, text)]
        self._question_lat.add(latency)
        self._last_question = timing
        self._questions += 1
        return StreamAnswer(
            text=text,
            question=question,
            time=when,
            frame_time=self._times[-1],
            first_frame_time=self._times[0],
            num_frames=len(self._times),
            turn=len(self._dialogue),
            output_ids=out[0].tolist(),
            latency_s=latency,
            visual_tokens=timing.visual_tokens,
            prompt_tokens=timing.prompt_tokens,
        )

    @staticmethod
    def _timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ playback
    def play(
        self,
        source: str | os.PathLike | Iterable[tuple[float, Any]],
        questions: Iterable[Any] = (),
        *,
        fps: float = 1.0,
        start: float = 0.0,
        end: float | None = None,
        backend: str = "auto",
        max_new_tokens: int | None = None,
        progress: bool = False,
        on_answer: Callable[[StreamAnswer], None] | None = None,
    ) -> list[StreamAnswer]:
        """Play a video file / frame folder (≈``fps`` mid-bin frames of ``[start, end]``) or an iterable of
        ``(timestamp, frame)`` through the session, answering each question once the stream reaches its time.

        A question at time ``q`` is answered with every frame whose timestamp is ``<= q`` (before the first
        later frame is pushed). Questions after the last frame are answered at the end (with a warning when
        they lie beyond it). See the module docstring for when this matches the benchmark sampling.

        Raises:
            VideoError: a missing or corrupt video (frames pushed before the error stay in the session).
            StreamError: malformed questions or frames.
        """
        pending = deque(parse_questions(questions))
        frames = self._frame_source(source, fps, start, end, backend)
        answers: list[StreamAnswer] = []

        def answer_due(upto: float | None) -> None:
            while pending and self.num_frames and (upto is None or pending[0].time < upto):
                q = pending.popleft()
                if upto is None and q.time > (self.now or 0.0) + 1.0:
                    logger.warning("question at %.2f s is after the end of the stream (%.2f s); answered with "
                                   "all %d frames", q.time, self.now, self.num_frames)
                ans = self.ask(q.text, at=max(q.time, self.now or 0.0), follow_up=q.follow_up,
                               max_new_tokens=max_new_tokens)
                answers.append(ans)
                if on_answer is not None:
                    on_answer(ans)

        bar = _progress(progress)
        try:
            for t, frame in frames:
                answer_due(float(t))
                self.push(frame, t)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"t={float(t):.1f}s")
            answer_due(None)
        finally:
            if bar is not None:
                bar.close()
        if pending:
            raise StreamError(f"{len(pending)} question(s) could not be answered: the stream had no frames")
        return answers

    def _frame_source(
        self, source: Any, fps: float, start: float, end: float | None, backend: str
    ) -> Iterator[tuple[float, Any]]:
        if isinstance(source, (str, os.PathLike)):
            from streamforest.video import iter_video_frames

            return iter_video_frames(source, sample_fps=fps, start=start, end=end, backend=backend)
        return iter(source)

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        """Latencies, token counts per memory part, memory footprint and RSS (JSON-friendly).

        ``frame_latency_ms``: per-frame ingest cost (preprocess + ViT + position embedding + memory update,
        batched costs divided evenly over the batch). ``question_latency_ms``: wall time of :meth:`ask`.
        ``memory_bytes``: tensor bytes held by the memory (merge caches included); ``session_bytes`` adds
        pending pixels and cached visual tokens.
        """
        current, peak = rss_bytes()
        memory_bytes = self.memory.nbytes() if hasattr(self.memory, "nbytes") else tensor_bytes(self.memory)
        extra = tensor_bytes([self._pending, self._visual_cache])
        buffers = self.memory.buffer_sizes() if hasattr(self.memory, "buffer_sizes") else {}
        return {
            "mode": self.mode,
            "frames": self.num_frames,
            "pending_frames": len(self._pending),
            "questions": self._questions,
            "stream_time_s": self.now,
            "frame_latency_ms": self._frame_lat.summary(),
            "question_latency_ms": self._question_lat.summary(),
            "last_question": dataclasses.asdict(self._last_question),
            "memory_tokens": self.memory.token_counts() if len(self._times) else {"long": 0, "short": 0, "now": 0, "total": 0},
            "memory_events": len(self.memory.events) if len(self._times) else 0,
            "memory_buffers": buffers,
            "memory_bytes": memory_bytes,
            "session_bytes": memory_bytes + extra + self._times.itemsize * len(self._times),
            "rss_bytes": current,
            "peak_rss_bytes": peak,
        }

    def __repr__(self) -> str:
        return f"StreamingSession(mode={self.mode!r}, frames={self.num_frames}, now={self.now}, questions={self._questions})"


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit="frame", desc="streaming", dynamic_ncols=True)


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
