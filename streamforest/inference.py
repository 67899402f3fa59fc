"""One path from (video, time, question) to an answer: the evaluation defaults, frames, pixels, visual tokens,
prompt and generation (REFERENCE §1.11, §1.13, §5.2, §5.3).

Every entry point goes through here — the notebook API (:class:`streamforest.api.StreamForest`), the
lmms-eval adapter (``streamforest.eval.adapter``) and the online session (:mod:`streamforest.streaming`):

    clip = frames_at(video, at=12.5, local_num_frames=clip_length(model))      # frames the evaluation samples
    pixels = prepare_pixels(image_processor, clip.frames, model.device, model.dtype)
    visual = video_features(model, pixels)                                     # [N, H]
    prompt = make_prompt(tokenizer, question, clip_time_message(clip, "short_online_v2"), visual=visual)
    answer = generate(model, tokenizer, prompt, max_new_tokens=16)             # greedy, stops at <|im_end|>

The session replaces :func:`video_features` by its incremental memory and builds the prompt and the answer
with the same :func:`make_prompt` / :func:`generate`, so all three give the same answer on the same frames.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from streamforest.constants import IMAGE_TOKEN_INDEX
from streamforest.inputs import PromptTooLongError, check_fits, check_question, check_seconds

logger = logging.getLogger(__name__)

__all__ = [
    "EVAL_SETTINGS",
    "WRAPPER_DEFAULTS",
    "Clip",
    "PromptTooLongError",
    "EvalSettings",
    "Generation",
    "Prompt",
    "check_fits",
    "check_question",
    "check_seconds",
    "clip_length",
    "clip_time_message",
    "frames_at",
    "generate",
    "generation_kwargs",
    "load_clip",
    "make_prompt",
    "option_scores",
    "prepare_pixels",
    "stream_time_message",
    "video_features",
]


@dataclass(frozen=True)
class EvalSettings:
    """Evaluation settings of one StreamForest entry point (REFERENCE §5.1–5.3).

    Attributes:
        max_frames: cap on sampled frames (``max_frames_num``); ``dynamic_fps1`` takes ⌊duration + 1⌋ frames
            (≈1 fps, mid-bin) and never more than this.
        time_msg: time-message kind placed before the question (REFERENCE §1.11); None for none.
        template: conversation template.
        min_frames: a clip shorter than this many seconds still gets this many frames.
    """

    max_frames: int
    time_msg: str | None
    template: str = "qwen_2"
    min_frames: int = 4


EVAL_SETTINGS = EvalSettings(max_frames=2048, time_msg="short_online_v2")
"""What the released evaluation runs with (``scripts/eval/run_eval.sh``: ``MAX_FRAMES=2048``,
``TIME_MSG=short_online_v2`` — the message stages 4–5 were trained with). The notebook API and the online
session default to these, so their answers are the benchmark's."""

WRAPPER_DEFAULTS = EvalSettings(max_frames=32, time_msg="short_online")
"""The reference lmms-eval wrapper's constructor defaults (REFERENCE §5.2): what ``--model streamforest``
uses when ``--model_args`` leaves ``max_frames_num`` / ``time_msg`` out. The released scripts always pass
:data:`EVAL_SETTINGS`; these are kept so that a bare lmms-eval call behaves as the reference's did."""


# ----------------------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------------------


def _frame_stack(video: Any) -> np.ndarray | None:
    """Frames given in memory (numpy array, torch tensor, list of ``[H,W,3]`` arrays / tensors / PIL images)
    as one ``[T,H,W,3]`` array; None for a path."""
    if isinstance(video, (Tensor, np.ndarray)):
        return video.detach().cpu().numpy() if isinstance(video, Tensor) else video
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError("the list of frames is empty")
        from PIL import Image

        frames = [np.asarray(f.convert("RGB")) if isinstance(f, Image.Image) else
                  f.detach().cpu().numpy() if isinstance(f, Tensor) else np.asarray(f) for f in video]  # fmt: skip
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"the frames differ in shape ({sorted(shapes)[:3]}); give frames of one size")
        return np.stack(frames)
    if isinstance(video, (str, Path)) or hasattr(video, "__fspath__"):
        return None
    raise TypeError(
        f"video must be a file or frame-folder path, or frames uint8 [T,H,W,3] (numpy array, torch tensor, or a "
        f"list of [H,W,3] arrays / PIL images), got {type(video).__name__}"
    )



@dataclass(frozen=True)
class Clip:
    """The frames the evaluation samples for one question.

    Attributes:
        frames: ``uint8 [T, H, W, 3]``.
        sec: per-frame time strings of the time message, ``str(round(index / fps, 1))`` (absolute time).
        duration: clip duration in seconds (the reader's, clamped to the video end − 0.1 s).
        time: the question time in seconds (the clip end, or the end of the video).
    """

    frames: np.ndarray
    sec: list[str] = field(repr=False)
    duration: float
    time: float


