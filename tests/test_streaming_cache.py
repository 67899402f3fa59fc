"""Prefix-cached answering: every generated step's logits equal a one-shot prefill (fp32, CPU) across hits,
extensions, merges, resets and follow-ups; the cache is keyed exactly and stays bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamforest import inference
from streamforest.streaming import StreamingSession
from streamforest.streaming.prefix_cache import PrefixCache, Run, _classify, _common_tokens

ATOL = 1e-4
"""fp32 tolerance on logits: the cached prefill only reorders floating-point sums (different matmul shapes)."""
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> Any:
    from streamforest.model.loader import load_pretrained

    return load_pretrained(tiny_checkpoint, dtype="float32")


def make_frames(n: int, seed: int = 0) -> np.ndarray:
    """A drifting scene with a cut every 5 frames: events enter and merge often (``test_streaming.make_frames``)."""
    from test_streaming import make_frames as drifting_scene

    return drifting_scene(n, seed, cut_every=5)


def session_for(loaded: Any, **kwargs: Any) -> StreamingSession:
    kwargs.setdefault("max_new_tokens", NEW_TOKENS)
    return StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, **kwargs)


def cached_vs_one_shot(loaded: Any, session: StreamingSession, question: str, history: list[tuple[str, str]]) -> str:
    """Generate through the session's cache and one-shot on the same prompt; assert ids equal and logits close."""
    with session._lock:
        session.flush()
        prompt, runs = session._compose(question, history, None)
    cached = session._prefix.generate(loaded.model, loaded.tokenizer, prompt, runs, max_new_tokens=NEW_TOKENS,
                                      output_logits=True)  # fmt: skip
    one_shot = inference.generate(loaded.model, loaded.tokenizer, prompt, max_new_tokens=NEW_TOKENS, output_logits=True)
    assert cached.output_ids == one_shot.output_ids
    assert len(cached.logits) == len(one_shot.logits)
    for step, (a, b) in enumerate(zip(cached.logits, one_shot.logits)):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0, msg=lambda m: f"step {step}: {m}")  # noqa: B023
    return cached.text


@pytest.mark.parametrize("mode", ["bounded", "exact"])
def test_cached_logits_equal_one_shot_across_hits_merges_and_follow_ups(loaded: Any, mode: str) -> None:
    session = session_for(loaded, mode=mode, prefix_cache=True, encode_batch_size=4)
    frames = make_frames(72)
    history: list[tuple[str, str]] = []
    for k in range(72):
        session.push(frames[k], k + 0.5)
        if k % 3 == 2:  # questions every 3 frames: hits, event entries (extensions) and merges in between
            answer = cached_vs_one_shot(loaded, session, "What is ahead?", [])
            if k % 12 == 11:  # a follow-up continues the dialogue: visual tokens stay in the first turn
                cached_vs_one_shot(loaded, session, "And now?", [("What is ahead?", answer)])
                history = [("What is ahead?", answer)]
        if k % 3 == 0 and k:  # a second question on the same frames reuses the whole visual prefix
            cached_vs_one_shot(loaded, session, "Is anything moving?", history)
    stats = session.stats()["prefix_cache"]
    assert stats["misses"]["cold"] == 1 and stats["misses"]["prompt"] == 0
    assert stats["hits"] > 0 and stats["extensions"] > 0
    if mode == "bounded":  # the eager memory merges in place: a merged event invalidates the cache from it on
        assert stats["misses"]["merge"] > 0
    assert stats["reused_tokens"] > 0 and stats["cached_tokens"] <= session.memory.config.max_tokens + 32
    session.reset()
    session.push(frames[0], 0.5)
    cached_vs_one_shot(loaded, session, "What is ahead?", [])
    assert session.stats()["prefix_cache"]["misses"]["reset"] == 1


def test_ask_uses_cache_by_default_in_bounded_and_matches_uncached(loaded: Any) -> None:
    frames = make_frames(40, seed=3)
    cached, plain = session_for(loaded, mode="bounded"), session_for(loaded, mode="bounded", prefix_cache=False)
    assert cached.stats()["prefix_cache"]["enabled"] and not plain.stats()["prefix_cache"]["enabled"]
    assert not session_for(loaded, mode="exact").stats()["prefix_cache"]["enabled"]  # exact: opt-in
    for k in range(40):
        cached.push(frames[k], k + 0.5)
        plain.push(frames[k], k + 0.5)
        if k % 4 == 3:
            assert cached.ask("What is ahead?").output_ids == plain.ask("What is ahead?").output_ids
    assert cached.stats()["prefix_cache"]["lookups"] == 10 and plain.stats()["prefix_cache"]["lookups"] == 0
    assert cached.stats()["prefix_cache"]["reused_tokens"] > 0


