"""Notebook API: ask a StreamForest model about a video *as it would answer at a given moment*.

    >>> from streamforest import StreamForest
    >>> sf = StreamForest.from_pretrained("path/to/StreamForest-Qwen2-7B", dtype="bfloat16", device="cuda")
    >>> sf.ask("drive.mp4", "What colour is the traffic light?", at=12.5)
    Answer(text='Red.', time=12.5, num_frames=13, timestamps=[0.5, 1.5, ...])

This is the reference evaluation path (REFERENCE §5.2–5.3), one question at a time: frames of ``[start, at]``
sampled at ≈1 fps with the evaluation rule, the ``short_online_v2`` time message, the ``qwen_2`` prompt
with the evaluation-time insertion, greedy decoding stopped at ``<|im_end|>``; the memory is rebuilt from
the clip's frames for every question (use ``streamforest.streaming`` for a real online session).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from streamforest.streaming import StreamingSession

logger = logging.getLogger(__name__)

__all__ = ["Answer", "StreamForest"]

STOP_STRING = "<|im_end|>"


@dataclass(frozen=True)
class Answer:
    """One answer: generated ``text``, the question ``time`` (s), and the frames the model saw."""

    text: str
    time: float
    num_frames: int
    timestamps: list[float] = field(default_factory=list)


def _rate_of(num: int, fps: float | None, timestamps: Any) -> tuple[float, float]:
    """``(fps, t0)`` of an in-memory frame stack from ``fps`` or evenly spaced ``timestamps`` (s)."""
    if fps is not None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        return float(fps), 0.0
    if timestamps is None:
        raise ValueError("frames given as an array need fps= (frames per second) or timestamps= (seconds)")
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.shape != (num,) or num < 2 or np.any(np.diff(ts) <= 0):
        raise ValueError(
            f"timestamps must hold one increasing time (s) per frame ({num} frames), got {ts.shape}"
        )
    step = np.diff(ts)
    if np.ptp(step) > 0.05 * float(np.median(step)):
        raise ValueError("timestamps must be evenly spaced (constant frame rate); resample the frames first")
    return round(1.0 / float(np.mean(step)), 6), float(ts[0])


@dataclass
class _Frames:
    frames: np.ndarray  # [T,H,W,3] uint8
    sec: list[str]  # the reference's str(round(index / fps, 1)) per frame
    duration: float
    time: float


class StreamForest:
    """A loaded model plus the evaluation settings (``max_frames``, ``time_msg``, ``template``)."""

    def __init__(
        self,
        tokenizer: Any,
        model: Any,
        image_processor: Any,
        *,
        max_frames: int = 2048,
        time_msg: str | None = "short_online_v2",
        template: str = "qwen_2",
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
        max_frames: int = 2048,
        time_msg: str | None = "short_online_v2",
        template: str = "qwen_2",
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

    # ------------------------------------------------------------------ frames
    def _frames_from_path(
        self, path: str | Path, at: float | None, start: float, fps: float | None
    ) -> _Frames:
        from streamforest.prompts import frame_timestamps
        from streamforest.video import END_MARGIN_S, load_video

        src = Path(path)
        if not src.exists():
            raise FileNotFoundError(f"video {src} does not exist (pass a video file or a frame folder)")
        clip = None if (at is None and start == 0.0) else (start, at)
        video = load_video(
            src,
            sample="dynamic_fps1",
            min_num_frames=4,
            max_num_frames=self.max_frames,
            clip=clip,
            local_num_frames=1,
            fps=fps,
        )
        if at is not None and (at - start) - video.duration > END_MARGIN_S + 1e-6:
            raise ValueError(
                f"at={at} s is beyond the end of {src} (it ends at about {start + video.duration + END_MARGIN_S:.2f} s); "
                "ask at a time within the video"
            )
        time = float(at) if at is not None else float(start + video.duration)
        return _Frames(video.frames, frame_timestamps(video.indices, video.fps), float(video.duration), time)

    def _frames_from_array(
        self, frames: np.ndarray, at: float | None, start: float, fps: float | None, timestamps: Any
    ) -> _Frames:
        """Frames in memory follow the decord clip rule (REFERENCE §5.3) with frame k at ``t0 + k / fps``."""
        from streamforest.prompts import frame_timestamps
        from streamforest.video import clip_frame_indices

        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be a uint8 array [T,H,W,3], got {frames.dtype} {frames.shape}")
        fps, t0 = _rate_of(frames.shape[0], fps, timestamps)
        total = frames.shape[0] / fps
        end = total if at is None else float(at) - t0
        if end > total + 1e-6:
            raise ValueError(f"at={at} s is beyond the end of the frames ({t0 + total:.2f} s at {fps:g} fps)")
        indices, duration = clip_frame_indices(
            frames.shape[0], fps, (max(0.0, start - t0), end), max_num_frames=self.max_frames,
            source=f"frames (t0={t0:g} s)",
        )  # fmt: skip
        absolute = [i + round(t0 * fps) for i in indices]
        time = float(at) if at is not None else t0 + total
        return _Frames(frames[indices], frame_timestamps(absolute, fps), duration, time)

    # ------------------------------------------------------------------ ask
    def ask(
        self,
        video: str | Path | np.ndarray,
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
            video: a video file, a frame folder, or frames ``[T,H,W,3]`` uint8 (then ``fps`` or ``timestamps``).
            question: the question text (options included for multiple choice).
            at: question time in seconds; None = the end of the video.
            start: clip start in seconds (the reference evaluates ``[0, at]``).
            max_new_tokens: 16 like the multiple-choice tasks; None = the adapter default (1024).
            fps: frame rate of a frame folder or array.
            timestamps: per-frame times (s) of an array, instead of ``fps``.
        """
        got = self._frames(video, at, start, fps, timestamps)
        text = self._generate(got, question, max_new_tokens)
        return Answer(text, got.time, len(got.frames), [float(s) for s in got.sec])

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
        got = self._frames(video, at, start, fps, timestamps)
        ids, pixels = self._inputs(got, question)
        letter_ids = [self.tokenizer.convert_tokens_to_ids(letter) for letter in letters]
        if any(i is None or i == self.tokenizer.unk_token_id for i in letter_ids):
            raise ValueError(f"the tokenizer has no single token for every letter of {letters!r}")
        with torch.inference_mode():
            logits = self.model(input_ids=ids, images=[pixels], modalities=["video"]).logits[0, -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        return {letter: float(logprobs[i]) for letter, i in zip(letters, letter_ids)}

    def _frames(self, video: Any, at: float | None, start: float, fps: float | None, timestamps: Any) -> _Frames:
        if at is not None and at <= start:
            raise ValueError(f"at={at} must be after start={start} (the clip [start, at] would be empty)")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if isinstance(video, np.ndarray):
            got = self._frames_from_array(video, at, start, fps, timestamps)
        else:
            got = self._frames_from_path(video, at, start, fps)
        if len(got.frames) == 0:
            raise ValueError(f"no frames in the clip [{start}, {got.time}] s")
        return got

    def _inputs(self, got: _Frames, question: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids [1, L]`` of the evaluation prompt and ``pixel_values [T, 3, S, S]`` on the model."""
        from streamforest.prompts import build_inference_prompt, time_message, tokenizer_image_token

        msg = time_message(self.time_msg, got.sec, got.duration) if self.time_msg else None
        prompt = build_inference_prompt(question, msg, template=self.template)
        ids = tokenizer_image_token(prompt, self.tokenizer, return_tensors="pt").unsqueeze(0)
        pixels = self.image_processor.preprocess(got.frames)["pixel_values"]
        return ids.to(self.model.device), pixels.to(device=self.model.device, dtype=self.model.dtype)

    def _generate(self, got: _Frames, question: str, max_new_tokens: int | None) -> str:
        from streamforest.prompts import EVAL_GENERATION_DEFAULTS, KeywordsStoppingCriteria

        ids, pixels = self._inputs(got, question)
        kwargs = {k: v for k, v in EVAL_GENERATION_DEFAULTS.items() if k not in ("temperature", "top_p")}
        if max_new_tokens is not None:
            kwargs["max_new_tokens"] = int(max_new_tokens)
        stop = KeywordsStoppingCriteria([STOP_STRING], self.tokenizer, ids)
        with torch.inference_mode():
            out = self.model.generate(
                ids,
                images=[pixels],
                modalities=["video"],
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=[stop],
                **kwargs,
            )
        return self.tokenizer.batch_decode(out, skip_special_tokens=True)[0].strip()

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
