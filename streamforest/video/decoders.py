"""Video decoding: decord, PyAV, frame folders and GIFs behind one API, reading the frames a sampling plan names.

* :func:`load_video` — decode the sampled frames of a file or a frame folder into a :class:`VideoClip` with
  **absolute** frame indices and timestamps (seconds from the start of the video), for whole videos and for
  clips ``(start, end)`` in seconds (REFERENCE §5.3, §6.2).
* :func:`iter_video_frames` — the same ≈1 fps mid-bin frames of a span, decoded one by one (online runtime).
* :data:`READ_TYPES` / :func:`backend_for` — the one table from a ``video_read_type`` (data lists, eval docs,
  legacy readers) to a backend. ``decord`` means "a video file": decord when it is installed and can open the
  file, else PyAV (logged), the same for training and evaluation.

Which frames are read is decided by :mod:`streamforest.video.sampling` (pure); all backends pick identical
indices for the same file and arguments. PyAV decodes sequentially and keeps only the wanted frames (never the
whole video in memory). Differences from the reference readers are in ``docs/DEVIATIONS.md``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamforest.video.sampling import (
    EVAL_SAMPLING,
    STREAM_SAMPLING,
    Plan,
    SamplingSpec,
    VideoError,
    check_clip,
    folder_fps,
    plan_file,
    plan_folder,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "READ_TYPES",
    "VideoClip",
    "backend_for",
    "iter_video_frames",
    "list_frame_files",
    "load_video",
    "read_video",
]

BACKENDS = ("auto", "decord", "pyav", "frames", "gif")
"""Backend names of :func:`load_video`; ``auto``: folder → frames, ``.gif`` → gif, ``.avi`` → pyav, else decord
when installed and able to open the file, else pyav (logged)."""
READ_TYPES: dict[str | None, str] = {
    None: "auto",
    "auto": "auto",
    "decord": "auto",
    "av": "pyav",
    "pyav": "pyav",
    "img": "frames",
    "frame": "frames",
    "frames": "frames",
    "gif": "gif",
}
"""``video_read_type`` (data lists, eval docs, ``llava.video_utils``) → backend. The one alias table:
``decord`` is the reference's name for "a video file" and resolves like ``auto`` (PyAV fallback, logged)."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def backend_for(read_type: str | None) -> str:
    """The backend of a ``video_read_type`` (:data:`READ_TYPES`); an unknown name is a ``ValueError`` naming it."""
    if read_type not in READ_TYPES:
        known = sorted(k for k in READ_TYPES if k)
        raise ValueError(f"video_read_type {read_type!r} is not one of {known}; fix the data list / doc field")
    return READ_TYPES[read_type]


# ----------------------------------------------------------------------------------------------------------
# Result type and backend choice
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


def _decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_backend(path: Path, backend: str) -> str:
    name = READ_TYPES.get(backend, backend) if backend != "decord" else "decord"
    if name not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; use one of {BACKENDS} (or read types {sorted(k for k in READ_TYPES if k)})")
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
        if not _decord_available():
            logger.info("decord is not installed: reading video files with PyAV")
            return "pyav"
        return "auto-decord"
    return name


def _timestamps(indices: Sequence[int], fps: float) -> list[float]:
    return [int(i) / fps for i in indices]


# ----------------------------------------------------------------------------------------------------------
# Video files: decord and PyAV
# ----------------------------------------------------------------------------------------------------------


def _open_decord(path: Path) -> Any:
    import decord

    try:
        return decord.VideoReader(str(path), num_threads=1)
    except Exception as e:  # noqa: BLE001 - decord raises its own error types for any bad input
        raise VideoError(f"{path}: decord cannot open this file ({e}); check that it is a complete, valid video") from e


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
    plan: Plan
    fps: float
    reader: Any = None
    files: tuple[Path, ...] = ()

    def decoded(self, path: Path) -> Iterator[tuple[int, np.ndarray]]:
        if self.backend == "decord":
            return _iter_decord(self.reader, path, self.plan.indices)
        if self.backend == "frames":
            return _iter_images(self.files, self.plan.indices)
        return _iter_pyav(path, self.plan.indices)


def _open_decord_or_pyav(path: Path, backend: str) -> tuple[Any, int, float]:
    """``(decord reader or None, vlen, fps)``; ``auto-decord`` falls back to PyAV when decord cannot open the file."""
    if backend == "pyav":
        return (None, *_probe_pyav(path))
    try:
        reader = _open_decord(path)
    except VideoError as e:
        if backend != "auto-decord":
            raise
        logger.warning("%s: decord cannot open this file (%s); reading it with PyAV instead", path, e.__cause__ or e)
        return (None, *_probe_pyav(path))
    vlen, fps = len(reader), float(reader.get_avg_fps())
    _check_probe(path, vlen, fps)
    channels = reader[0].shape[-1]  # decord misreads very narrow videos (<= 24 px wide: 4, 6, 12 … "channels")
    reader.seek(0)
    if channels != 3:
        if backend != "auto-decord":
            raise VideoError(f"{path}: decord misreads this video (frame 0 has {channels} channels; it happens for "
                             "videos <= 24 px wide); use backend='pyav' or 'auto'")  # fmt: skip
        logger.warning("%s: decord misreads this video (frame 0 has %d channels, as for videos <= 24 px wide); "
                       "reading it with PyAV instead", path, channels)  # fmt: skip
        return (None, *_probe_pyav(path))
    return reader, vlen, fps