def test_exact_mode_without_cache_keeps_the_one_shot_path(loaded: Any) -> None:
    """Cache off (exact default): generation gets no past_key_values — the reference path, bit for bit."""
    session = session_for(loaded, mode="exact")
    frames = make_frames(12, seed=4)
    session.push_many(frames, [k + 0.5 for k in range(12)])
    prompt = session.build_prompt("What is ahead?")
    ref = inference.generate(loaded.model, loaded.tokenizer, prompt, max_new_tokens=NEW_TOKENS)
    assert session.ask("What is ahead?").output_ids == ref.output_ids
    assert session._prefix.cached_tokens == 0 and session._prefix.nbytes() == 0


def test_runs_keys_and_outcomes() -> None:
    """The cache description: common prefix is token-exact, outcomes classify the long-memory change."""
    head = Run("text", (1, 2, 3), 3)
    old = [head, Run("long", 0, 8), Run("long", 1, 8), Run("short", 10, 4), Run("now", 11, 16)]
    same = [head, Run("long", 0, 8), Run("long", 1, 8), Run("short", 10, 4), Run("short", 11, 4), Run("now", 12, 16),
            Run("text", (5, 6), 2)]  # fmt: skip
    assert _common_tokens(old, same) == 3 + 8 + 8 + 4 and _classify(old, same, "cold") == "hit"
    extended = [head, Run("long", 0, 8), Run("long", 1, 8), Run("long", 2, 8), Run("short", 13, 4)]
    assert _common_tokens(old, extended) == 19 and _classify(old, extended, "cold") == "extension"
    merged = [head, Run("long", 5, 8), Run("short", 13, 4)]
    assert _common_tokens(old, merged) == 3 and _classify(old, merged, "cold") == "merge"
    other = [Run("text", (1, 2, 4), 3), *old[1:]]
    assert _common_tokens(old, other) == 2 and _classify(old, other, "cold") == "prompt"
    assert _classify([], same, "reset") == "reset"
    assert PrefixCache(enabled=False).stats()["lookups"] == 0


def test_memory_layout_matches_read(loaded: Any) -> None:
    session = session_for(loaded, mode="bounded")
    frames = make_frames(30, seed=5)
    session.push_many(frames, [k + 0.5 for k in range(30)])
    session.flush()
    layout, counts = session.memory.layout(), session.memory.token_counts()
    assert sum(n for _, _, n in layout) == session.memory.read().shape[0] == counts["total"]
    for part in ("long", "short", "now"):
        assert sum(n for kind, _, n in layout if kind == part) == counts[part]
    frames_seen = [ident for kind, ident, _ in layout if kind != "long"]
    assert frames_seen == list(range(frames_seen[0], 30))  # short then now frames, consecutive, up to the newest


def test_bfloat16_cached_answers_equal_one_shot(tiny_checkpoint: Path) -> None:
    """bf16 on CPU: same greedy ids as the one-shot prefill, logits within bf16 rounding."""
    from streamforest.model.loader import load_pretrained

    loaded = load_pretrained(tiny_checkpoint, dtype="bfloat16")
    session = session_for(loaded, mode="bounded", encode_batch_size=4)
    frames = make_frames(30, seed=6)
    for k in range(30):
        session.push(frames[k], k + 0.5)
        if k % 3 == 2:
            with session._lock:
                session.flush()
                prompt, runs = session._compose("What is ahead?", [], None)
            cached = session._prefix.generate(loaded.model, loaded.tokenizer, prompt, runs, max_new_tokens=NEW_TOKENS,
                                              output_logits=True)  # fmt: skip
            ref = inference.generate(loaded.model, loaded.tokenizer, prompt, max_new_tokens=NEW_TOKENS, output_logits=True)
            assert cached.output_ids == ref.output_ids
            for a, b in zip(cached.logits, ref.logits):
                torch.testing.assert_close(a.float(), b.float(), atol=0.05, rtol=0)
    assert session.stats()["prefix_cache"]["reused_tokens"] > 0
