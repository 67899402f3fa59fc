"""SigLIP image processor of the reference (REFERENCE §1.3): bicubic squash to S×S, [0,255] → [-1,1], CHW.

Pixel values are bit-identical to the reference processor: rescale in float64, cast to float32, normalise in
float32 (a per-level lookup table computed with exactly those ops).

The reference resized numpy uint8 frames through PIL (transformers' ``resize`` converts to a PIL image),
so we resize with ``PIL.Image.resize(BICUBIC)`` on uint8 too — torch's bicubic interpolation gives
different values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["SigLipImageProcessor"]


class SigLipImageProcessor:
    """Turn images or frames into ``pixel_values [T,3,S,S]`` float32 in [-1, 1].

    Accepts a PIL image, a numpy ``[H,W,3]`` uint8 image, a numpy/torch ``[T,H,W,3]`` uint8 frame stack,
    or a list of those. No aspect-ratio preservation and no crop (``image_aspect_ratio="square"``).
    """

    def __init__(
        self,
        size: int = 384,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        self.size = int(size)
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)
        self.crop_size = {"height": self.size, "width": self.size}
        self.rescale_factor = 1.0 / 255.0

    def __repr__(self) -> str:
        return f"SigLipImageProcessor(size={self.size}, mean={self.image_mean}, std={self.image_std})"

    def __call__(self, images: Any, return_tensors: str | None = "pt") -> dict[str, Tensor]:
        return self.preprocess(images, return_tensors=return_tensors)

    def preprocess(self, images: Any, return_tensors: str | None = "pt") -> dict[str, Tensor]:
        """Return ``{"pixel_values": Tensor[T,3,S,S]}`` (float32; the caller casts to the model dtype)."""
        arrays = self._to_uint8_list(images)
        if not arrays:
            raise ValueError("image processor got no images (an empty list or a stack of 0 frames)")
        resized = np.stack([self._resize(a) for a in arrays])  # [T,S,S,3] uint8
        table = self._value_table()
        pixels = np.empty((resized.shape[0], 3, self.size, self.size), dtype=np.float32)
        for c in range(3):
            pixels[:, c] = table[c][resized[..., c]]
        return {"pixel_values": torch.from_numpy(pixels)}

    def _value_table(self) -> np.ndarray:
        """``[3, 256]`` float32: the normalised value of every uint8 level, per channel.

        The reference's ops exactly (REFERENCE §1.3, transformers' ``rescale`` then ``normalize``): the
        uint8 value times ``rescale_factor`` in float64, cast to float32, then ``(x - mean) / std`` in float32.
        Multiplying in float32 instead differs by 1 ULP on some levels.
        """
        levels = (np.arange(256, dtype=np.float64) * self.rescale_factor).astype(np.float32)
        mean = np.asarray(self.image_mean, dtype=np.float32)[:, None]
        std = np.asarray(self.image_std, dtype=np.float32)[:, None]
        return (levels[None, :] - mean) / std

    def _resize(self, array: np.ndarray) -> np.ndarray:
        """Bicubic (PIL) resize of one ``[H,W,3]`` uint8 image to ``[S,S,3]``."""
        if array.shape[:2] == (self.size, self.size):
            return array
        image = Image.fromarray(np.ascontiguousarray(array)).resize(
            (self.size, self.size), Image.Resampling.BICUBIC
        )
        return np.asarray(image)

    def _to_uint8_list(self, images: Any) -> list[np.ndarray]:
        """Normalise the accepted inputs to a list of ``[H,W,3]`` uint8 arrays."""
        if isinstance(images, Image.Image):
            return [np.asarray(images.convert("RGB"))]
        if isinstance(images, Tensor):
            images = images.detach().cpu().numpy()
        if isinstance(images, np.ndarray):
            return self._split_array(images)
        if isinstance(images, (list, tuple)):
            out: list[np.ndarray] = []
            for item in images:
                out.extend(self._to_uint8_list(item))
            return out
        raise TypeError(
            f"image processor accepts PIL images, numpy/torch uint8 arrays [H,W,3] or [T,H,W,3] or lists of them; "
            f"got {type(images).__name__}"
        )

    @staticmethod
    def _split_array(array: np.ndarray) -> list[np.ndarray]:
        if array.dtype != np.uint8:
            raise TypeError(
                f"image processor expects uint8 pixel arrays (0..255), got dtype {array.dtype}; "
                "convert with (x * 255).round().astype(np.uint8) if your frames are floats in [0, 1]"
            )
        if array.ndim == 3 and array.shape[-1] == 3:
            return [array]
        if array.ndim == 4 and array.shape[-1] == 3:
            return list(array)
        raise ValueError(f"image processor expects [H,W,3] or [T,H,W,3] RGB arrays, got shape {array.shape}")