def clip_length(model: Any) -> int:
    """Frames per clip ``L``: 1 for the memory model (reference), ``mm_local_num_frames`` for a ToMe-clip
    checkpoint (e.g. 8 for StreamForest-Pretrain), so that sampled frame counts are multiples of ``L``."""
    settings = getattr(model, "multimodal", None)
    if settings is None or settings.uses_memory:
        return 1
    return max(1, int(settings.local_num_frames))


def load_clip(
    path: str | Path,
    clip: tuple[float, float | None] | None,
    *,
    max_frames: int = EVAL_SETTINGS.max_frames,
    min_frames: int = EVAL_SETTINGS.min_frames,
    local_num_frames: int = 1,
    fps: float | None = None,
    backend: str = "auto",
) -> Clip:
    """Decode the evaluation frames of ``clip = (start, end)`` seconds (``end=None`` / ``clip=None``: to the
    end) of a video file or frame folder with :func:`streamforest.video.load_video` (REFERENCE §5.3)."""
    from streamforest.prompts import frame_timestamps
    from streamforest.video import load_video

    video = load_video(
        path,
        num_frames=max_frames,
        sample="dynamic_fps1",
        min_num_frames=min_frames,
        max_num_frames=max_frames,
        clip=clip,
        local_num_frames=local_num_frames,
        fps=fps,
        backend=backend,
    )
    start = clip[0] if clip is not None else 0.0
    end = clip[1] if clip is not None and clip[1] is not None else None
    time = float(end) if end is not None else float(start + video.duration)
    return Clip(video.frames, frame_timestamps(video.indices, video.fps), float(video.duration), time)


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
        raise ValueError(f"timestamps must hold one increasing time (s) per frame ({num} frames), got {ts.shape}")
    step = np.diff(ts)
    if np.ptp(step) > 0.05 * float(np.median(step)):
        raise ValueError("timestamps must be evenly spaced (constant frame rate); resample the frames first")
    return round(1.0 / float(np.mean(step)), 6), float(ts[0])


def _array_clip(
    frames: np.ndarray, at: float | None, start: float, fps: float | None, timestamps: Any, sampler: dict[str, int]
) -> Clip:
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
        frames.shape[0], fps, (max(0.0, start - t0), end), source=f"frames (t0={t0:g} s)", **sampler
    )
    absolute = [i + round(t0 * fps) for i in indices]
    time = float(at) if at is not None else t0 + total
    return Clip(frames[indices], frame_timestamps(absolute, fps), duration, time)


def frames_at(
    video: str | Path | np.ndarray | Tensor | Sequence[Any],
    at: float | None = None,
    start: float = 0.0,
    *,
    fps: float | None = None,
    timestamps: Any = None,
    max_frames: int = EVAL_SETTINGS.max_frames,
    local_num_frames: int = 1,
) -> Clip:
    """The frames the evaluation samples to answer at time ``at`` (s) over ``[start, at]``.

    Args:
        video: a video file, a frame folder, or frames ``[T,H,W,3]`` uint8 (numpy array, torch tensor or a list
            of ``[H,W,3]`` arrays / PIL images; then ``fps`` or ``timestamps``).
        at: question time; None = the end of the video.
        start: clip start (the reference evaluates ``[0, at]``).
        fps: frame rate of a frame folder or array; timestamps: per-frame times of an array instead.
        max_frames: frame cap; local_num_frames: frames per clip (:func:`clip_length`).

    Raises:
        FileNotFoundError: a missing path. TypeError: an unsupported ``video``. ValueError: ``at`` / ``start`` not
            finite numbers, ``at`` not after ``start`` or beyond the video, bad arrays.
    """
    from streamforest.video import END_MARGIN_S

    at = check_seconds(at, "at")
    start = check_seconds(start, "start", allow_none=False)
    if at is not None and at <= start:
        raise ValueError(f"at={at} must be after start={start} (the clip [start, at] would be empty)")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    sampler = {"min_num_frames": EVAL_SETTINGS.min_frames, "max_num_frames": max_frames,
               "local_num_frames": local_num_frames}  # fmt: skip
    stack = _frame_stack(video)
    if stack is not None:
        got = _array_clip(stack, at, start, fps, timestamps, sampler)
    else:
        src = Path(video)
        if not src.exists():
            raise FileNotFoundError(f"video {src} does not exist (pass a video file or a frame folder)")
        clip = None if (at is None and start == 0.0) else (start, at)
        got = load_clip(src, clip, max_frames=max_frames, local_num_frames=local_num_frames, fps=fps)
        if at is not None and (at - start) - got.duration > END_MARGIN_S + 1e-6:
            raise ValueError(
                f"at={at} s is beyond the end of {src} (it ends at about {start + got.duration + END_MARGIN_S:.2f} s); "
                "ask at a time within the video"
            )
    if len(got.frames) == 0:
        raise ValueError(f"no frames in the clip [{start}, {got.time}] s")
    return got


