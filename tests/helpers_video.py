"""Synthetic videos whose frames encode their own index, for exact frame-sampling tests.

Frame ``k`` is a ``H × (8·BITS)`` image made of ``BITS`` vertical stripes 8 px wide; stripe ``b`` is bright
(230) when bit ``b`` of ``k`` is set and dark (25) otherwise. :func:`decode_index` reads the index back from
a decoded (lossy) frame by thresholding each stripe's mean, so a test can check exactly which frames a
reader returned.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

BITS = 12
"""Bits per frame index (up to 4095 frames)."""
STRIPE = 8
HEIGHT = 16
WIDTH = BITS * STRIPE


def index_frame(k: int, height: int = HEIGHT) -> np.ndarray:
    """The RGB ``uint8 [height, 96, 3]`` frame that encodes index ``k`` (0 ≤ k < 2**BITS)."""
    if not 0 <= k < 2**BITS:
        raise ValueError(f"frame index {k} does not fit in {BITS} bits")
    frame = np.full((height, WIDTH, 3), 25, dtype=np.uint8)
    for b in range(BITS):
        if (k >> b) & 1:
            frame[:, b * STRIPE : (b + 1) * STRIPE] = 230
    return frame


def decode_index(frame: np.ndarray) -> int:
    """Read back the index encoded by :func:`index_frame` from an RGB frame ``[H, W, 3]`` (any W ≥ 96)."""
    k = 0
    for b in range(BITS):
        # centre of the stripe, away from chroma-subsampling bleed at the edges
        if frame[:, b * STRIPE + 2 : (b + 1) * STRIPE - 2].mean() > 127:
            k |= 1 << b
    return k


def _pick_codec() -> str:
    import av

    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - codec not built into this PyAV
            continue
    raise RuntimeError("PyAV has neither libx264 nor mpeg4 encoders")


def write_index_video(path: str | os.PathLike, num_frames: int, fps: int = 10, *, container_format: str | None = None) -> Path:
    """Write ``num_frames`` frames (frame k encodes k) at ``fps`` with PyAV; returns the path.

    Constant frame rate, no B-frames, near-lossless, so decode order = display order = index.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = _pick_codec()
    options = {"crf": "10", "bf": "0", "g": "12"} if codec == "libx264" else {"qscale": "2", "bf": "0", "g": "12"}
    with av.open(str(path), mode="w", format=container_format) as out:
        stream = out.add_stream(codec, rate=Fraction(int(fps), 1), options=options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for k in range(num_frames):
            vf = av.VideoFrame.from_ndarray(index_frame(k), format="rgb24")
            vf.pts = k
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path


def write_frame_folder(folder: str | os.PathLike, num_frames: int, *, ext: str = "png", pattern: str = "frame_{:05d}") -> Path:
    """Write ``num_frames`` image files ``frame_00000.png`` … (frame k encodes k); returns the folder.

    Files are written in reverse order so that directory-listing order cannot pass for numeric sorting.
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k in reversed(range(num_frames)):
        Image.fromarray(index_frame(k)).save(folder / f"{pattern.format(k)}.{ext}", quality=98)
    return folder
