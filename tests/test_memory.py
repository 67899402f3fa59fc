"""EventMemory (FSTW + PEMF): reference equality, budgets, boundaries, merge order, policies, errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import streamforest.memory as memory_module
from streamforest.memory import EventMemory, MemoryConfig, pick_pair
from streamforest.memory_demo import SyntheticStream
from tests.memory_reference import ReferenceMemoryManager, reference_tokens

TINY = MemoryConfig(
    hidden_size=64,
    num_heads=4,
    now_tokens=16,
    short_tokens=8,
    long_tokens_per_frame=4,
    short_frames=6,
    event_window=4,
    long_token_quota=64,
)
ODD = MemoryConfig(  # odd slot/token counts, two now frames, unmerged A tokens in pair merges
    hidden_size=32,
    num_heads=4,
    now_frames=2,
    now_tokens=9,
    short_tokens=5,
    long_tokens_per_frame=3,
    short_frames=5,
    event_window=3,
    long_token_quota=21,
)
FLAT = MemoryConfig(  # short and event compressions are identities (7 tokens); event window > short window
    hidden_size=32,
    num_heads=2,
    now_tokens=7,
    short_tokens=7,
    long_tokens_per_frame=7,
    short_frames=3,
    event_window=5,
    long_token_quota=35,
)


def _stream(cfg: MemoryConfig, frames: int, seed: int = 0, extra_tokens: int = 0, scenes=(1, 9)) -> torch.Tensor:
    return SyntheticStream(
        frames, tokens=cfg.now_tokens + extra_tokens, width=cfg.hidden_size, seed=seed, scene_length=scenes
    ).frames()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add synchronisation (10x slower on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- config
def test_config_defaults_are_the_reference_values():
    cfg = MemoryConfig()
    assert cfg.to_dict() == {
        "hidden_size": 1152,
        "num_heads": 16,
        "now_frames": 1,
        "short_frames": 18,
        "now_tokens": 729,
        "short_tokens": 128,
        "event_window": 8,
        "long_tokens_per_frame": 64,
        "long_token_quota": 5120,
        "sim_weight": 0.4,
        "time_weight": 0.2,
        "merge_weight": 0.4,
        "consolidation": "deferred",
    }
    assert cfg.max_tokens == 9049  # REFERENCE §2.4
    demo = MemoryConfig.demo_online()
    assert (demo.short_frames, demo.now_tokens, demo.short_tokens) == (6, 64, 16)
    assert (demo.event_window, demo.long_tokens_per_frame, demo.long_token_quota) == (4, 16, 800)
    assert demo.max_tokens == 1008  # REFERENCE §2.4: 800 + 9·16 + 64
    assert MemoryConfig.from_dict(TINY.to_dict()) == TINY


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"short_frames": 0}, "short_frames"),
        ({"now_tokens": -1}, "now_tokens"),
        ({"event_window": 2.0}, "event_window"),
        ({"short_tokens": 800}, "short_tokens"),
        ({"long_tokens_per_frame": 129}, "long_tokens_per_frame"),
        ({"long_token_quota": 511}, "long_token_quota"),
        ({"num_heads": 7}, "num_heads"),
        ({"time_weight": -0.1}, "time_weight"),
        ({"sim_weight": float("nan")}, "sim_weight"),
        ({"consolidation": "lazy"}, "consolidation"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        MemoryConfig(**overrides)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown MemoryConfig keys \['quota'\]"):
        MemoryConfig.from_dict({"quota": 10, "hidden_size": 64})


# --------------------------------------------------------------------------- reference equality
@pytest.mark.parametrize("cfg", [TINY, ODD, FLAT], ids=["tiny", "odd", "flat"])
def test_deferred_read_equals_reference_rebuild_along_the_stream(cfg):
    frames = _stream(cfg, 110, seed=3, extra_tokens=3)
    memory = EventMemory(cfg)
    checked = 0
    for k in range(frames.shape[0]):
        memory.add_frame(frames[k])
        if k < 3 or k % 9 == 0 or k == frames.shape[0] - 1:
            assert torch.equal(memory.read(), reference_tokens(frames[: k + 1], cfg)), f"frame {k}"
            checked += 1
    assert checked > 12
    assert sum(e.merge_count for e in memory.events) == len(memory.raw_events)
    assert any(e.merge_count > 1 for e in memory.events)  # consolidation really happened


def test_deferred_read_equals_reference_with_default_config():
    cfg = MemoryConfig()
    stream = SyntheticStream(130, seed=5, scene_length=(2, 12))
    memory, reference = EventMemory(cfg), ReferenceMemoryManager.from_config(cfg)
    for chunk in stream.chunks(40):
        memory.add_frames(chunk)
        for frame in chunk:
            reference.update(frame)
    counts = memory.token_counts()
    assert counts["long"] <= 5120 and counts["now"] == 729 and counts["total"] <= 9049
    assert 18 * 128 <= counts["short"] <= 25 * 128
    assert torch.equal(memory.read(), reference.get_memory_tokens()[0])


def test_add_frames_equals_add_frame_loop_across_chunk_boundaries():
    frames = _stream(TINY, 75, seed=1)
    one, many = EventMemory(TINY), EventMemory(TINY)
    for frame in frames:
        one.add_frame(frame)
    many.add_frames(frames[:3])
    many.add_frames(frames[3:])
    assert torch.equal(one.read(), many.read())
    assert one.events == many.events


def test_read_is_non_destructive_and_repeatable():
    frames = _stream(TINY, 60, seed=2)
    memory = EventMemory(TINY)
    memory.add_frames(frames[:50])
    first = memory.read()
    first.zero_()  # the caller owns the returned tensor
    again = memory.read()
    assert torch.equal(again, memory.read())
    assert torch.equal(again, reference_tokens(frames[:50], TINY))
    memory.add_frames(frames[50:])
    assert torch.equal(memory.read(), reference_tokens(frames, TINY))


def test_reads_reuse_earlier_merges(monkeypatch):
    calls = {"n": 0}
    original = memory_module.merge_events

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(memory_module, "merge_events", counting)
    frames = _stream(TINY, 120, seed=4)
    memory = EventMemory(TINY)
    for k in range(frames.shape[0]):
        memory.add_frame(frames[k])
        memory.read()
    incremental = calls["n"]
    rebuild_total = 0
    for t in range(1, frames.shape[0] + 1, 10):  # a rebuild for only every 10th frame already costs more
        calls["n"] = 0
        fresh = EventMemory(TINY)
        fresh.add_frames(frames[:t])
        fresh.read()
        rebuild_total += calls["n"]
    assert 0 < incremental < rebuild_total / 2
    sizes = memory.buffer_sizes()
    assert sizes["cached_merges"] <= sizes["events"]  # the cache keeps only the latest read's merges


# --------------------------------------------------------------------------- budgets
def test_token_budget_before_events_is_128t_plus_601():
    cfg = MemoryConfig()
    stream = SyntheticStream(26, seed=0)
    memory = EventMemory(cfg)
    for t in range(1, 27):
        memory.add_frame(stream.frame(t - 1))
        counts = memory.token_counts()
        assert counts["total"] == 128 * t + 601 and counts["long"] == 0
    assert memory.read().shape == (3929, 1152)
    assert memory.events == []


def test_token_budget_scaled_config_never_exceeds_the_formula():
    cfg = MemoryConfig(
        hidden_size=32, num_heads=4, now_tokens=12, short_tokens=6, long_tokens_per_frame=3, long_token_quota=60
    )
    frames = _stream(cfg, 300, seed=7, scenes=(1, 12))
    memory = EventMemory(cfg)
    totals = []
    for k in range(frames.shape[0]):
        memory.add_frame(frames[k])
        if k % 5 == 0:
            totals.append(memory.token_counts()["total"])
    assert max(totals) <= cfg.max_tokens == 60 + 25 * 6 + 12
    counts = memory.token_counts()
    assert counts["long"] <= 60 and 18 * 6 <= counts["short"] <= 25 * 6


# --------------------------------------------------------------------------- event boundaries
def _scene_frames(lengths: list[int], tokens: int = 16, width: int = 64, seed: int = 0) -> torch.Tensor:
    """Scenes of identical-up-to-small-noise frames; cuts between scenes are the least-similar pairs."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        base = torch.randn(tokens, width, generator=gen)
        out += [base + 0.05 * torch.randn(tokens, width, generator=gen) for _ in range(n)]
    return torch.stack(out)


