"""Pure frame sampling (REFERENCE §6.1) and clip planning (REFERENCE §5.3, §6.2): no decoding, no I/O.

* :class:`SamplingSpec` — how frames are picked (frozen); :data:`EVAL_SAMPLING` is the evaluation preset
  (``dynamic_fps1``, min 4, max 2048 frames, one frame per group), :data:`STREAM_SAMPLING` the online one.
* :func:`get_frame_indices` — the reference sampler: ``dynamic_fps1`` (≈1 fps, mid-bin), ``middle``, ``rand``,
  ``fix_start``, ``fps<x>``.
* :func:`plan_file` / :func:`plan_folder` — the indices of a clip ``(start, end)`` of a video file (the decord
  reader's rule) or of a frame folder (the reference ``read_frames_img`` rule), as a :class:`Plan`.
* :func:`clip_frame_indices` — the evaluation rule for frames already in memory.

The decoders (:mod:`streamforest.video.decoders`) only read the frames a plan names.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "END_MARGIN_S",
    "EVAL_SAMPLING",
    "STREAM_SAMPLING",
    "Plan",
    "SamplingSpec",
    "VideoError",
    "check_clip",
    "clip_frame_indices",
    "folder_fps",
    "get_frame_indices",
    "plan_file",
    "plan_folder",
]

END_MARGIN_S = 0.1
"""The decord reader clamps a clip end to ``duration − 0.1 s`` (REFERENCE §6.2)."""


class VideoError(ValueError):
    """A video that cannot be read as asked; the message names the file, the field and the fix."""


# ----------------------------------------------------------------------------------------------------------
# The reference sampler (REFERENCE §6.1)
# ----------------------------------------------------------------------------------------------------------


def _rand_index(rng: random.Random | np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in ``[lo, hi)``."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(lo, hi))
    return rng.randrange(lo, hi)


def _rand_subset(rng: random.Random | np.random.Generator, vlen: int, k: int) -> list[int]:
    """``k`` distinct indices of ``range(vlen)``, sorted (the reference's permutation fallback)."""
    if isinstance(rng, np.random.Generator):
        perm = [int(i) for i in rng.permutation(vlen)]
    else:
        perm = list(range(vlen))
        rng.shuffle(perm)
    return sorted(perm[:k])


def _bins(num: int, vlen: int) -> list[tuple[int, int]]:
    """``num`` bins ``(a, b)`` of ``range(vlen)``: edges ``int(linspace(0, vlen, num + 1))``, ``b`` exclusive."""
    edges = np.linspace(0, vlen, num + 1).astype(int)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(num)]


