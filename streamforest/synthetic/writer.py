"""Write synthetic frames to disk: mp4 (PyAV, H.264 or MPEG-4 Part 2, yuv420p) and PNG (Pillow).

The encoder is the first available of ``libx264``, ``h264``, ``libopenh264``, ``mpeg4`` in the installed PyAV
wheel. Encoding is single-threaded with fixed settings, so the same frames give the same bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CODEC_PREFERENCE: tuple[str, ...] = ("libx264", "h264", "libopenh264", "mpeg4")


@lru_cache(maxsize=1)
def pick_codec() -> str:
    """The first encoder of :data:`CODEC_PREFERENCE` that this PyAV build provides."""
    import av

    for name in CODEC_PREFERENCE:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for a missing encoder
            continue
        return name
    raise RuntimeError(
        f"writer: none of the encoders {CODEC_PREFERENCE} is available in PyAV {av.__version__}; "
        "install the PyPI wheel `av==15.1.0`, which bundles libx264 and mpeg4"
    )


def _codec_options(codec: str) -> dict[str, str]:
    if codec == "libx264":
        # Near-lossless so colours survive; no B-frames keeps decode order == display order.
        return {"crf": "16", "preset": "medium", "bf": "0", "threads": "1"}
    if codec == "mpeg4":
        return {"qscale": "2"}
    return {}


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int, *, codec: str | None = None) -> Path:
    """Encode RGB frames to an mp4 file.

    Args:
        path: output ``.mp4`` path (parent folders are created).
        frames: iterable of ``uint8 [H, W, 3]`` RGB arrays, all the same even size.
        fps: frame rate; frame ``k`` gets the timestamp ``k / fps`` seconds.
        codec: encoder name; default :func:`pick_codec`.

    Returns:
        The written path. Nothing is left behind if encoding fails (written to a temporary name first).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or pick_codec()
    tmp = path.with_name(path.name + ".part")
    n = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=Fraction(int(fps), 1), options=_codec_options(codec))
            stream.pix_fmt = "yuv420p"
            for frame in frames:
                _check_frame(frame, path, n)
                if n == 0:
                    stream.height, stream.width = int(frame.shape[0]), int(frame.shape[1])
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vf.pts = n
                container.mux(stream.encode(vf))
                n += 1
            if n == 0:
                raise ValueError(f"write_video({path}): no frames given; pass at least one [H, W, 3] uint8 frame")
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.debug("wrote %s (%d frames, %s)", path, n, codec)
    return path


def _check_frame(frame: np.ndarray, path: Path, index: int) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"write_video({path}): frame {index} must be a uint8 [H, W, 3] numpy array, got "
            f"{getattr(frame, 'dtype', type(frame))} {getattr(frame, 'shape', '')}"
        )
    if frame.shape[0] % 2 or frame.shape[1] % 2:
        raise ValueError(f"write_video({path}): yuv420p needs even width and height, got {frame.shape[:2]}")


def write_png(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Save one ``uint8 [H, W, 3]`` RGB frame as PNG (parent folders are created)."""
    from PIL import Image

    path = Path(path)
    if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
        raise ValueError(f"write_png({path}): expected a uint8 [H, W, 3] array, got {getattr(frame, 'shape', frame)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(frame)).save(path, format="PNG", optimize=False)
    return path


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Decode a whole (small) video with PyAV: ``(frames uint8 [T, H, W, 3], fps)``. For checks and tests."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise ValueError(f"read_video({path}): no decodable video frames; re-generate the file")
    return np.stack(frames), fps