def test_event_boundaries_follow_the_least_similar_pair():
    memory = EventMemory(TINY)  # events cut once 6 + 4 short frames exist, window of 4
    memory.add_frames(_scene_frames([3, 2, 4, 1, 4, 6]))
    spans = [(e.first_frame, e.last_frame, e.centre) for e in memory.raw_events]
    assert spans[:4] == [(0, 2, 1.0), (3, 4, 3.5), (5, 8, 6.5), (9, 9, 9.0)]


def test_event_boundary_ties_pick_the_first_minimum():
    frame = torch.randn(16, 64)
    memory = EventMemory(TINY)
    memory.add_frames(frame.expand(13, 16, 64))  # all consecutive similarities are equal
    assert [e.slots for e in memory.raw_events] == [1, 1, 1]


# --------------------------------------------------------------------------- merge order
def _nodes(centres, counts):
    return [SimpleNamespace(centre=c, merge_count=m) for c, m in zip(centres, counts)]


def test_pick_pair_penalty_hand_checked():
    cfg = MemoryConfig()
    # pair 0: 0.4*(1-0.9) + 0.2*(2.5/10) + 0.4*(1/1.5+1e-6) = 0.356667
    # pair 1: 0.4*(1-0.5) + 0.2*(6/10)   + 0.4*(1.5/1.5+1e-6) = 0.720000
    assert pick_pair(_nodes([1, 4, 8], [1, 1, 2]), [0.9, 0.5], 10, cfg) == 0
    # equal merge counts: similarity decides against time (0.4*0.3+0.2*0.1 < 0.4*0.4+0.2*0.05? no: 0.14 > 0.17?)
    # pair 0: 0.4*0.4 + 0.2*(1/20) = 0.17 ; pair 1: 0.4*0.3 + 0.2*(3/20) = 0.15 -> pair 1
    assert pick_pair(_nodes([0, 2, 4], [1, 1, 1]), [0.6, 0.7], 20, cfg) == 1
    # time alone: older pairs are cheaper
    assert pick_pair(_nodes([0, 2, 4, 6], [1, 1, 1, 1]), [0.5, 0.5, 0.5], 20, cfg) == 0
    # exact ties: the first minimum wins
    assert pick_pair(_nodes([0, 0, 0], [1, 1, 1]), [0.5, 0.5], 20, cfg) == 0