def _sample_bins(
    num_frames: int, vlen: int, sample: str, fix_start: int | None, rng: random.Random | np.random.Generator | None
) -> list[int]:
    bins = _bins(min(num_frames, vlen), vlen)
    if sample == "rand":
        rng = rng if rng is not None else random.Random(0)
        # the reference draws from [a, b - 1) and falls back to a random subset when a bin is that narrow
        if all(b - 1 > a for a, b in bins):
            indices = [_rand_index(rng, a, b - 1) for a, b in bins]
        else:
            indices = _rand_subset(rng, vlen, len(bins))
    elif fix_start is not None:
        indices = [a + int(fix_start) for a, _ in bins]
    else:
        indices = [(a + b - 1) // 2 for a, b in bins]
    if not indices:
        raise ValueError(f"cannot sample frames from a video of {vlen} frames")
    return indices + [indices[-1]] * (num_frames - len(indices))


def _sample_fps(sample: str, vlen: int, input_fps: float, max_num_frames: int) -> list[int]:
    try:
        out_fps = float(sample[3:])
    except ValueError:
        raise ValueError(f"sample {sample!r}: expected 'fps<rate>' such as 'fps0.5'") from None
    if out_fps <= 0:
        raise ValueError(f"sample {sample!r}: the rate must be > 0")
    duration = vlen / input_fps
    delta = 1.0 / out_fps
    seconds = np.arange(delta / 2, duration + delta / 2, delta)
    indices = [int(i) for i in np.around(seconds * input_fps).astype(int) if i < vlen]
    return indices[:max_num_frames] if max_num_frames > 0 else indices


def get_frame_indices(
    num_frames: int | None,
    vlen: int,
    sample: str = "middle",
    fix_start: int | None = None,
    input_fps: float = 1.0,
    min_num_frames: int = 1,
    max_num_frames: int = -1,
    local_num_frames: int = 8,
    rng: random.Random | np.random.Generator | None = None,
) -> list[int]:
    """Indices (0-based, within ``vlen`` frames) that the reference sampler picks (REFERENCE §6.1).

    Args:
        num_frames: frames wanted by ``middle``/``rand`` (computed for ``dynamic_fps1``; unused by ``fps<x>``).
        vlen: number of frames to sample from.
        sample: ``dynamic_fps1`` (⌊duration + 1⌋ frames per ``local_num_frames`` group, i.e. ≈1 fps,
            then ``middle``), ``middle`` (bin centres), ``rand`` (random frame per bin), ``fps<x>``
            (timestamps (k + ½)/x s, first ``max_num_frames`` only).
        fix_start: with ``middle``/``dynamic_fps1``: offset from each bin start instead of the centre.
        input_fps: frame rate of the frames (turns ``vlen`` into a duration).
        min_num_frames: lower bound (lowered to what ``vlen`` allows, as in the reference).
        max_num_frames: upper bound for ``dynamic_fps1`` and ``fps<x>`` (≤ 0: none).
        local_num_frames: ``dynamic_fps1`` returns a multiple of this.
        rng: ``random.Random`` or ``numpy.random.Generator`` for ``rand`` (default ``random.Random(0)``;
            the global RNG is never used).

    Returns:
        Non-decreasing indices; ``middle``/``rand`` pad by repeating the last index up to ``num_frames``.
    """
    if vlen < 0:
        raise ValueError(f"vlen must be >= 0, got {vlen}")
    if local_num_frames < 1:
        raise ValueError(f"local_num_frames must be >= 1, got {local_num_frames}")
    if min_num_frames > vlen:
        min_num_frames = (vlen // local_num_frames) * local_num_frames if sample == "dynamic_fps1" else vlen
    if sample == "dynamic_fps1":
        segments = int((vlen / input_fps + 1) // local_num_frames)
        num_frames = local_num_frames * segments if segments > 0 else local_num_frames
        if max_num_frames > 0:
            num_frames = min(num_frames, max_num_frames)
        sample = "middle"
    if sample in ("middle", "rand"):
        if num_frames is None:
            raise ValueError(f"sample={sample!r} needs num_frames (how many frames to pick)")
        return _sample_bins(max(min_num_frames, int(num_frames)), vlen, sample, fix_start, rng)
    if sample.startswith("fps"):
        return _sample_fps(sample, vlen, input_fps, max_num_frames)
    raise ValueError(f"unknown frame sampling {sample!r}; use 'dynamic_fps1', 'middle', 'rand' or 'fps<rate>'")


@dataclass(frozen=True)
class SamplingSpec:
    """How frames are picked from a video (arguments of :func:`get_frame_indices`).

    Attributes:
        sample: ``dynamic_fps1``, ``middle``, ``rand``, ``fps<x>``.
        num_frames: frames for ``middle``/``rand`` (None: ``max_num_frames`` when > 0); unused by ``dynamic_fps1``.
        min_num_frames / max_num_frames: bounds (max ≤ 0: none).
        local_num_frames: ``dynamic_fps1`` returns a multiple of this (frames per ToMe clip).
        fix_start: with ``middle``/``dynamic_fps1``: offset from each bin start instead of the centre.
        rng: ``random.Random`` or ``numpy.random.Generator`` for ``rand`` (default ``random.Random(0)``).
    """

    sample: str = "dynamic_fps1"
    num_frames: int | None = None
    min_num_frames: int = 4
    max_num_frames: int = 2048
    local_num_frames: int = 1
    fix_start: int | None = None
    rng: random.Random | np.random.Generator | None = dataclasses.field(default=None, compare=False)

    @property
    def wanted(self) -> int | None:
        """``num_frames``, defaulting to ``max_num_frames`` when that is a bound."""
        if self.num_frames is not None:
            return self.num_frames
        return self.max_num_frames if self.max_num_frames > 0 else None

    def replace(self, **changes: Any) -> SamplingSpec:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def indices(self, vlen: int, input_fps: float = 1.0, **changes: Any) -> list[int]:
        """:func:`get_frame_indices` for ``vlen`` frames at ``input_fps`` (``changes`` override fields)."""
        spec = self.replace(**changes) if changes else self
        return get_frame_indices(
            spec.wanted, vlen, spec.sample, spec.fix_start, input_fps=input_fps, min_num_frames=spec.min_num_frames,
            max_num_frames=spec.max_num_frames, local_num_frames=spec.local_num_frames, rng=spec.rng,
        )  # fmt: skip


EVAL_SAMPLING = SamplingSpec()
"""The evaluation preset (REFERENCE §5.2): ``dynamic_fps1``, min 4, max 2048 frames, one frame per group."""
STREAM_SAMPLING = SamplingSpec(min_num_frames=1, max_num_frames=-1)
"""The online runtime's ≈1 fps mid-bin frames of a span, without bounds (:func:`iter_video_frames`)."""


@dataclass(frozen=True)
class Plan:
    """The frames to decode: absolute ``indices`` (non-decreasing) and the seconds ``duration`` they cover."""

    indices: list[int]
    duration: float


# ----------------------------------------------------------------------------------------------------------
# Clip planning
# ----------------------------------------------------------------------------------------------------------


def check_clip(path: Path, clip: Sequence[float | None] | None) -> tuple[float, float] | None:
    """``(start, end)`` seconds, checked (``None`` ends are 0 / the end of the video); None for no clip."""
    if clip is None:
        return None
    if len(clip) != 2:
        raise VideoError(f"{path}: clip must be (start, end) in seconds, got {clip!r}")
    start = 0.0 if clip[0] is None else float(clip[0])
    end = math.inf if clip[1] is None else float(clip[1])
    if math.isnan(start) or math.isnan(end):
        raise VideoError(f"{path}: clip {clip!r} contains NaN; give clip.start and clip.end in seconds")
    if start >= end:
        raise VideoError(
            f"{path}: clip.start ({start} s) must be smaller than clip.end ({end} s); fix the clip "
            "(the question time is the clip end)"
        )
    return start, end


def plan_file(
    path: Path, vlen: int, fps: float, clip: tuple[float, float] | None, spec: SamplingSpec, rate: float = 1.0
) -> Plan:
    """Indices for a video file of ``vlen`` frames at ``fps``: the reference decord reader's clip rule.

    ``rate`` rescales time for the sampler only (``dynamic_fps1`` then gives ≈``rate`` frames per second).
    """
    duration = vlen / fps
    offset = 0
    if clip is not None:
        start, end = max(0.0, clip[0]), clip[1]
        if int((duration - END_MARGIN_S) * fps) < 1:  # a clip ends >= END_MARGIN_S before the video end
            raise VideoError(
                f"{path}: the video is too short for a clip: {vlen} frame(s) at {fps:.3f} fps ({duration:.3f} s), and "
                f"a clip stops {END_MARGIN_S} s before the video end, so it holds no whole frame; use a longer video "
                "(or read the whole video without a clip)"
            )
        if start >= duration:
            raise VideoError(
                f"{path}: clip.start ({clip[0]} s) is not before the end of the video ({duration:.3f} s); "
                "use a clip inside the video"
            )
        if end > duration - END_MARGIN_S:
            logger.debug("%s: clip.end %.3f s clamped to %.3f s (video end − 0.1 s)", path, end, duration - END_MARGIN_S)
            end = duration - END_MARGIN_S
        if end <= start:
            raise VideoError(
                f"{path}: clip.start ({clip[0]} s) is within {END_MARGIN_S} s of the video end ({duration:.3f} s); "
                "start the clip earlier"
            )
        duration = end - start
        vlen, offset = int(duration * fps), int(start * fps)
        if vlen < 1:
            raise VideoError(
                f"{path}: clip ({clip[0]} s, {clip[1]} s) holds no whole frame at {fps:.3f} fps; make clip.end later"
            )
    indices = spec.indices(vlen, fps / rate if rate != 1.0 else fps)
    return Plan([i + offset for i in indices], duration)


def clip_frame_indices(
    num_frames: int,
    fps: float,
    clip: tuple[float, float] | None,
    *,
    min_num_frames: int = 4,
    max_num_frames: int = 2048,
    local_num_frames: int = 1,
    source: str = "<frames>",
) -> tuple[list[int], float]:
    """The evaluation sampling (decord clip rule + ``dynamic_fps1``) for ``num_frames`` frames held in memory.

    Frame ``k`` is at ``k / fps`` seconds; the rule is exactly :func:`load_video`'s for a video file.

    Returns:
        ``(indices, duration)``: sampled frame indices and the (clamped) clip duration in seconds.

    Raises:
        VideoError: an empty clip or one outside the frames (``source`` names them in the message).
    """
    spec = EVAL_SAMPLING.replace(
        num_frames=max_num_frames, min_num_frames=min_num_frames, max_num_frames=max_num_frames,
        local_num_frames=local_num_frames,
    )  # fmt: skip
    plan = plan_file(Path(source), num_frames, fps, clip, spec)
    return plan.indices, plan.duration


def folder_fps(folder: str | os.PathLike, fps: float | None = None) -> float:
    """Frame rate of a frame folder: ``fps`` if given, else the reference's path heuristics."""
    if fps is not None:
        if not float(fps) > 0:
            raise VideoError(f"{folder}: fps must be > 0, got {fps}; fix the record's 'fps' field")
        return float(fps)
    lowered = str(folder).lower()
    for key, value in (("tvqa", 3.0), ("got-10k", 10.0), ("lasot", 30.0)):
        if key in lowered:
            return value
    return 1.0


def plan_folder(path: Path, n: int, fps: float, clip: tuple[float, float] | None, spec: SamplingSpec) -> Plan:
    """Indices of the reference ``read_frames_img`` (end points included with a clip; 1-fps quirk without)."""
    sample, local = spec.sample, spec.local_num_frames
    max_frames, min_frames = spec.max_num_frames, spec.min_num_frames
    if clip is not None:
        start = max(0.0, clip[0])
        end = min((n - 1) / fps, clip[1])
        if end < start:
            raise VideoError(
                f"{path}: clip.start ({clip[0]} s) is after the last frame ({(n - 1) / fps:.3f} s at {fps} fps); "
                "use a clip inside the video or fix the folder fps"
            )
        vlen: float = (end - start) * fps + 1
    else:
        vlen = n
    duration = (vlen - 1) / fps
    if min_frames > vlen:
        min_frames = math.ceil(vlen / local) * local if sample == "dynamic_fps1" else vlen
    if sample == "dynamic_fps1":
        num = local * math.ceil((duration + 1) / local)
        num = min(num, max_frames) if max_frames > 0 else num
        num = max(min_frames, num, 2)
    else:
        if spec.wanted is None:
            raise ValueError(f"sample={sample!r} needs num_frames (how many frames to pick)")
        num = max(min_frames, spec.wanted)
    num = int(num)
    if clip is None:
        # reference quirk kept: no input_fps, every folder is treated as 1 fps (docs/DEVIATIONS.md)
        indices = spec.indices(n, 1.0, num_frames=num, min_num_frames=int(min_frames))
        return Plan(indices, duration)
    num = max(num, 2)
    first, last = max(0, round(start * fps)), min(round(end * fps), n - 1)
    step = (last - first) / (num - 1)
    return Plan([first + int(round(step * k)) for k in range(num)], duration)
