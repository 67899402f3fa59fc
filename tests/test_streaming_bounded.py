"""Bounded everything (shortened variant of ``benchmarks/bounded_bench.py``): a long 1-fps stream in ``bounded``
mode with a standing question keeps flat state, RSS and per-frame cost."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamforest.streaming import StreamError, StreamingSession, rss_bytes
from streamforest.streaming.metrics import LATENCY_WINDOW

FRAMES = 1800
SAMPLE = 450


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> Any:
    from streamforest.model.loader import load_pretrained

    return load_pretrained(tiny_checkpoint, dtype="float32")


@pytest.fixture
def one_thread() -> Any:
    """One torch thread: per-frame timings of tiny ops are stable on a shared machine (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_long_bounded_stream_with_a_standing_question_stays_flat(loaded: Any, one_thread: Any) -> None:
    session = StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, mode="bounded",
                               max_new_tokens=2, encode_batch_size=8)  # fmt: skip
    session.watch("Is the light green?", every_s=4.0, cooldown_s=30.0)
    cfg = session.memory.config
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (97, 24, 32, 3)).astype(np.uint8)
    samples, spent = [], 0.0
    for k in range(FRAMES):
        t0 = time.perf_counter()
        session.push(pool[k % len(pool)], k + 0.5)
        spent += time.perf_counter() - t0
        if (k + 1) % SAMPLE == 0:
            gc.collect()
            stats = session.stats()
            samples.append({"rss": rss_bytes()[0], "ms": 1e3 * spent / SAMPLE, "bytes": stats["session_bytes"],
                            "tokens": stats["memory_tokens"]["total"], "cache": stats["prefix_cache"]["cached_tokens"],
                            "buffers": stats["memory_buffers"]})  # fmt: skip
            spent = 0.0
    stats = session.stats()
    assert stats["watch"]["probes"] == FRAMES // 4 and stats["prefix_cache"]["hits"] > 0
    # O(1) state: no per-frame timestamps, bounded memory/caches/windows, one cached prompt prefix
    assert session._frames.times_nbytes() == 0 and len(session._frames.times) == FRAMES
    cap_bytes = (cfg.max_tokens + 16 + 2 * 8 * cfg.short_tokens) * cfg.hidden_size * 4
    for s in samples:
        assert s["tokens"] <= cfg.max_tokens and s["cache"] <= cfg.max_tokens + 64
        assert s["buffers"]["events"] <= cfg.long_token_quota // cfg.long_tokens_per_frame
        assert s["bytes"] - stats["prefix_cache"]["cached_bytes"] <= cap_bytes + 64 * 1024
    assert len(session.metrics.frame.window) <= LATENCY_WINDOW
    # flat RSS and per-frame cost: the last sample against the second (the first includes warm-up)
    assert samples[-1]["rss"] - samples[1]["rss"] < 16 * 2**20
    assert samples[-1]["ms"] < 2.0 * samples[1]["ms"] + 1.0
    # the time message describes all frames from count + ends; the temporal index wrapped (1800 > 512)
    assert f"contains {FRAMES} frames" in session.time_message_text()


def test_bounded_mode_rejects_time_messages_listing_every_frame(loaded: Any) -> None:
    with pytest.raises(StreamError, match="grows without bound"):
        StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, mode="bounded",
                         time_msg="short_online_per_frame")  # fmt: skip
