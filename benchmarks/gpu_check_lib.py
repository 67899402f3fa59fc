"""Shared pieces of ``benchmarks/gpu_check.py``: sizes, the model built at random init on the device, the
frame-intake adapter, synthetic inputs and timing helpers (not a test; see gpu_check.py)."""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

MODES = {"exact": "deferred", "bounded": "eager"}
"""Session mode → memory consolidation policy (as ``streamforest.streaming``)."""


@dataclass(frozen=True)
class Scale:
    """Workload sizes of one run (``FULL`` on a GPU, ``TINY`` for the CPU smoke run of the same code)."""

    name: str
    intake_frames: int  # frames timed one by one (after `warmup` frames)
    frame_hw: tuple[int, int]  # camera frame size fed to the image processor
    vit_batches: tuple[int, ...]
    timing_reps: int
    stream_minutes: tuple[float, ...]  # sessions questioned after these many minutes (1 fps)
    hour_minutes: float  # the long bounded stream
    decode_tokens: int
    text_prefix: int  # prompt tokens before the visual tokens (system turn, time message)
    text_suffix: int  # prompt tokens after them (question, template)
    numerics_frames: int
    numerics_prompt: int  # visual tokens in the first-token-logit comparison
    train_frames: int  # frames per stage-4 training sample (≈ 8K visual tokens at full size)
    train_answer: int
    warmup: int = 5
    stream_batch: int = 128


FULL = Scale("full", 300, (720, 1280), (32, 128), 5, (5, 30), 60, 32, 48, 40, 8, 1024, 160, 64)
TINY = Scale("tiny", 40, (64, 64), (4, 8), 2, (0.5, 1.5), 2, 4, 12, 10, 4, 64, 16, 8, warmup=2, stream_batch=16)


@dataclass
class Ctx:
    """What every section gets: the model, sizes, the device and where results go."""

    scale: Scale
    device: torch.device
    dtype: torch.dtype
    tiny: bool
    notes: list[str] = field(default_factory=list)
    _built: tuple[Any, Any] | None = None
    build_s: float = 0.0
    deadline: float = math.inf
    """``time.perf_counter()`` by which the running section should finish (streams stop early at it)."""

    @property
    def model(self) -> Any:
        """The inference model (built on first use: random init on the device)."""
        if self._built is None:
            t0 = time.perf_counter()
            self._built = build_model(self.device, self.dtype, self.tiny)
            self.sync()
            self.build_s += time.perf_counter() - t0
        return self._built[0]

    @property
    def processor(self) -> Any:
        self.model  # noqa: B018 - builds the model and its processor on first use
        assert self._built is not None
        return self._built[1]

    def release_model(self) -> None:
        """Drop the inference model (training sections build their own)."""
        self._built = None
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        """``torch.cuda.max_memory_allocated`` since the last :meth:`reset_peak` (None on CPU: n/a)."""
        if not self.cuda:
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**30

    def timed(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """Seconds ``fn()`` takes, the device synchronised before and after; and its result."""
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t0, out


# ----------------------------------------------------------------------------------------------------------
# The model at random init, built on the device in the target dtype (never materialised on the CPU)
# ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def model_config(tiny: bool, attn: str = "sdpa") -> Any:
    """The project's own config: ``streamforest.tiny.real_config`` (real sizes) or ``tiny_config``."""
    from streamforest.tiny import real_config, tiny_config

    config = tiny_config("tome729_fstw_pemf") if tiny else real_config()
    config._attn_implementation = attn
    return config


def build_model(device: torch.device, dtype: torch.dtype, tiny: bool, seed: int = 0) -> tuple[Any, Any]:
    """``LlavaQwenForCausalLM`` at random init directly on ``device``, and its image processor.

    Built in bf16 (so every weight is a bf16 value and :func:`cast` round trips are lossless), then cast to
    ``dtype`` if that differs (the CPU smoke run computes in fp32: bf16 CPU kernels are slow)."""
    from streamforest.model.llava_qwen import LlavaQwenForCausalLM
    from streamforest.model.processor import SigLipImageProcessor

    config = model_config(tiny)
    torch.manual_seed(seed)
    with torch.device(device), default_dtype(torch.bfloat16):
        model = LlavaQwenForCausalLM(config)
    if dtype != torch.bfloat16:
        model.to(dtype)
    model.eval().requires_grad_(False)
    return model, SigLipImageProcessor(size=model.get_vision_tower().image_size)


def build_tower(model: Any, attn: str) -> Any:
    """A copy of the model's vision tower with another attention implementation (same weights)."""
    from streamforest.model.vision import SigLipVisionTower

    tower = model.get_vision_tower()
    with torch.device(tower.device), default_dtype(tower.dtype):
        other = SigLipVisionTower(model.config.vision_settings(), attn)
    other.load_state_dict(tower.state_dict())
    return other.eval()


@contextlib.contextmanager
def cast(model: Any, dtype: torch.dtype) -> Iterator[None]:
    """Run ``model`` in ``dtype`` inside the block, then restore it exactly: parameters are cast back (lossless:
    their values are bf16 values, see :func:`build_model`), buffers (RoPE frequencies …) are put back as saved."""
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.to(dtype)
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            if p.dtype != dtypes[name]:
                p.data = p.data.to(dtypes[name])
        for name, b in model.named_buffers():
            b.data = buffers[name]


# ----------------------------------------------------------------------------------------------------------
# THE frame-intake / read-out adapter: the only place that calls the model's vision + memory API
# (retarget it when the streaming session core changes; everything else goes through it).
# ----------------------------------------------------------------------------------------------------------


class StreamAdapter:
    """ViT → position embedding (temporal index = stream frame) → memory update; memory read-out → MLP.

    The same calls as ``StreamingSession._encode`` / ``visual_features`` today.
    """

    def __init__(self, model: Any, mode: str = "exact", memory_config: Any = None) -> None:
        from streamforest.memory import EventMemory, MemoryConfig

        self.model, self.projector = model, model.get_projector()
        if memory_config is None:
            self.memory = self.projector.new_memory(consolidation=MODES[mode])
        else:
            self.memory = EventMemory(MemoryConfig(**{**memory_config.to_dict(), "consolidation": MODES[mode]}))
        self.frames = 0

    def encode(self, pixels: Tensor, tower: Any = None, start: int | None = None) -> Tensor:
        """``[B,3,S,S]`` → pos-embedded features ``[B,P,C_v]``; frame ``i`` gets the temporal index ``start + i``
        (default: continuing the stream). The memory is untouched."""
        pixels = pixels.to(device=self.model.device, dtype=self.model.dtype)
        feats = tower(pixels) if tower is not None else self.model.encode_frames(pixels)
        index = self.frames if start is None else start
        return self.projector.add_pos_embed(feats.to(self.projector.mlp[0].weight.dtype), start_index=index)

    def add(self, feats: Tensor) -> None:
        self.memory.add_frames(feats)
        self.frames += feats.shape[0]

    def ingest(self, pixels: Tensor) -> None:
        self.add(self.encode(pixels))

    def visual_tokens(self) -> Tensor:
        """Projected visual tokens ``[N, H]`` of the memory now."""
        return self.projector.project(self.memory.read())

    def nbytes(self) -> int:
        return int(self.memory.nbytes())


# ----------------------------------------------------------------------------------------------------------
# Synthetic inputs
# ----------------------------------------------------------------------------------------------------------


def camera_frames(n: int, hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``uint8 [n, H, W, 3]`` frames: scenes of 3–20 frames (random image + drift + noise)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, *hw, 3), np.uint8)
    k = 0
    while k < n:
        base = rng.integers(0, 256, (*hw, 3)).astype(np.float32)
        for j in range(min(int(rng.integers(3, 21)), n - k)):
            out[k] = np.clip(base + 3.0 * j + rng.normal(0, 6, (*hw, 3)), 0, 255).astype(np.uint8)
            k += 1
    return out


