"""The session core: push / ask / reset over one event memory, every state change under the session lock.

Extension points, one each: ``build_prompt`` (prompt + token boundaries: prefix text | long | short | now |
suffix text), ``_generate`` (the one generation call, for a KV cache to wrap), ``_after_encode`` (the one
post-encode point for per-frame work; its events are what ``push`` returns)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from streamforest import inference
from streamforest.constants import DEFAULT_IMAGE_TOKEN
from streamforest.streaming.ingest import FrameIngest
from streamforest.streaming.metrics import QuestionTiming, SessionMetrics, tensor_bytes
from streamforest.streaming.types import MODES, StreamAnswer, StreamError, check_question

__all__ = ["StreamingSession"]


class StreamingSession:
    """A live StreamForest stream: push frames, ask questions, read :meth:`stats` (package docstring).

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
        self, model: Any, tokenizer: Any, image_processor: Any, *, mode: str = "exact",
        time_msg: str | None = inference.EVAL_SETTINGS.time_msg, template: str = inference.EVAL_SETTINGS.template,
        max_new_tokens: int = 16, encode_batch_size: int = 8, start_time: float = 0.0,
    ) -> None:  # fmt: skip
        from streamforest.prompts import get_template

        if mode not in MODES:
            raise StreamError(f"mode={mode!r} is not one of {sorted(MODES)} ('exact' = reference answers, "
                              "'bounded' = constant memory for endless streams)")  # fmt: skip
        for name, value in (("encode_batch_size", encode_batch_size), ("max_new_tokens", max_new_tokens)):
            if int(value) < 1:
                raise StreamError(f"{name} must be >= 1, got {value}")
        get_template(template)  # unknown names raise ValueError listing the known ones
        projector = model.get_projector()
        if not hasattr(projector, "new_memory"):
            raise StreamError(
                f"the model's projector ({type(projector).__name__}, config 'mm_projector_type' = "
                f"{getattr(model.config, 'mm_projector_type', '?')!r}) has no event memory; streaming needs a "
                "StreamForest memory checkpoint ('tome729_fstw_pemf', e.g. StreamForest-Qwen2-7B)"
            )
        self.model, self.tokenizer, self.image_processor, self.projector = model, tokenizer, image_processor, projector
        self.mode, self.time_msg, self.template, self.start_time = mode, time_msg, template, float(start_time)
        self.max_new_tokens, self.encode_batch_size = int(max_new_tokens), int(encode_batch_size)
        self._lock = threading.RLock()  # guards every state change (push, flush, read-out, reset, dialogue)
        self._ask_lock = threading.Lock()  # questions one at a time (dialogue order); pushes go on meanwhile
        self.reset()

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, dtype: str | torch.dtype = "auto", device: str = "cpu",
        load_kwargs: dict[str, Any] | None = None, **session_kwargs: Any,
    ) -> StreamingSession:  # fmt: skip
        """Load a checkpoint with ``streamforest.model.loader.load_pretrained`` and open a session on it."""
        from streamforest.model.loader import load_pretrained

        loaded = load_pretrained(path, dtype=dtype, device=device, **(load_kwargs or {}))
        return cls(loaded.model, loaded.tokenizer, loaded.image_processor, **session_kwargs)

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every frame, the dialogue and the statistics (the model stays loaded)."""
        with self._lock:
            self.memory = self.projector.new_memory(consolidation=MODES[self.mode])
            self.metrics = SessionMetrics()
            self._frames = FrameIngest(self.model, self.image_processor, self.memory, self.encode_batch_size,
                                       self.start_time, self.metrics)  # fmt: skip
            self._dialogue: list[tuple[str, str]] = []
            self._visual_cache: tuple[int, Tensor] | None = None
            self._epoch = getattr(self, "_epoch", 0) + 1  # answers of questions begun before a reset are not recorded

    @property
    def num_frames(self) -> int:
        """Frames pushed so far (encoded + pending)."""
        return self._frames.num_frames

    @property
    def now(self) -> float | None:
        """Timestamp of the newest frame (None before the first frame)."""
        with self._lock:
            return self._frames.now

    @property
    def dialogue(self) -> list[tuple[str, str]]:
        """(question, answer) turns of the current dialogue, oldest first."""
        return list(self._dialogue)

    # ------------------------------------------------------------------ frames
    def push(self, frame: Any, timestamp: float) -> list[Any]:
        """Add one frame (``uint8 [H,W,3]`` RGB numpy/torch, or a PIL image) seen at ``timestamp`` seconds.

        Returns the events of the frames encoded by this call (:meth:`_after_encode`; none yet: ``[]``).

        Raises:
            StreamError: wrong type/dtype/channels, a size different from the stream's first frame, a
                timestamp that is not a number or goes backwards. The session is unchanged.
        """
        return self.push_many([frame], [timestamp])

    def push_many(self, frames: Sequence[Any] | np.ndarray, timestamps: Sequence[float]) -> list[Any]:
        """Add several frames in order; all are validated before any is added. Returns events as :meth:`push`."""
        with self._lock:
            return self._frames.add(frames, timestamps, self._after_encode)

    def flush(self) -> list[Any]:
        """Encode all pending frames now (ViT → position embedding → memory); returns their events."""
        with self._lock:
            return self._frames.flush(self._after_encode)

    def _after_encode(self, first_index: int, times: list[float], feats: Tensor) -> list[Any]:
        """The post-encode point (under the lock): frames ``first_index…`` (``times``, embedded ``feats
        [n,P,C_v]``) are in the memory. Per-frame work (standing questions) hooks in here and returns its
        events; none yet."""
        return []

    # ------------------------------------------------------------------ questions
    def visual_features(self) -> Tensor:
        """Projected visual tokens ``[N, H]`` of the memory now (flushes pending frames first)."""
        with self._lock:
            self.flush()
            encoded = len(self._frames.times)
            if not encoded:
                raise StreamError("no frame has been pushed yet; push at least one frame before asking")
            if self._visual_cache is None or self._visual_cache[0] != encoded:
                with torch.no_grad():
                    self._visual_cache = (encoded, self.projector.project(self.memory.read()))
            return self._visual_cache[1]

    def time_message_text(self, at: float | None = None) -> str:
        """The time message for the frames seen so far (evaluation text, REFERENCE §1.11)."""
        with self._lock:
            return inference.stream_time_message(self.time_msg, self._frames.all_times(), at, self.start_time)

    def _history(self, question: str, follow_up: bool) -> list[tuple[str, str]]:
        if follow_up and self._dialogue and DEFAULT_IMAGE_TOKEN in question:
            raise StreamError(f"a follow-up cannot contain {DEFAULT_IMAGE_TOKEN}: the visual tokens sit in the first turn")
        return list(self._dialogue) if follow_up else []

    def prompt(self, question: str, *, follow_up: bool = False, at: float | None = None) -> str:
        """The full prompt text :meth:`ask` would generate from (visual tokens at the single ``<image>``)."""
        from streamforest.prompts import build_inference_prompt

        with self._lock:
            history = self._history(question, follow_up)
            return build_inference_prompt(question, self.time_message_text(at) or None, self.template, history)

    def build_prompt(self, question: str, *, follow_up: bool = False, at: float | None = None) -> inference.Prompt:
        """Tokenised prompt + visual tokens of the memory now; ``Prompt.segments()`` gives the token ranges of
        the prefix text, the long / short / now memory parts and the suffix text."""
        with self._lock:
            history = self._history(question, follow_up)
            visual = self.visual_features()
            counts = self.memory.token_counts()
            return inference.make_prompt(
                self.tokenizer, question, self.time_message_text(at), visual=visual, template=self.template,
                history=history, visual_parts={k: counts[k] for k in ("long", "short", "now")},
                device=self.model.device,
            )  # fmt: skip

    def _generate(self, prompt: inference.Prompt, max_new_tokens: int) -> inference.Generation:
        """The one generation call (greedy, evaluation settings); a KV cache wraps this."""
        return inference.generate(self.model, self.tokenizer, prompt, template=self.template, max_new_tokens=max_new_tokens)

    def ask(
        self, question: str, at: float | None = None, *, follow_up: bool = False, max_new_tokens: int | None = None
    ) -> StreamAnswer:
        """Answer ``question`` with everything seen so far.

        Args:
            question: the question text (options included for multiple choice).
            at: the question's stream time (default: the newest frame's time); must not precede the newest frame.
            follow_up: continue the current dialogue (earlier turns are part of the prompt).
            max_new_tokens: generation length (default: the session's).

        Frames pushed from other threads during generation are encoded meanwhile; the answer sees the frames
        up to the moment it was asked.
        """
        with self._ask_lock:
            with self._lock:
                when, epoch = check_question(question, at, self.now), self._epoch
                t0 = time.perf_counter()
                self.flush()
                t1 = time.perf_counter()
                prompt = self.build_prompt(question, follow_up=follow_up, at=when)
                times = self._frames.times
                seen = (len(times), times[0], times[-1])
                history = self._dialogue if follow_up else []
            t2 = time.perf_counter()
            out = self._generate(prompt, int(max_new_tokens or self.max_new_tokens))
            t3 = time.perf_counter()
            timing = QuestionTiming(1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2), prompt.num_tokens,
                                    int(prompt.visual.shape[0]), len(out.output_ids))  # fmt: skip
            with self._lock:
                if epoch == self._epoch:
                    self._dialogue = [*history, (question, out.text)]
                    self.metrics.question_answered(t3 - t0, timing)
                turn = len(history) + 1
        return StreamAnswer(text=out.text, question=question, time=when, frame_time=seen[2], first_frame_time=seen[1],
                            num_frames=seen[0], turn=turn, output_ids=out.output_ids, latency_s=t3 - t0,
                            visual_tokens=timing.visual_tokens, prompt_tokens=timing.prompt_tokens)  # fmt: skip

    # ------------------------------------------------------------------ playback / stats
    def play(self, source: Any, questions: Iterable[Any] = (), **kwargs: Any) -> list[StreamAnswer]:
        """Play a file, frame folder or ``(timestamp, frame)`` iterable through the session, answering the
        timed questions (:func:`streamforest.streaming.playback.play`, which documents the arguments)."""
        from streamforest.streaming.playback import play

        return play(self, source, questions, **kwargs)

    def stats(self) -> dict[str, Any]:
        """Latencies, token counts per memory part, memory footprint and RSS (JSON-friendly).

        ``frame_latency_ms``: per-frame ingest cost (preprocess + ViT + position embedding + memory update,
        batched costs divided evenly over the batch). ``question_latency_ms``: wall time of :meth:`ask`.
        ``memory_bytes``: tensor bytes held by the memory (merge caches included); ``session_bytes`` adds
        pending pixels, cached visual tokens and timestamps.
        """
        with self._lock:
            frames = self._frames
            extra = tensor_bytes([frames.pending, self._visual_cache]) + frames.times.itemsize * len(frames.times)
            report = self.metrics.report(self.memory, encoded=len(frames.times), extra_bytes=extra)
            return {"mode": self.mode, "frames": self.num_frames, "pending_frames": len(frames.pending),
                    "stream_time_s": self.now, **report}  # fmt: skip

    def __repr__(self) -> str:
        return (f"StreamingSession(mode={self.mode!r}, frames={self.num_frames}, now={self.now}, "
                f"questions={self.metrics.questions})")  # fmt: skip