def test_consolidation_merge_order_hand_checked():
    # Identical frames whose tokens are all the same vector: every frame similarity ties (events of one
    # frame each, centres 0..19) and every event similarity is 1 (to float rounding), so only the time
    # and merge-count penalties decide. T = 30: 20 one-slot events = 80 tokens > 64 -> 4 merges, normaliser 29.
    #   1: all counts 1                      -> oldest pair (0,1)
    #   2: (0-1,2) has count 1.5 = max       -> 0.4*1 + ... loses to (2,3): 0.2*2.5/29 + 0.4*(1/1.5)
    #   3: (4,5): 0.2*4.5/29 + 0.4*0.5 = 0.231 beats (2-3,4): 0.2*3.25/29 + 0.4*0.75 = 0.322
    #   4: (6,7) likewise
    frames = torch.randn(64).expand(30, 16, 64)
    memory = EventMemory(TINY)
    memory.add_frames(frames)
    spans = [(e.first_frame, e.last_frame, e.merge_count, e.slots) for e in memory.events]
    assert spans[:5] == [(0, 1, 2, 1), (2, 3, 2, 1), (4, 5, 2, 1), (6, 7, 2, 1), (8, 8, 1, 1)]
    assert len(spans) == 16 and memory.token_counts()["long"] == 64
    assert [e.centre for e in memory.events[:4]] == [0.5, 2.5, 4.5, 6.5]
    assert torch.equal(memory.read(), reference_tokens(frames, TINY))


# --------------------------------------------------------------------------- eager policy
def test_eager_matches_deferred_until_the_quota_is_first_exceeded():
    frames = _stream(TINY, 40, seed=6)
    deferred, eager = EventMemory(TINY), EventMemory(MemoryConfig(**{**TINY.to_dict(), "consolidation": "eager"}))
    for k in range(frames.shape[0]):
        deferred.add_frame(frames[k])
        eager.add_frame(frames[k])
        if sum(e.slots for e in deferred.raw_events) * 4 <= 64:
            assert torch.equal(deferred.read(), eager.read())
    assert eager.token_counts()["long"] <= 64