class ScenePixels:
    """Endless stream of processed-frame pixels ``[B,3,S,S]`` in [-1, 1] made on the device (scene cuts every
    3–20 frames, drift and noise within a scene) — the image processor is skipped (measured in ``intake``)."""

    def __init__(self, size: int, device: torch.device, seed: int = 0) -> None:
        self.size, self.device = size, device
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.base: Tensor | None = None
        self.left = 0

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.gen, device=self.device)

    def next(self, n: int) -> Tensor:
        out = []
        for _ in range(n):
            if self.left == 0:
                self.base = self._rand(3, self.size, self.size) * 2 - 1
                self.left = 3 + int(self._rand(1).item() * 18)
            self.left -= 1
            self.base = (self.base + 0.02 * (self._rand(3, self.size, self.size) - 0.5)).clamp(-1, 1)
            out.append(self.base)
        return torch.stack(out)


def text_ids(n: int, vocab: int, seed: int, device: torch.device) -> Tensor:
    """``[1, n]`` random token ids (no tokenizer needed: only the lengths matter for speed and memory)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, min(vocab, 150000), (1, n), generator=gen).to(device)


# ----------------------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------------------


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50 / p95 / mean in ms of a list of durations in seconds."""
    ms = sorted(1e3 * s for s in seconds)
    if not ms:
        return {"p50_ms": math.nan, "p95_ms": math.nan, "mean_ms": math.nan}
    p95 = ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)]
    return {"p50_ms": statistics.median(ms), "p95_ms": p95, "mean_ms": statistics.fmean(ms)}


def diff_stats(a: Tensor, b: Tensor) -> dict[str, float]:
    """Max abs diff, max abs diff relative to ``max|b|`` and the mean relative error (``b`` = reference)."""
    a, b = a.detach().float(), b.detach().float()
    d = (a - b).abs()
    scale = b.abs().max().clamp_min(1e-12)
    return {
        "max_abs": float(d.max()),
        "max_rel": float(d.max() / scale),
        "mean_rel": float(d.mean() / b.abs().mean().clamp_min(1e-12)),
    }
