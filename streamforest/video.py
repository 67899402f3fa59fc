"""Video loading: the reference frame sampling (pure) and three decoding backends with one API.

* :func:`get_frame_indices` — the reference sampler (REFERENCE §6.1): ``dynamic_fps1`` (≈1 fps, mid-bin),
  ``middle``, ``rand``, ``fix_start``, ``fps<x>``; pure Python/numpy.
* :func:`load_video` — decode the sampled frames of a file (``decord`` or ``pyav``) or of a frame folder
  (``frames``) into a :class:`VideoClip` with **absolute** frame indices and timestamps (seconds from the
  start of the video), for whole videos and for clips ``(start, end)`` in seconds (REFERENCE §5.3, §6.2).
* :func:`iter_video_frames` — the same ≈1 fps mid-bin frames of a span, decoded one by one (online runtime).

All backends pick identical indices for the same file and arguments; PyAV decodes sequentially and keeps
only the wanted frames (never the whole video in memory). Differences from the reference readers are in
``docs/DEVIATIONS.md``.

    >>> clip = load_video("drive.mp4", clip=(0.0, 36.0))           # eval defaults: min 4, max 2048 frames
    >>> clip.frames.shape, clip.timestamps[0], clip.timestamps[-1]   # ((37, H, W, 3), 0.466…, 35.466…)
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "VideoClip",
    "clip_frame_indices",
    "VideoError",
    "folder_fps",
    "get_frame_indices",
    "iter_video_frames",
    "list_frame_files",
    "load_video",
]

BACKENDS = ("auto", "decord", "pyav", "frames", "gif")
"""Backend names of :func:`load_video` (aliases: ``av`` → pyav, ``img``/``frame`` → frames)."""
_ALIASES = {"av": "pyav", "img": "frames", "frame": "frames"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
END_MARGIN_S = 0.1
"""The decord reader clamps a clip end to ``duration − 0.1 s`` (REFERENCE §6.2)."""


class VideoError(ValueError):
    """A video that cannot be read as asked; the message names the file, the field and the fix."""


# ----------------------------------------------------------------------------------------------------------
# Pure sampling (REFERENCE §6.1)
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


# ----------------------------------------------------------------------------------------------------------
# Result type and argument checks
# ----------------------------------------------------------------------------------------------------------


@dataclass
class VideoClip:
    """Frames decoded from a video or a frame folder.

    Attributes:
        frames: ``uint8 [T, H, W, 3]`` RGB, one per entry of ``indices`` (repeated indices repeat frames).
        indices: absolute frame indices in the whole video (or in the folder's sorted frame list).
        fps: frame rate used to turn indices into seconds.
        duration: seconds covered: the clip duration when a clip was read, else the video's.
        timestamps: absolute seconds ``index / fps`` per frame.
        path: the file or folder read.
    """

    frames: np.ndarray
    indices: list[int]
    fps: float
    duration: float
    timestamps: list[float]
    path: str

    def __len__(self) -> int:
        return len(self.indices)


def _resolve_backend(path: Path, backend: str) -> str:
    name = _ALIASES.get(backend, backend)
    if name not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; use one of {BACKENDS} (or aliases {sorted(_ALIASES)})")
    if path.is_dir():
        if name not in ("auto", "frames"):
            raise VideoError(f"{path}: is a folder of frames; use backend='frames' (or 'auto'), not {backend!r}")
        return "frames"
    if name == "frames":
        raise VideoError(f"{path}: backend='frames' needs a folder of .jpg/.png frames; use 'auto' for a video file")
    suffix = path.suffix.lower()
    if name == "auto" and suffix == ".gif":
        return "gif"
    if name in ("auto", "decord") and suffix == ".avi":
        return "pyav"  # the reference delegates .avi files to PyAV
    if name == "auto":
        try:
            import decord  # noqa: F401
        except ImportError:
            return "pyav"
        return "decord"
    return name


def _check_clip(path: Path, clip: Sequence[float | None] | None) -> tuple[float, float] | None:
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


def _timestamps(indices: Sequence[int], fps: float) -> list[float]:
    return [int(i) / fps for i in indices]


# ----------------------------------------------------------------------------------------------------------
# Video files: the decord rule (REFERENCE §5.3, §6.2) and the two decoders
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    indices: list[int]
    duration: float


def _plan_file(
    path: Path, vlen: int, fps: float, clip: tuple[float, float] | None, sampler: dict[str, Any], rate: float = 1.0
) -> _Plan:
    """Indices for a video file of ``vlen`` frames at ``fps``: the reference decord reader's clip rule.

    ``rate`` rescales time for the sampler only (``dynamic_fps1`` then gives ≈``rate`` frames per second).
    """
    duration = vlen / fps
    offset = 0
    if clip is not None:
        start, end = max(0.0, clip[0]), clip[1]
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
    indices = get_frame_indices(vlen=vlen, input_fps=fps / rate if rate != 1.0 else fps, **sampler)
    return _Plan([i + offset for i in indices], duration)


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
    sampler = {"num_frames": max_num_frames, "sample": "dynamic_fps1", "fix_start": None,
               "min_num_frames": min_num_frames, "max_num_frames": max_num_frames,
               "local_num_frames": local_num_frames}  # fmt: skip
    plan = _plan_file(Path(source), num_frames, fps, clip, sampler)
    return plan.indices, plan.duration


def _open_decord(path: Path) -> Any:
    import decord

    try:
        return decord.VideoReader(str(path), num_threads=1)
    except Exception as e:  # noqa: BLE001 - decord raises its own error types for any bad input
        raise VideoError(f"{path}: decord cannot open this file ({e}); check that it is a complete, valid video") from e


def _probe_decord(path: Path) -> tuple[Any, int, float]:
    reader = _open_decord(path)
    vlen, fps = len(reader), float(reader.get_avg_fps())
    _check_probe(path, vlen, fps)
    return reader, vlen, fps


def _check_probe(path: Path, vlen: int, fps: float) -> None:
    if vlen < 1:
        raise VideoError(f"{path}: the video has no frames; re-encode or replace the file")
    if not fps > 0:
        raise VideoError(f"{path}: the video reports no frame rate; re-encode it with a constant frame rate")


def _probe_pyav(path: Path) -> tuple[int, float]:
    """``(vlen, fps)`` as decord computes them: ``nb_frames`` (else duration × fps) and the average rate."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: the file has no video stream; give a video file")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            vlen = int(stream.frames or 0)
            if vlen < 1 and container.duration and fps > 0:
                vlen = int(fps * container.duration / av.time_base)
            if vlen < 1:
                vlen = sum(1 for p in container.demux(stream) if p.size)
    except VideoError:
        raise
    except Exception as e:  # noqa: BLE001 - PyAV/FFmpeg raise many error types for broken files
        raise VideoError(f"{path}: PyAV cannot open this file ({e}); check that it is a complete, valid video") from e
    _check_probe(path, vlen, fps)
    return vlen, fps