def test_eager_memory_stays_flat_over_100k_frames():
    cfg = MemoryConfig(
        hidden_size=16, num_heads=4, now_tokens=4, short_tokens=2, long_tokens_per_frame=2,
        short_frames=2, event_window=16, long_token_quota=64, consolidation="eager",
    )  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    total, scene = 100_000, 16
    bases = torch.randn(total // scene, 4, 16, generator=gen).repeat_interleave(scene, dim=0)
    memory = EventMemory(cfg)
    peak: dict[str, int] = {}
    peak_tokens = 0
    for start in range(0, total, 2_000):
        block = bases[start : start + 2_000] + 0.1 * torch.randn(2_000, 4, 16, generator=gen)
        memory.add_frames(block)
        for key, value in memory.buffer_sizes().items():
            peak[key] = max(peak.get(key, 0), value)
        peak_tokens = max(peak_tokens, memory.token_counts()["total"])
    assert memory.num_frames == total
    assert peak_tokens <= cfg.max_tokens and memory.token_counts()["long"] <= 64
    assert peak["events"] <= 32 and peak["short"] <= 17 and peak["frame_sims"] <= 18 and peak["now"] == 1
    assert peak["cached_merges"] == 0
    assert memory.read().shape == (memory.token_counts()["total"], 16)
    assert memory.events[-1].last_frame > total - 40


# --------------------------------------------------------------------------- errors and state safety
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.full((16, 64), float("nan")), "NaN"),
        (torch.randn(16, 32), "hidden_size"),
        (torch.randn(8, 64), "now_tokens"),
        (torch.randn(20, 64), "does not match earlier frames"),
        (torch.randn(16, 64, dtype=torch.float64), "does not match earlier frames"),
        (torch.randn(1, 16, 64), r"\[P, C\]"),
        (torch.zeros(16, 64, dtype=torch.int64), "floating point"),
    ],
)
def test_bad_frame_is_rejected_and_leaves_state_intact(bad, message):
    frames = _stream(TINY, 45, seed=8)
    memory = EventMemory(TINY)
    memory.add_frames(frames[:40])
    before = (memory.read(), memory.token_counts(), memory.events, memory.buffer_sizes())
    with pytest.raises(ValueError, match=message):
        memory.add_frame(bad)
    assert memory.num_frames == 40
    after = (memory.read(), memory.token_counts(), memory.events, memory.buffer_sizes())
    assert torch.equal(before[0], after[0]) and before[1:] == after[1:]
    memory.add_frames(frames[40:])
    assert torch.equal(memory.read(), reference_tokens(frames, TINY))


def test_bad_frame_inside_a_batch_rejects_the_whole_batch():
    frames = _stream(TINY, 40, seed=8)
    memory = EventMemory(TINY)
    memory.add_frames(frames[:30])
    expected = memory.read()
    batch = frames[30:].clone()
    batch[7, 3, 5] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        memory.add_frames(batch)
    assert memory.num_frames == 30 and torch.equal(memory.read(), expected)


def test_empty_memory_and_reset():
    memory = EventMemory(TINY)
    assert memory.read().shape == (0, 64) and memory.token_counts()["total"] == 0
    memory.add_frames(_stream(TINY, 30))
    memory.reset()
    assert memory.num_frames == 0 and memory.events == [] and memory.read().shape == (0, 64)
    memory.add_frame(torch.randn(20, 64))  # a new stream may use another frame size
    assert memory.read().shape == (16, 64)


# --------------------------------------------------------------------------- autograd and introspection
@pytest.mark.parametrize("policy", ["deferred", "eager"])
def test_gradient_reaches_every_input_frame(policy):
    cfg = MemoryConfig(**{**TINY.to_dict(), "consolidation": policy})
    frames = _stream(cfg, 40, seed=9).requires_grad_(True)
    memory = EventMemory(cfg)
    memory.add_frames(frames)
    out = memory.read()
    assert out.requires_grad and memory.token_counts()["long"] <= 64
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    assert frames.grad is not None and torch.isfinite(frames.grad).all()
    assert (frames.grad.flatten(1).abs().sum(1) > 0).all()


def test_introspection_matches_read():
    frames = _stream(ODD, 90, seed=10)
    memory = EventMemory(ODD)
    memory.add_frames(frames)
    counts, events, out = memory.token_counts(), memory.events, memory.read()
    assert counts["total"] == out.shape[0] == counts["long"] + counts["short"] + counts["now"]
    assert counts["long"] == sum(e.slots for e in events) * ODD.long_tokens_per_frame
    assert counts["now"] == 2 * 9 and memory.num_frames == 90
    covered = [k for e in events for k in range(e.first_frame, e.last_frame + 1)]
    assert covered == list(range(len(covered)))  # events tile the stream's start, in order
    assert len(covered) + counts["short"] // 5 + 2 == 90
    for e in events:
        assert e.first_frame <= e.centre <= e.last_frame
        assert e.slots <= e.last_frame - e.first_frame + 1
    assert sum(e.merge_count for e in events) == len(memory.raw_events)
