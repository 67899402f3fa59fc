"""Helpers for the serve tests: a real uvicorn on a free local port, frames as JPEG/PNG, synthetic driving videos."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np


class LiveServer:
    """``with LiveServer(app) as url:`` runs uvicorn on 127.0.0.1 (a socket bound to a free port) in a thread."""

    def __init__(self, app: Any, ws_max_size: int = 16 * 1024 * 1024) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", ws_max_size=ws_max_size, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def encode(frame: np.ndarray, fmt: str = "PNG") -> bytes:
    """``uint8 [H,W,3]`` → PNG (lossless) or JPEG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width × height`` pixels (a decompression-bomb probe; nothing to decode)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def driving_frames(n: int, fps: int = 4, size: tuple[int, int] = (160, 120), seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of a synthetic driving scene (``streamforest.synthetic``) at ``fps``, ``size = (W, H)``."""
    from streamforest.synthetic.scenes import Scene, SceneConfig

    scene = Scene(SceneConfig(width=size[0], height=size[1], fps=fps, duration=max(n / fps, 4 / fps)), seed=seed)
    return [scene.render_frame(k) for k in range(n)]


def write_y4m(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """Raw 4:2:0 YUV4MPEG2 (what Chromium's ``--use-file-for-fake-video-capture`` reads)."""
    import av

    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            out.write(b"FRAME\n")
            for plane in yuv.planes:  # Y, U, V without line padding
                rows = np.frombuffer(bytes(plane), np.uint8).reshape(-1, plane.line_size)
                out.write(rows[:, : plane.width].tobytes())
    return path


def write_webm(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """VP8 WebM (plays in any Chromium build, proprietary codecs or not)."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libvpx", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "10", "b": "1M"}
        for k, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = k
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path
