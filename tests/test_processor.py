"""SigLIP image processor pixels are bit-identical to the reference processor (issue 10 §4, REFERENCE §1.3)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from streamforest.model.processor import SigLipImageProcessor

SIZE = 384


def _frames() -> list[np.ndarray]:
    """A few frames: two that need resizing (every uint8 level present) and one already 384×384."""
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        np.tile(np.arange(256, dtype=np.uint8)[:, None, None], (1, 40, 3)),
        rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
    ]


def _resized(frame: np.ndarray) -> np.ndarray:
    if frame.shape[:2] == (SIZE, SIZE):
        return frame
    return np.asarray(Image.fromarray(frame).resize((SIZE, SIZE), Image.Resampling.BICUBIC))


def _golden(frame: np.ndarray) -> np.ndarray:
    """Reference ops: bicubic resize (PIL, uint8) → ``x * (1/255)`` in float64 → float32 →
    ``(x - 0.5) / 0.5`` in float32 → channels first."""
    rescaled = (_resized(frame).astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    std = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    return ((rescaled - mean) / std).transpose(2, 0, 1)


def test_pixels_bit_identical_to_reference() -> None:
    frames = _frames()
    golden = torch.from_numpy(np.stack([_golden(f) for f in frames]))
    pixels = SigLipImageProcessor(size=SIZE).preprocess(frames)["pixel_values"]
    assert pixels.dtype == torch.float32 and pixels.shape == (3, 3, SIZE, SIZE)
    assert torch.equal(pixels, golden)  # bit equality, not allclose
    for frame in frames:  # frame by frame and as a stack give the same values
        assert torch.equal(
            SigLipImageProcessor(size=SIZE)(frame)["pixel_values"][0], torch.from_numpy(_golden(frame))
        )


def test_float32_rescale_differs_from_reference() -> None:
    """Multiplying by 1/255 in float32 (the previous implementation) is off by 1 ULP on some pixels."""
    frames = _frames()
    golden = torch.from_numpy(np.stack([_golden(f) for f in frames]))
    resized = torch.from_numpy(np.stack([_resized(f) for f in frames])).permute(0, 3, 1, 2)
    float32_path = (resized.float() * (1 / 255) - 0.5) / 0.5
    assert torch.allclose(float32_path, golden, atol=3e-7, rtol=0)  # 1 ULP
    assert not torch.equal(float32_path, golden)
    assert int((float32_path != golden).sum()) > 0


def test_custom_mean_std_follow_reference_ops() -> None:
    frame = _frames()[1]
    proc = SigLipImageProcessor(
        size=SIZE,
        image_mean=(0.48145466, 0.4578275, 0.40821073),
        image_std=(0.26862954, 0.26130258, 0.27577711),
    )
    rescaled = (_resized(frame).astype(np.float64) * (1 / 255)).astype(np.float32)
    golden = (rescaled - np.array(proc.image_mean, dtype=np.float32)) / np.array(
        proc.image_std, dtype=np.float32
    )
    assert torch.equal(proc(frame)["pixel_values"][0], torch.from_numpy(golden.transpose(2, 0, 1)))