def clip_time_message(clip: Clip, kind: str | None) -> str:
    """The time message of ``clip`` (REFERENCE §1.11); ``""`` when ``kind`` is None."""
    from streamforest.prompts import time_message

    return time_message(kind, clip.sec, clip.duration) if kind else ""


def stream_time_message(kind: str | None, times: Sequence[float], at: float | None, start_time: float = 0.0) -> str:
    """The time message of a stream's frames (``times`` in seconds, oldest first) asked at ``at`` (default:
    the newest frame): the evaluation text over ``str(round(t, 1))`` per frame, duration measured from
    ``start_time`` to the question; ``""`` without frames or ``kind``. ``times`` needs ``len`` and indexing
    (only ``[0]`` / ``[-1]`` for the kinds of ``prompts.TIME_MSG_SPAN_KINDS``)."""
    from streamforest.prompts import TIME_MSG_SPAN_KINDS, time_message

    if not len(times) or not kind:
        return ""
    end = times[-1] if at is None else max(float(at), times[-1])
    if kind in TIME_MSG_SPAN_KINDS:  # count + ends only: O(1) per question on endless streams
        return time_message(kind, [str(round(times[0], 1)), str(round(times[-1], 1))], end - start_time, len(times))
    return time_message(kind, [str(round(t, 1)) for t in times], end - start_time)


# ----------------------------------------------------------------------------------------------------------
# Pixels and visual tokens
# ----------------------------------------------------------------------------------------------------------


def prepare_pixels(image_processor: Any, frames: Any, device: Any, dtype: torch.dtype) -> Tensor:
    """``uint8 [T,H,W,3]`` frames (or a list of ``[H,W,3]``) → ``pixel_values [T,3,S,S]`` on ``device``/``dtype``."""
    pixels = image_processor.preprocess(frames, return_tensors="pt")["pixel_values"]
    return pixels.to(device=device, dtype=dtype)


def video_features(model: Any, pixels: Tensor) -> Tensor:
    """Projected visual tokens ``[N, H]`` of one video (``LlavaQwenForCausalLM.encode_video``: the memory is
    built from the frames from scratch, as the reference does for every question)."""
    with torch.inference_mode():
        return model.encode_images([pixels], ["video"])[0]


# ----------------------------------------------------------------------------------------------------------
# Prompt
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """A tokenised prompt with one ``<image>`` placeholder and the visual tokens that replace it.

    Attributes:
        input_ids: ``LongTensor [1, L]`` holding one ``IMAGE_TOKEN_INDEX`` (−200).
        visual: ``[N, H]`` projected visual tokens.
        visual_parts: token counts of consecutive parts of ``visual`` (e.g. the memory's
            ``{"long", "short", "now"}``), in order; None = one part named ``"visual"``.
    """

    input_ids: Tensor
    visual: Tensor
    visual_parts: Mapping[str, int] | None = None

    @property
    def num_tokens(self) -> int:
        """Prompt length after splicing (text tokens + visual tokens)."""
        return int(self.input_ids.shape[1]) - 1 + int(self.visual.shape[0])

    def segments(self) -> dict[str, tuple[int, int]]:
        """Token ranges ``[begin, end)`` after splicing: ``"prefix"`` (system + user text before the visual
        tokens), each visual part, ``"suffix"`` (time message, question, open assistant turn)."""
        where = torch.nonzero(self.input_ids[0] == IMAGE_TOKEN_INDEX).flatten().tolist()
        if len(where) != 1:
            raise ValueError(f"a prompt with {len(where)} <image> placeholders has no single visual segment")
        parts = dict(self.visual_parts) if self.visual_parts is not None else {"visual": int(self.visual.shape[0])}
        if sum(parts.values()) != self.visual.shape[0]:
            raise ValueError(f"visual_parts {parts} do not add up to the {self.visual.shape[0]} visual tokens")
        out, pos = {"prefix": (0, where[0])}, where[0]
        for name, count in parts.items():
            out[name] = (pos, pos + count)
            pos += count
        out["suffix"] = (pos, self.num_tokens)
        return out

    def embed(self, model: Any) -> Any:
        """``SpliceResult`` (``inputs_embeds [1, num_tokens, H]``, mask) exactly as :func:`generate` splices."""
        return model.prepare_multimodal_inputs(
            self.input_ids, torch.ones_like(self.input_ids), visual_features=[self.visual], padding_side="left"
        )