def _iter_pyav(path: Path, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Decode sequentially; yield ``(index, rgb [H,W,3])`` for each distinct wanted index, in order."""
    import av

    wanted = sorted(set(indices))
    if not wanted:
        return
    pos = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for k, frame in enumerate(container.decode(stream)):
                if k == wanted[pos]:
                    yield k, frame.to_ndarray(format="rgb24")
                    pos += 1
                    if pos == len(wanted):
                        return
    except Exception as e:  # noqa: BLE001
        raise VideoError(f"{path}: decoding failed at frame {wanted[pos]} ({e}); the file may be truncated or corrupt") from e
    logger.warning("%s: only frames < %d could be decoded; reusing the last decoded frame", path, wanted[pos])


def _iter_decord(reader: Any, path: Path, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    for k in sorted(set(indices)):
        try:
            yield k, reader[k].asnumpy()
        except Exception as e:  # noqa: BLE001
            raise VideoError(f"{path}: decord failed to decode frame {k} ({e}); the file may be truncated") from e


def _decord_batch(reader: Any, path: Path, indices: Sequence[int]) -> np.ndarray:
    """``get_batch`` as the reference does (one call, then ``seek(0)``)."""
    try:
        frames = reader.get_batch(list(indices)).asnumpy()
        reader.seek(0)
        return frames
    except Exception as e:  # noqa: BLE001
        raise VideoError(f"{path}: decord failed to decode frames {list(indices)[:8]}… ({e}); the file may be truncated") from e


def _expand(decoded: Iterator[tuple[int, np.ndarray]], indices: Sequence[int], path: Path) -> Iterator[np.ndarray]:
    """One frame per planned index (planned indices are non-decreasing); missing tail → last frame."""
    last: tuple[int, np.ndarray] | None = None
    for idx in indices:
        while last is None or last[0] < idx:
            nxt = next(decoded, None)
            if nxt is None:
                break
            last = nxt
        if last is None:
            raise VideoError(f"{path}: no frame could be decoded; check that it is a valid video")
        yield last[1]


# ----------------------------------------------------------------------------------------------------------
# Frame folders (reference read_frames_img) and GIFs
# ----------------------------------------------------------------------------------------------------------


def _frame_number(name: str) -> int:
    """Sort key of a frame file: ``_(\\d+).ext`` when the name has an underscore, else its first number."""
    match = re.search(r"_(\d+)\.[A-Za-z]+$", name) if "_" in name else re.search(r"(\d+)", name)
    return int(match.group(1)) if match else -1


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The ``.jpg/.jpeg/.png`` files of ``folder`` in frame order (numeric, see :func:`_frame_number`)."""
    folder = Path(folder)
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
    return [folder / n for n in sorted(names, key=_frame_number)]


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


def _plan_folder(path: Path, n: int, fps: float, clip: tuple[float, float] | None, sampler: dict[str, Any]) -> _Plan:
    """Indices of the reference ``read_frames_img`` (end points included with a clip; 1-fps quirk without)."""
    sample, local = sampler["sample"], sampler["local_num_frames"]
    max_frames, min_frames = sampler["max_num_frames"], sampler["min_num_frames"]
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
        if sampler["num_frames"] is None:
            raise ValueError(f"sample={sample!r} needs num_frames (how many frames to pick)")
        num = max(min_frames, sampler["num_frames"])
    num = int(num)
    if clip is None:
        # reference quirk kept: no input_fps, every folder is treated as 1 fps (docs/DEVIATIONS.md)
        indices = get_frame_indices(vlen=n, input_fps=1.0, **{**sampler, "num_frames": num, "min_num_frames": int(min_frames)})
        return _Plan(indices, duration)
    num = max(num, 2)
    first, last = max(0, round(start * fps)), min(round(end * fps), n - 1)
    step = (last - first) / (num - 1)
    return _Plan([first + int(round(step * k)) for k in range(num)], duration)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as e:  # noqa: BLE001
        raise VideoError(f"{path}: cannot read this frame image ({e}); replace or delete the file") from e


def _iter_images(files: Sequence[Path], indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    for k in sorted(set(indices)):
        yield k, _read_image(files[k])


def _gif_frames(path: Path, indices: Sequence[int]) -> np.ndarray:
    from PIL import Image, ImageSequence

    wanted = set(indices)
    frames: dict[int, np.ndarray] = {}
    with Image.open(path) as img:
        for k, frame in enumerate(ImageSequence.Iterator(img)):
            if k in wanted:
                frames[k] = np.asarray(frame.convert("RGB"))
    h = min(f.shape[0] for f in frames.values())
    w = min(f.shape[1] for f in frames.values())
    return np.stack([frames[i][:h, :w] for i in indices])


def _gif_length(path: Path) -> int:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception as e:  # noqa: BLE001
        raise VideoError(f"{path}: cannot open this GIF ({e}); check that the file is complete") from e


# ----------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """A resolved input: the backend, the sampling plan, the fps, and an iterator factory for its frames."""

    backend: str
    plan: _Plan
    fps: float
    reader: Any = None
    files: tuple[Path, ...] = ()

    def decoded(self, path: Path) -> Iterator[tuple[int, np.ndarray]]:
        if self.backend == "decord":
            return _iter_decord(self.reader, path, self.plan.indices)
        if self.backend == "frames":
            return _iter_images(self.files, self.plan.indices)
        return _iter_pyav(path, self.plan.indices)


def _open_source(
    path: Path, backend: str, clip: tuple[float, float] | None, sampler: dict[str, Any], fps: float | None,
    rate: float = 1.0,
) -> _Source:
    if backend == "frames":
        files = list_frame_files(path)
        if not files:
            raise VideoError(f"{path}: the frame folder holds no .jpg/.jpeg/.png files; check the path")
        folder_rate = folder_fps(path, fps)
        plan = _plan_folder(path, len(files), folder_rate, clip, sampler)
        return _Source("frames", plan, folder_rate, files=tuple(files))
    if fps is not None:
        logger.debug("%s: fps=%s ignored (only frame folders take an fps; files report their own)", path, fps)
    if backend == "decord":
        reader, vlen, video_fps = _probe_decord(path)
        return _Source("decord", _plan_file(path, vlen, video_fps, clip, sampler, rate), video_fps, reader=reader)
    vlen, video_fps = _probe_pyav(path)
    return _Source("pyav", _plan_file(path, vlen, video_fps, clip, sampler, rate), video_fps)


def _load_gif(path: Path, clip: tuple[float, float] | None, sampler: dict[str, Any]) -> VideoClip:
    if clip is not None:
        raise VideoError(f"{path}: clips are not supported for GIFs (as in the reference); drop 'start'/'end'")
    vlen = _gif_length(path)
    indices = get_frame_indices(vlen=vlen, input_fps=1.0, **sampler)
    return VideoClip(_gif_frames(path, indices), indices, 1.0, float(vlen), _timestamps(indices, 1.0), str(path))


def load_video(
    path: str | os.PathLike,
    *,
    num_frames: int | None = None,
    sample: str = "dynamic_fps1",
    min_num_frames: int = 4,
    max_num_frames: int = 2048,
    clip: Sequence[float | None] | None = None,
    local_num_frames: int = 1,
    fps: float | None = None,
    backend: str = "auto",
    fix_start: int | None = None,
    rng: random.Random | np.random.Generator | None = None,
) -> VideoClip:
    """Decode the frames the reference would sample from a video file or a frame folder.

    Defaults are the evaluation settings (``dynamic_fps1``, min 4, max 2048, one frame per group).

    Args:
        path: video file, or a folder of ``.jpg/.jpeg/.png`` frames.
        num_frames: frames for ``middle``/``rand`` (default ``max_num_frames``); ignored by ``dynamic_fps1``.
        sample: see :func:`get_frame_indices`.
        min_num_frames, max_num_frames, local_num_frames, fix_start, rng: see :func:`get_frame_indices`.
        clip: ``(start, end)`` seconds (absolute); ``end=None`` means the end of the video. Files follow
            the decord rule (end clamped to duration − 0.1 s, mid-bin sampling); folders the reference
            ``read_frames_img`` rule (both end points included).
        fps: frame rate of a frame folder (default: path heuristics, else 1); ignored for files.
        backend: ``auto`` (folder → frames, ``.gif`` → gif, ``.avi`` → pyav, else decord when importable,
            else pyav), ``decord``, ``pyav``/``av``, ``frames``/``img``, ``gif``.

    Returns:
        A :class:`VideoClip` with absolute indices and timestamps.

    Raises:
        VideoError: missing/unreadable/empty input, ``clip.start >= clip.end``, a clip starting at or after
            the end of the video.
    """
    path = Path(os.fspath(path))
    if not path.exists():
        raise VideoError(f"{path}: no such video file or frame folder; check the path (and the data/video root)")
    clip_s = _check_clip(path, clip)
    sampler = {
        "num_frames": num_frames if num_frames is not None else (max_num_frames if max_num_frames > 0 else None),
        "sample": sample,
        "fix_start": fix_start,
        "min_num_frames": min_num_frames,
        "max_num_frames": max_num_frames,
        "local_num_frames": local_num_frames,
        "rng": rng,
    }
    resolved = _resolve_backend(path, backend)
    if resolved == "gif":
        return _load_gif(path, clip_s, sampler)
    source = _open_source(path, resolved, clip_s, sampler, fps)
    indices = source.plan.indices
    if source.backend == "decord":
        frames = _decord_batch(source.reader, path, indices)
    else:
        frames = np.stack(list(_expand(source.decoded(path), indices, path)))
    logger.debug("%s: %d frames via %s, indices %s…", path, len(indices), source.backend, indices[:4])
    return VideoClip(frames, indices, source.fps, source.plan.duration, _timestamps(indices, source.fps), str(path))


def iter_video_frames(
    path: str | os.PathLike,
    sample_fps: float = 1.0,
    start: float = 0.0,
    end: float | None = None,
    backend: str = "auto",
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(timestamp_s, rgb uint8 [H, W, 3])`` for the ≈``sample_fps`` mid-bin frames of ``[start, end]``.

    The frames are those of ``load_video(path, clip=(start, end), sample="dynamic_fps1", min_num_frames=1,
    max_num_frames=-1)`` (with ``start=0, end=None``: the whole video, no clip), decoded one at a time in
    order, never the whole video in memory. With ``sample_fps=1`` this equals ``load_video``'s eval
    defaults except where those bounds act: spans shorter than 3 s (``min_num_frames=4`` adds frames) and
    spans of 2048 s or more (the 2048-frame cap spreads frames more thinly). Other rates scale the
    reference rule (⌊duration·rate + 1⌋ frames). Frame folders follow their own reference rule (clip end
    points included; without a clip every frame plus the last one again) and support only ``sample_fps=1``.

    Arguments are checked (and the file opened) when the function is called, not at the first frame.
    """
    if not sample_fps > 0:
        raise ValueError(f"sample_fps must be > 0, got {sample_fps}")
    path = Path(os.fspath(path))
    if not path.exists():
        raise VideoError(f"{path}: no such video file or frame folder; check the path")
    clip = None if (start == 0 and end is None) else _check_clip(path, (start, end))
    resolved = _resolve_backend(path, backend)
    if resolved == "gif":
        raise VideoError(f"{path}: GIFs cannot be streamed; convert it to a video file")
    if resolved == "frames" and sample_fps != 1.0:
        raise VideoError(f"{path}: frame folders support only sample_fps=1 (the reference rule); got {sample_fps}")
    sampler = {"num_frames": None, "sample": "dynamic_fps1", "fix_start": None, "min_num_frames": 1,
               "max_num_frames": -1, "local_num_frames": 1, "rng": None}  # fmt: skip
    source = _open_source(path, resolved, clip, sampler, None, rate=float(sample_fps))
    return _stream(source, path)


def _stream(source: _Source, path: Path) -> Iterator[tuple[float, np.ndarray]]:
    indices = source.plan.indices
    for idx, frame in zip(indices, _expand(source.decoded(path), indices, path)):
        yield idx / source.fps, frame
