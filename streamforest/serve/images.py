"""Frame bodies → RGB arrays, with the byte and pixel caps checked before any pixel is decoded."""

from __future__ import annotations

import io
import warnings

import numpy as np

__all__ = ["FORMATS", "FrameError", "decode_frame"]

FORMATS = ("JPEG", "PNG")
"""Accepted encodings (what a browser canvas or ``cv2.imencode`` produces)."""


class FrameError(ValueError):
    """A frame the server refuses: ``status`` is the HTTP status, the message names the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_frame(body: bytes, *, max_bytes: int, max_pixels: int, field: str = "body") -> np.ndarray:
    """Decode a JPEG or PNG frame to ``uint8 [H, W, 3]`` RGB.

    The size in pixels is read from the image header and checked against ``max_pixels`` before decoding,
    so a decompression bomb (a small file that expands to gigabytes) costs nothing; Pillow's own
    ``DecompressionBombError`` is mapped to the same answer.

    Raises:
        FrameError: 413 (too many bytes or pixels), 415 (not a JPEG/PNG image), 422 (empty or corrupt).
    """
    from PIL import Image, UnidentifiedImageError

    if not body:
        raise FrameError(422, f"{field}: empty; send one JPEG or PNG image as the request body")
    if len(body) > max_bytes:
        raise FrameError(413, f"{field}: {len(body)} bytes is over the frame limit of {max_bytes} bytes "
                              "(--max-frame-bytes); send a smaller JPEG (lower quality or resolution)")  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(body))
            image.size  # noqa: B018 - the header is parsed by open(); size is all we read before the check
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FrameError(413, f"{field}: image too large to decode ({e}); the limit is {max_pixels} pixels "
                              "(--max-frame-pixels); resize the frame before sending it") from None  # fmt: skip
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise FrameError(415, f"{field}: not a JPEG or PNG image ({len(body)} bytes starting {body[:8]!r}); "
                              "send image/jpeg or image/png bytes") from None  # fmt: skip
    if image.format not in FORMATS:
        raise FrameError(415, f"{field}: {image.format} image; send JPEG or PNG")
    width, height = image.size
    if width * height > max_pixels:
        raise FrameError(413, f"{field}: {width}x{height} = {width * height} pixels is over the limit of "
                              f"{max_pixels} (--max-frame-pixels); resize the frame before sending it")  # fmt: skip
    if width < 1 or height < 1:
        raise FrameError(422, f"{field}: empty {width}x{height} image")
    try:
        return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise FrameError(422, f"{field}: corrupt {image.format} image ({e}); send a complete image") from None
