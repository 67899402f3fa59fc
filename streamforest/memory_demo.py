"""Event-memory demo: ``python -m streamforest.memory_demo`` (what ``make demo`` shows for now).

Feeds a synthetic stream (scenes with cuts and slow drift) through :class:`~streamforest.memory.EventMemory`
and prints how frames move through the FSTW windows into PEMF events, which events get merged, and the
final token budget per part. :class:`SyntheticStream` is also used by ``benchmarks/memory_bench.py``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import torch
from torch import Tensor

from streamforest.console import say
from streamforest.memory import EventMemory, MemoryConfig

__all__ = ["SyntheticStream", "main"]

logger = logging.getLogger(__name__)


class SyntheticStream:
    """Deterministic synthetic frame features with scene cuts and slow drift.

    Frame ``k`` of scene ``s`` (starting at frame ``a``) is
    ``base[s] + drift·(k − a)·direction[s] + noise·bank[k mod 7]``, each term ``[P, C]``; consecutive frames
    of a scene have cosine ≈ 0.9, frames across a cut ≈ 0. Frames are generated on demand (``frames``), so
    long streams do not have to sit in memory.
    """

    def __init__(
        self,
        num_frames: int,
        tokens: int = 729,
        width: int = 1152,
        seed: int = 0,
        scene_length: tuple[int, int] = (3, 24),
        drift: float = 0.02,
        noise: float = 0.3,
    ) -> None:
        if num_frames <= 0 or tokens <= 0 or width <= 0:
            raise ValueError(f"SyntheticStream needs positive sizes, got {num_frames=}, {tokens=}, {width=}")
        lo, hi = scene_length
        if not 1 <= lo <= hi:
            raise ValueError(f"scene_length must be (min, max) with 1 <= min <= max, got {scene_length}")
        gen = torch.Generator().manual_seed(seed)
        self.num_frames, self.drift, self.noise = num_frames, drift, noise
        self.scene_starts: list[int] = []
        start = 0
        while start < num_frames:
            self.scene_starts.append(start)
            start += int(torch.randint(lo, hi + 1, (1,), generator=gen))
        self._scene_of = torch.bucketize(torch.arange(num_frames), torch.tensor(self.scene_starts), right=True) - 1
        n_scenes = len(self.scene_starts)
        self._bases = torch.randn(n_scenes, tokens, width, generator=gen)
        self._directions = torch.randn(min(n_scenes, 5), tokens, width, generator=gen)
        self._bank = torch.randn(7, tokens, width, generator=gen)

    def frame(self, k: int) -> Tensor:
        """Frame ``k`` as ``[P, C]`` float32."""
        if not 0 <= k < self.num_frames:
            raise IndexError(f"frame {k} outside the stream of {self.num_frames} frames")
        scene = int(self._scene_of[k])
        age = k - self.scene_starts[scene]
        direction = self._directions[scene % len(self._directions)]
        return self._bases[scene] + (self.drift * age) * direction + self.noise * self._bank[k % 7]

    def frames(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Frames ``start .. stop-1`` as ``[T, P, C]``."""
        stop = self.num_frames if stop is None else stop
        return torch.stack([self.frame(k) for k in range(start, stop)])

    def chunks(self, size: int = 32, stop: int | None = None) -> Iterator[Tensor]:
        """Frames ``0 .. stop-1`` in ``[≤size, P, C]`` chunks."""
        stop = self.num_frames if stop is None else stop
        for start in range(0, stop, size):
            yield self.frames(start, min(start + size, stop))


def _span(first: int, last: int) -> str:
    return f"{first}" if first == last else f"{first}-{last}"


def run(num_frames: int, config: MemoryConfig, seed: int = 0, show: int = 8) -> EventMemory:
    """Stream ``num_frames`` synthetic frames through a memory, printing a short report."""
    from tqdm import tqdm

    stream = SyntheticStream(num_frames, tokens=config.now_tokens, width=config.hidden_size, seed=seed)
    memory = EventMemory(config)
    first_event_at = None
    for k in tqdm(range(num_frames), desc="frames", unit="frame", leave=False):
        memory.add_frame(stream.frame(k))
        if first_event_at is None and memory.buffer_sizes()["events"]:
            first_event_at = k
    counts = memory.token_counts()
    sizes = memory.buffer_sizes()
    say(f"stream: {num_frames} frames of {config.now_tokens}x{config.hidden_size}, {len(stream.scene_starts)} scenes")
    say(f"scene cuts (first {show}): {stream.scene_starts[1 : show + 1]}")
    say(
        f"FSTW: now window = {sizes['now']} frame(s) x {config.now_tokens} tokens; "
        f"short window = {sizes['short']} frames x {config.short_tokens} tokens "
        f"(frames {num_frames - sizes['now'] - sizes['short']}-{num_frames - sizes['now'] - 1})"
    )
    leaves = memory.raw_events
    if not leaves:
        say(f"PEMF: no events yet (they form once {config.short_frames + config.event_window} short frames exist)")
    else:
        say(
            f"PEMF: first event formed when frame {first_event_at} arrived (short window full); "
            f"{len(leaves)} events segmented, {min(e.slots for e in leaves)}-{max(e.slots for e in leaves)} frames each"
        )
        spans = ", ".join(_span(n.first_frame, n.last_frame) for n in leaves[:show])
        say(f"  first events (frame spans): {spans}, ...")
    events = memory.events
    merged = [e for e in events if e.merge_count > 1]
    say(f"consolidation ({config.consolidation}): {len(leaves)} -> {len(events)} events, {len(merged)} of them merged")
    for e in events[:show]:
        tag = f"merge of {e.merge_count}" if e.merge_count > 1 else "single event"
        say(f"  frames {_span(e.first_frame, e.last_frame):>9}: {e.slots} slot(s), centre {e.centre:6.1f}, {tag}")
    if len(events) > show:
        say(f"  ... {len(events) - show} more events")
    tokens = memory.read()
    say(
        f"tokens: long {counts['long']} (quota {config.long_token_quota}) + short {counts['short']} + "
        f"now {counts['now']} = {counts['total']} (max {config.max_tokens}); read() -> {tuple(tokens.shape)}"
    )
    return memory


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="stream length")
    parser.add_argument("--seed", type=int, default=0, help="synthetic stream seed")
    parser.add_argument("--eager", action="store_true", help="bounded 'eager' consolidation instead of 'deferred'")
    parser.add_argument("--full", action="store_true", help="reference width (729x1152); default is a small 64x256 config")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (small tensors run fastest on one; 0 = keep)"
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    consolidation = "eager" if args.eager else "deferred"
    if args.full:
        config = MemoryConfig(consolidation=consolidation)
    else:
        config = MemoryConfig(
            hidden_size=256, num_heads=16, now_tokens=64, short_tokens=16, long_tokens_per_frame=8,
            long_token_quota=640, consolidation=consolidation,
        )  # fmt: skip
    run(args.frames, config, seed=args.seed)


if __name__ == "__main__":
    main()
