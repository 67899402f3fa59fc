"""Notebook API: ask a StreamForest model about a video *as it would answer at a given moment*.

    >>> from streamforest import StreamForest
    >>> sf = StreamForest.from_pretrained("path/to/StreamForest-Qwen2-7B", dtype="bfloat16", device="cuda")
    >>> sf.ask("drive.mp4", "What colour is the traffic light?", at=12.5)
    Answer(text='Red.', time=12.5, num_frames=13, timestamps=[0.5, 1.5, ...])

This is the reference evaluation path (REFERENCE §5.2–5.3), one question at a time, through
:mod:`streamforest.inference` (the path the lmms-eval adapter and the online session share): frames of
``[start, at]`` sampled at ≈1 fps with the evaluation rule (whole clips of ``mm_local_num_frames`` frames for
ToMe-clip checkpoints), the evaluation settings :data:`~streamforest.inference.EVAL_SETTINGS` (2048 frames
at most, the ``short_online_v2`` time message, the ``qwen_2`` prompt), greedy decoding stopped at the
template's ``<|im_end|>``; the memory is rebuilt from the clip's frames for every question (use
``streamforest.streaming`` for a real online session).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from streamforest import inference
from streamforest.inference import EVAL_SETTINGS

if TYPE_CHECKING:  # pragma: no cover
    from streamforest.streaming import StreamingSession

logger = logging.getLogger(__name__)

__all__ = ["Answer", "StreamForest"]


@dataclass(frozen=True)
class Answer:
    """One answer: generated ``text``, the question ``time`` (s), and the frames the model saw."""

    text: str
    time: float
    num_frames: int
    timestamps: list[float] = field(default_factory=list)


class StreamForest:
    """A loaded model plus the evaluation settings (``max_frames``, ``time_msg``, ``template``)."""

    def __init__(
        self,
        tokenizer: Any,
        model: Any,
        image_processor: Any,
        *,
        max_frames: int = EVAL_SETTINGS.max_frames,
        time_msg: str | None = EVAL_SETTINGS.time_msg,
        template: str = EVAL_SETTINGS.template,
    ) -> None:
        from streamforest.prompts import get_template

        get_template(template)  # unknown names raise ValueError listing the known ones
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.tokenizer = tokenizer
        self.model = model
        self.image_processor = image_processor
        self.max_frames = int(max_frames)
        self.time_msg = time_msg
        self.template = template

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype: str | torch.dtype = "auto",
        device: str = "cpu",
        max_frames: int = EVAL_SETTINGS.max_frames,
        time_msg: str | None = EVAL_SETTINGS.time_msg,
        template: str = EVAL_SETTINGS.template,
        **load_kwargs: Any,
    ) -> StreamForest:
        """Load a checkpoint (``streamforest.model.loader.load_pretrained``) with evaluation settings."""
        from streamforest.model.loader import load_pretrained

        loaded = load_pretrained(path, dtype=dtype, device=device, **load_kwargs)
        return cls(
            loaded.tokenizer,
            loaded.model,
            loaded.image_processor,
            max_frames=max_frames,
            time_msg=time_msg,
            template=template,
        )

    # ------------------------------------------------------------------ ask
    def ask(
        self,
        video: str | Path | np.ndarray | torch.Tensor | list[Any],
        question: str,
        at: float | None = None,
        start: float = 0.0,
        max_new_tokens: int | None = 16,
        *,
        fps: float | None = None,
        timestamps: Any = None,
    ) -> Answer:
        """Answer ``question`` about ``video`` as the released model would at time ``at`` (s).

        Args:
            video: a video file, a frame folder, or frames ``[T,H,W,3]`` uint8 (a numpy array, a torch tensor or a
                list of ``[H,W,3]`` arrays / PIL images; then ``fps`` or ``timestamps``).
            question: the question text (options included for multiple choice); a non-empty ``str``.
            at: question time in seconds; None = the end of the video.
            start: clip start in seconds (the reference evaluates ``[0, at]``).
            max_new_tokens: 16 like the multiple-choice tasks (>= 1); None = the adapter default (1024).
            fps: frame rate of a frame folder or array.
            timestamps: per-frame times (s) of an array, instead of ``fps``.
        """
        inference.check_question(question)
        overrides = {} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}
        inference.generation_kwargs(overrides)  # a bad max_new_tokens fails before the video is decoded
        clip = self._clip(video, at, start, fps, timestamps)
        answer = inference.generate(self.model, self.tokenizer, self._prompt(clip, question), template=self.template,
                                    **overrides)  # fmt: skip
        return Answer(answer.text, clip.time, len(clip.frames), [float(s) for s in clip.sec])

    def option_scores(
        self,
        video: str | Path | np.ndarray,
        question: str,
        letters: str = "ABCD",
        at: float | None = None,
        start: float = 0.0,
        *,
        fps: float | None = None,
        timestamps: Any = None,
    ) -> dict[str, float]:
        """Log-probability of each option letter as the first answer token (forced choice).

        Same frames and prompt as :meth:`ask`; useful to score multiple-choice questions without relying on
        the model producing a well-formed letter (e.g. an untrained model, whose free text scores 0).
        """
        inference.check_question(question)
        clip = self._clip(video, at, start, fps, timestamps)
        return inference.option_scores(self.model, self.tokenizer, self._prompt(clip, question), letters)

    def _clip(self, video: Any, at: float | None, start: float, fps: float | None, timestamps: Any) -> inference.Clip:
        return inference.frames_at(video, at, start, fps=fps, timestamps=timestamps, max_frames=self.max_frames,
                                   local_num_frames=inference.clip_length(self.model))  # fmt: skip

    def _prompt(self, clip: inference.Clip, question: str) -> inference.Prompt:
        """The evaluation prompt of ``question`` over ``clip`` with its visual tokens (REFERENCE §5.2)."""
        model = self.model
        pixels = inference.prepare_pixels(self.image_processor, clip.frames, model.device, model.dtype)
        visual = inference.video_features(model, pixels)
        message = inference.clip_time_message(clip, self.time_msg)
        return inference.make_prompt(self.tokenizer, question, message, visual=visual, template=self.template,
                                     device=model.device)  # fmt: skip

    # --------------------------------------------------------------- stream
    def stream(self, mode: str = "exact", **kwargs: Any) -> StreamingSession:
        """An online session on this model: push frames as they arrive, ask at any time.

        ``mode="exact"`` answers exactly as :meth:`ask` would on the same frames; ``"bounded"`` keeps memory
        and per-question cost constant for unbounded streams. See :mod:`streamforest.streaming`.
        """
        from streamforest.streaming import StreamingSession

        kwargs.setdefault("time_msg", self.time_msg)
        kwargs.setdefault("template", self.template)
        return StreamingSession(self.model, self.tokenizer, self.image_processor, mode=mode, **kwargs)