def _open_source(
    path: Path, backend: str, clip: tuple[float, float] | None, spec: SamplingSpec, fps: float | None,
    rate: float = 1.0,
) -> _Source:
    if backend == "frames":
        files = list_frame_files(path)
        if not files:
            raise VideoError(f"{path}: the frame folder holds no .jpg/.jpeg/.png files; check the path")
        folder_rate = folder_fps(path, fps)
        plan = plan_folder(path, len(files), folder_rate, clip, spec)
        return _Source("frames", plan, folder_rate, files=tuple(files))
    if fps is not None:
        logger.debug("%s: fps=%s ignored (only frame folders take an fps; files report their own)", path, fps)
    reader, vlen, video_fps = _open_decord_or_pyav(path, backend)
    plan = plan_file(path, vlen, video_fps, clip, spec, rate)
    return _Source("pyav" if reader is None else "decord", plan, video_fps, reader=reader)


def _load_gif(path: Path, clip: tuple[float, float] | None, spec: SamplingSpec) -> VideoClip:
    if clip is not None:
        raise VideoError(f"{path}: clips are not supported for GIFs (as in the reference); drop 'start'/'end'")
    vlen = _gif_length(path)
    indices = spec.indices(vlen, 1.0)
    return VideoClip(_gif_frames(path, indices), indices, 1.0, float(vlen), _timestamps(indices, 1.0), str(path))


def load_video(
    path: str | os.PathLike,
    *,
    num_frames: int | None = None,
    sample: str = EVAL_SAMPLING.sample,
    min_num_frames: int = EVAL_SAMPLING.min_num_frames,
    max_num_frames: int = EVAL_SAMPLING.max_num_frames,
    clip: Sequence[float | None] | None = None,
    local_num_frames: int = EVAL_SAMPLING.local_num_frames,
    fps: float | None = None,
    backend: str = "auto",
    fix_start: int | None = None,
    rng: random.Random | np.random.Generator | None = None,
) -> VideoClip:
    """Decode the frames the reference would sample from a video file or a frame folder.

    Defaults are the evaluation preset :data:`~streamforest.video.sampling.EVAL_SAMPLING` (``dynamic_fps1``,
    min 4, max 2048, one frame per group).

    Args:
        path: video file, or a folder of ``.jpg/.jpeg/.png`` frames.
        num_frames, sample, min_num_frames, max_num_frames, local_num_frames, fix_start, rng: the
            :class:`~streamforest.video.sampling.SamplingSpec` fields (see :func:`get_frame_indices`).
        clip: ``(start, end)`` seconds (absolute); ``end=None`` means the end of the video. Files follow
            the decord rule (end clamped to duration − 0.1 s, mid-bin sampling); folders the reference
            ``read_frames_img`` rule (both end points included).
        fps: frame rate of a frame folder (default: path heuristics, else 1); ignored for files.
        backend: a name of :data:`BACKENDS` (``decord`` strict: no fallback) or a ``video_read_type`` of
            :data:`READ_TYPES` (``av``, ``img``, ``frame``).

    Returns:
        A :class:`VideoClip` with absolute indices and timestamps.

    Raises:
        VideoError: missing/unreadable/empty input, ``clip.start >= clip.end``, a clip starting at or after
            the end of the video.
    """
    spec = SamplingSpec(sample, num_frames, min_num_frames, max_num_frames, local_num_frames, fix_start, rng)
    return read_video(path, spec, clip=clip, fps=fps, backend=backend)


def read_video(
    path: str | os.PathLike,
    spec: SamplingSpec = EVAL_SAMPLING,
    *,
    clip: Sequence[float | None] | None = None,
    fps: float | None = None,
    backend: str = "auto",
) -> VideoClip:
    """:func:`load_video` with the sampling given as a :class:`~streamforest.video.sampling.SamplingSpec`."""
    path = Path(os.fspath(path))
    if not path.exists():
        raise VideoError(f"{path}: no such video file or frame folder; check the path (and the data/video root)")
    clip_s = check_clip(path, clip)
    resolved = _resolve_backend(path, backend)
    if resolved == "gif":
        return _load_gif(path, clip_s, spec)
    source = _open_source(path, resolved, clip_s, spec, fps)
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
    max_num_frames=-1)`` (:data:`~streamforest.video.sampling.STREAM_SAMPLING`; with ``start=0, end=None``:
    the whole video, no clip), decoded one at a time in order, never the whole video in memory. With
    ``sample_fps=1`` this equals ``load_video``'s eval defaults except where those bounds act: spans shorter
    than 3 s (``min_num_frames=4`` adds frames) and spans of 2048 s or more (the 2048-frame cap spreads frames
    more thinly). Other rates scale the reference rule (⌊duration·rate + 1⌋ frames). Frame folders follow
    their own reference rule (clip end points included; without a clip every frame plus the last one again)
    and support only ``sample_fps=1``.

    Arguments are checked (and the file opened) when the function is called, not at the first frame.
    """
    if not sample_fps > 0:
        raise ValueError(f"sample_fps must be > 0, got {sample_fps}")
    path = Path(os.fspath(path))
    if not path.exists():
        raise VideoError(f"{path}: no such video file or frame folder; check the path")
    clip = None if (start == 0 and end is None) else check_clip(path, (start, end))
    resolved = _resolve_backend(path, backend)
    if resolved == "gif":
        raise VideoError(f"{path}: GIFs cannot be streamed; convert it to a video file")
    if resolved == "frames" and sample_fps != 1.0:
        raise VideoError(f"{path}: frame folders support only sample_fps=1 (the reference rule); got {sample_fps}")
    source = _open_source(path, resolved, clip, STREAM_SAMPLING, None, rate=float(sample_fps))
    return _stream(source, path)


def _stream(source: _Source, path: Path) -> Iterator[tuple[float, np.ndarray]]:
    indices = source.plan.indices
    for idx, frame in zip(indices, _expand(source.decoded(path), indices, path)):
        yield idx / source.fps, frame