def make_prompt(
    tokenizer: Any,
    question: str,
    time_msg: str | None,
    *,
    visual: Tensor,
    template: str = EVAL_SETTINGS.template,
    history: Sequence[tuple[str, str]] = (),
    visual_parts: Mapping[str, int] | None = None,
    device: Any = None,
) -> Prompt:
    """Evaluation prompt (:func:`streamforest.prompts.build_inference_prompt`) tokenised, with its visual tokens.

    ``time_msg`` is the message text; ``history`` holds earlier ``(question, answer)`` turns of a dialogue.
    """
    from streamforest.prompts import build_inference_prompt, tokenizer_image_token

    check_question(question)
    text = build_inference_prompt(question, time_msg or None, template=template, history=history)
    ids = tokenizer_image_token(text, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt").unsqueeze(0)
    return Prompt(ids.to(device) if device is not None else ids, visual, visual_parts)


# ----------------------------------------------------------------------------------------------------------
# Generation and forced choice
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    """Decoded answer (special tokens skipped, stripped) and the generated token ids."""

    text: str
    output_ids: list[int] = field(repr=False)
    logits: tuple[Tensor, ...] | None = field(default=None, repr=False)
    """Per-step logits ``[1, V]`` of the generated tokens (only when asked with ``output_logits=True``)."""


def generation_kwargs(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``model.generate`` settings: the evaluation defaults (REFERENCE §1.13) updated by ``overrides``
    (task ``generation_kwargs``; ``until`` is ignored, sampling only when ``do_sample`` and temperature > 0)."""
    from streamforest.prompts import EVAL_GENERATION_DEFAULTS

    cfg = {**EVAL_GENERATION_DEFAULTS, **{k: v for k, v in (overrides or {}).items() if k != "until"}}
    sampling = bool(cfg["do_sample"]) and float(cfg["temperature"] or 0) > 0
    if isinstance(cfg["max_new_tokens"], bool) or int(cfg["max_new_tokens"]) < 1:  # 0: transformers' own default
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {cfg['max_new_tokens']!r}")
    out = {"max_new_tokens": int(cfg["max_new_tokens"]), "do_sample": sampling, "num_beams": int(cfg["num_beams"]),
           "use_cache": True}  # fmt: skip
    if sampling:
        out.update(temperature=float(cfg["temperature"]), top_p=cfg["top_p"])
    return out


def generate(
    model: Any, tokenizer: Any, prompt: Prompt, *, template: str = EVAL_SETTINGS.template,
    past_key_values: Any = None, output_logits: bool = False, **overrides: Any,
) -> Generation:  # fmt: skip
    """Greedy answer to ``prompt`` (``overrides``: see :func:`generation_kwargs`), stopped at the template's
    end-of-turn text (:func:`streamforest.prompts.stop_string`).

    ``past_key_values``: a ``DynamicCache`` already holding the KV of the prompt's first tokens (a prefix
    cache, :mod:`streamforest.streaming.prefix_cache`); only the rest is prefilled, and the cache is left
    holding the prompt and the generated tokens. ``output_logits``: keep every step's logits."""
    from streamforest.prompts import KeywordsStoppingCriteria, stop_string

    ids = prompt.input_ids
    stop = stop_string(template)
    settings = generation_kwargs(overrides)
    check_fits(model, prompt, settings["max_new_tokens"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    extra: dict[str, Any] = {"past_key_values": past_key_values} if past_key_values is not None else {}
    if output_logits:
        extra.update(output_logits=True, return_dict_in_generate=True)
    with torch.inference_mode():
        out = model.generate(
            ids,
            visual_features=[prompt.visual],
            modalities=["video"],
            attention_mask=torch.ones_like(ids),
            pad_token_id=pad,
            stopping_criteria=[KeywordsStoppingCriteria([stop], tokenizer, ids)] if stop else [],
            **settings,
            **extra,
        )
    logits = tuple(out.logits) if output_logits else None
    seqs = out.sequences if output_logits else out
    return Generation(tokenizer.batch_decode(seqs, skip_special_tokens=True)[0].strip(), seqs[0].tolist(), logits)


def option_scores(model: Any, tokenizer: Any, prompt: Prompt, letters: str = "ABCD") -> dict[str, float]:
    """Log-probability of each option letter as the first answer token (forced choice)."""
    letter_ids = [tokenizer.convert_tokens_to_ids(letter) for letter in letters]
    if any(i is None or i == tokenizer.unk_token_id for i in letter_ids):
        raise ValueError(f"the tokenizer has no single token for every letter of {letters!r}")
    check_fits(model, prompt)
    with torch.inference_mode():
        out = model(input_ids=prompt.input_ids, visual_features=[prompt.visual], modalities=["video"])
    logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    return {letter: float(logprobs[i]) for letter, i in zip(letters, letter_ids)}
