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
from streamforest.model.config import is_memory_model
from streamforest.streaming.ingest import FrameIngest
from streamforest.streaming.metrics import QuestionTiming, SessionMetrics, tensor_bytes
from streamforest.streaming.prefix_cache import PrefixCache, Run, prompt_runs
from streamforest.streaming.types import MODES, StreamAnswer, StreamError, check_question
from streamforest.streaming.watch import Alert, Watcher, probe_due

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
        prefix_cache: reuse the LLM's KV cache of the prompt head between questions and probes
            (:mod:`~streamforest.streaming.prefix_cache`); None = on in ``bounded``, off in ``exact`` (where it
            is exact only up to floating-point reordering).
    """

    def __init__(
        self, model: Any, tokenizer: Any, image_processor: Any, *, mode: str = "exact",
        time_msg: str | None = inference.EVAL_SETTINGS.time_msg, template: str = inference.EVAL_SETTINGS.template,
        max_new_tokens: int = 16, encode_batch_size: int = 8, start_time: float = 0.0,
        prefix_cache: bool | None = None,
    ) -> None:  # fmt: skip
        from streamforest.prompts import TIME_MSG_SPAN_KINDS, get_template

        if mode not in MODES:
            raise StreamError(f"mode={mode!r} is not one of {sorted(MODES)} ('exact' = reference answers, "
                              "'bounded' = constant memory for endless streams)")  # fmt: skip
        for name, value in (("encode_batch_size", encode_batch_size), ("max_new_tokens", max_new_tokens)):
            if int(value) < 1:
                raise StreamError(f"{name} must be >= 1, got {value}")
        get_template(template)  # unknown names raise ValueError listing the known ones
        if mode == "bounded" and time_msg and time_msg not in TIME_MSG_SPAN_KINDS:
            raise StreamError(f"time_msg={time_msg!r} lists every frame's time, so its prompt grows without bound; "
                              f"mode='bounded' needs one of {TIME_MSG_SPAN_KINDS} or None")  # fmt: skip
        projector = model.get_projector()
        if not is_memory_model(model):
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
        self._watcher = Watcher()
        self.reset()
        self._prefix = PrefixCache(enabled=(mode == "bounded") if prefix_cache is None else bool(prefix_cache))

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
        """Forget every frame, the dialogue, queued alerts and the statistics (the model, the standing
        questions and the prefix-cache counters stay; the cached KV is dropped)."""
        with self._lock:
            self.memory = self.projector.new_memory(consolidation=MODES[self.mode])
            self.metrics = SessionMetrics()
            self._frames = FrameIngest(self.model, self.image_processor, self.memory, self.encode_batch_size,
                                       self.start_time, self.metrics, keep_all_times=self.mode == "exact")  # fmt: skip
            self._dialogue: list[tuple[str, str]] = []
            self._visual_cache: tuple[int, Tensor] | None = None
            self._watcher.restart()
            if hasattr(self, "_prefix"):
                self._prefix.clear("reset")
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
    def push(self, frame: Any, timestamp: float) -> list[Alert]:
        """Add one frame (``uint8 [H,W,3]`` RGB numpy/torch, or a PIL image) seen at ``timestamp`` seconds.

        Returns the alerts of the standing questions probed on the frames this call encoded (:meth:`watch`;
        with a watch registered, the frame is encoded at once; otherwise frames wait for a full batch).

        Raises:
            StreamError: wrong type/dtype/channels, a size different from the stream's first frame, a
                timestamp that is not a number or goes backwards. The session is unchanged.
        """
        return self.push_many([frame], [timestamp])

    def push_many(self, frames: Sequence[Any] | np.ndarray, timestamps: Sequence[float]) -> list[Alert]:
        """Add several frames in order; all are validated before any is added. Returns alerts as :meth:`push`
        (probes run at the last frame of each encoded batch)."""
        with self._lock:
            alerts = self._frames.add(frames, timestamps, self._after_encode)
            if self._watcher.active:
                alerts += self._frames.flush(self._after_encode)
        self._watcher.notify(alerts)
        return alerts

    def flush(self) -> list[Alert]:
        """Encode all pending frames now (ViT → position embedding → memory); returns their alerts."""
        with self._lock:
            alerts = self._frames.flush(self._after_encode)
        self._watcher.notify(alerts)
        return alerts

    def _after_encode(self, first_index: int, times: list[float], feats: Tensor) -> list[Alert]:
        """The post-encode point (under the lock): frames ``first_index…`` (``times``, embedded ``feats
        [n,P,C_v]``) are in the memory; the due standing questions are probed at ``times[-1]``."""
        return probe_due(self, times[-1]) if self._watcher.active else []

    # ------------------------------------------------------------------ standing questions
    def watch(self, question: str, *, threshold: float = 0.5, every_s: float | None = None, cooldown_s: float = 10.0,
              answer: bool = False, option: str | None = None, verbatim: bool = False) -> str:  # fmt: skip
        """Register a standing question; returns its id. See :mod:`streamforest.streaming.watch` for the
        prompt, the probability, the alert rule and when probes run. ``option="B"``: watch the probability
        of that option letter of a multiple-choice question instead of "yes". ``verbatim``: use the question
        as the whole user question (no "Answer yes or no." appended), e.g. a benchmark's own probe text."""
        with self._lock:
            return self._watcher.add(self.tokenizer, question, threshold=threshold, every_s=every_s,
                                     cooldown_s=cooldown_s, answer=answer, option=option, verbatim=verbatim)  # fmt: skip

    def watch_probability(self, watch_id: str) -> float | None:
        """The last probe's probability of a standing question (None before its first probe)."""
        with self._lock:
            if watch_id not in self._watcher.watches:
                raise StreamError(f"watch_probability: no standing question with id {watch_id!r}")
            return self._watcher.watches[watch_id].probability

    def unwatch(self, watch_id: str) -> None:
        """Remove a standing question (:class:`StreamError` for an unknown id)."""
        with self._lock:
            self._watcher.remove(watch_id)

    def alerts(self) -> list[Alert]:
        """Alerts not drained yet (oldest first, at most ``watch.ALERT_QUEUE``); empties the queue."""
        with self._lock:
            return self._watcher.drain()

    def on_alert(self, callback: Any) -> None:
        """Call ``callback(alert)`` for every alert, in the pushing thread after the session lock is released."""
        if not callable(callback):
            raise StreamError(f"on_alert expects a callable, got {type(callback).__name__}")
        with self._lock:
            self._watcher.callbacks.append(callback)

    # ------------------------------------------------------------------ questions
    def visual_features(self) -> Tensor:
        """Projected visual tokens ``[N, H]`` of the memory now (flushes pending frames first)."""
        with self._lock:
            self.flush()
            return self._visual_now()

    def _visual_now(self) -> Tensor:
        """Projected visual tokens of the encoded frames (no flush; under the lock)."""
        encoded = len(self._frames.times)
        if not encoded:
            raise StreamError("no frame has been pushed yet; push at least one frame before asking")
        if self._visual_cache is None or self._visual_cache[0] != encoded:
            with torch.no_grad():
                self._visual_cache = (encoded, self.projector.project(self.memory.read()))
        return self._visual_cache[1]

    def _compose(self, question: str, history: list[tuple[str, str]], at: float | None) -> tuple[inference.Prompt, list[Run]]:
        """Prompt + prefix-cache runs over the *encoded* frames (no flush; under the lock)."""
        visual, layout = self._visual_now(), self.memory.layout()
        parts = {"long": 0, "short": 0, "now": 0}
        for kind, _, n in layout:
            parts[kind] += n
        msg = inference.stream_time_message(self.time_msg, self._frames.times, at, self.start_time)
        prompt = inference.make_prompt(self.tokenizer, question, msg, visual=visual, template=self.template,
                                       history=history, visual_parts=parts, device=self.model.device)  # fmt: skip
        return prompt, prompt_runs(prompt, layout)

    def time_message_text(self, at: float | None = None) -> str:
        """The time message for the frames seen so far (evaluation text, REFERENCE §1.11)."""
        with self._lock:
            return inference.stream_time_message(self.time_msg, self._frames.all_times(), at, self.start_time)

    def _history(self, question: str, follow_up: bool) -> list[tuple[str, str]]:
        if follow_up and self._dialogue and DEFAULT_IMAGE_TOKEN in question:
            raise StreamError(f"a follow-up question cannot contain {DEFAULT_IMAGE_TOKEN}: the visual tokens sit in the first turn")
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
            self.flush()
            return self._compose(question, history, at)[0]

    def _generate(self, prompt: inference.Prompt, max_new_tokens: int, runs: list[Run]) -> inference.Generation:
        """The one generation call (greedy, evaluation settings) through the prefix cache (off: one-shot)."""
        return self._prefix.generate(self.model, self.tokenizer, prompt, runs, template=self.template,
                                     max_new_tokens=max_new_tokens)  # fmt: skip

    def _probe(self, prompt: str, at: float) -> Tensor:
        """First-token logits ``[V]`` of a single-turn ``prompt`` over the encoded frames (under the lock)."""
        built, runs = self._compose(prompt, [], at)
        return self._prefix.first_token_logits(self.model, built, runs)

    def ask(
        self, question: str, at: float | None = None, *, follow_up: bool = False, max_new_tokens: int | None = None
    ) -> StreamAnswer:
        """Answer ``question`` with everything seen so far.

        Args:
            question: the question text (options included for multiple choice).
            at: the question's stream time (default: the newest frame's time); must not precede the newest frame.
            follow_up: continue the current dialogue (earlier turns are part of the prompt).
            max_new_tokens: generation length (default: the session's).

        Frames pushed from other threads while the answer is generated wait for the next question.
        """
        with self._ask_lock:
            with self._lock:
                when, epoch = check_question(question, at, self.now), self._epoch
                t0 = time.perf_counter()
                self.flush()
                t1 = time.perf_counter()
                prompt, runs = self._compose(question, self._history(question, follow_up), when)
                times = self._frames.times
                seen = (len(times), times[0], times[-1])
                history = self._dialogue if follow_up else []
            t2 = time.perf_counter()
            out = self._generate(prompt, int(max_new_tokens or self.max_new_tokens), runs)
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
    def play(self, source: str | Any | Iterable[tuple[float, Any]], questions: Iterable[Any] = (), **kwargs: Any) -> list[StreamAnswer]:
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
            extra = tensor_bytes([frames.pending, self._visual_cache]) + frames.times_nbytes() + self._prefix.nbytes()
            report = self.metrics.report(self.memory, encoded=len(frames.times), extra_bytes=extra)
            return {"mode": self.mode, "frames": self.num_frames, "pending_frames": len(frames.pending),
                    "stream_time_s": self.now, **report, "prefix_cache": self._prefix.stats(),
                    "watch": self._watcher.stats()}  # fmt: skip

    def __repr__(self) -> str:
        return (f"StreamingSession(mode={self.mode!r}, frames={self.num_frames}, now={self.now}, "
                f"questions={self.metrics.questions})")  # fmt: skip
