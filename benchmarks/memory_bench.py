"""Event-memory benchmark: answering questions along a stream, rebuild vs incremental (not a test).

    python benchmarks/memory_bench.py                 # 600 frames of 729x1152, a question every 10 frames
    python benchmarks/memory_bench.py --quick         # 150 frames, a question every 10 frames

Approaches (default MemoryConfig, synthetic features with scenes, cuts and drift so events form):

(a) rebuild   — the reference: a fresh memory per question, all frames from 0 added, one read;
(b) deferred  — one memory, each frame added once, ``read()`` per question (exactly equal to (a));
(c) eager     — one memory, consolidation as frames arrive (bounded state; outputs differ from (a)).

Frame generation is excluded from the timings. Peak RSS is the process maximum so far (monotonic), so
the approaches run from the lightest to the heaviest: (c), then (b) and (a) interleaved.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamforest.memory as memory_module  # noqa: E402
from streamforest.memory import EventMemory, MemoryConfig  # noqa: E402
from streamforest.memory_demo import SyntheticStream  # noqa: E402


@dataclass
class Result:
    """Timings (seconds) of one approach."""

    name: str
    add: float = 0.0
    reads: list[float] = field(default_factory=list)
    state_mib: float = 0.0
    rss_mib: float = 0.0
    merges: int = 0

    @property
    def total(self) -> float:
        return self.add + sum(self.reads)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


_MERGES = [0]
_merge_events = memory_module.merge_events


def _counting_merge_events(*args, **kwargs):
    _MERGES[0] += 1
    return _merge_events(*args, **kwargs)


memory_module.merge_events = _counting_merge_events  # count long-memory pair merges actually computed


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def run_incremental(stream: SyntheticStream, cfg: MemoryConfig, every: int, rebuild: bool, progress) -> list[Result]:
    """(b) deferred reads, optionally with (a) rebuilds interleaved and compared at every question."""
    memory = EventMemory(cfg)
    inc, reb = Result("(b) deferred"), Result("(a) rebuild")
    mismatches = 0
    for start in range(0, stream.num_frames, every):
        chunk = stream.frames(start, min(start + every, stream.num_frames))
        before = _MERGES[0]
        _, dt = _timed(memory.add_frames, chunk)
        inc.add += dt
        tokens, dt = _timed(memory.read)
        inc.reads.append(dt)
        inc.merges += _MERGES[0] - before
        if rebuild:
            before = _MERGES[0]
            fresh = EventMemory(cfg)
            t_add = 0.0
            for part in stream.chunks(64, stop=memory.num_frames):
                _, dt = _timed(fresh.add_frames, part)
                t_add += dt
            again, dt = _timed(fresh.read)
            reb.reads.append(t_add + dt)
            reb.merges += _MERGES[0] - before
            mismatches += int(not torch.equal(tokens, again))
            del fresh, again
        progress.update(chunk.shape[0])
    inc.state_mib, inc.rss_mib = memory.nbytes() / 2**20, _rss_mib()
    reb.rss_mib = inc.rss_mib
    inc.name += f" [{memory.token_counts()['total']} tokens]"
    if rebuild:
        reb.name += f" [{'all equal' if mismatches == 0 else f'{mismatches} MISMATCHES'}]"
        return [reb, inc]
    return [inc]


def run_eager(stream: SyntheticStream, cfg: MemoryConfig, every: int, progress) -> Result:
    """(c) eager consolidation, a read per question."""
    memory = EventMemory(MemoryConfig(**{**cfg.to_dict(), "consolidation": "eager"}))
    res = Result("(c) eager")
    for start in range(0, stream.num_frames, every):
        chunk = stream.frames(start, min(start + every, stream.num_frames))
        before = _MERGES[0]
        _, dt = _timed(memory.add_frames, chunk)
        res.add += dt
        _, dt = _timed(memory.read)
        res.reads.append(dt)
        res.merges += _MERGES[0] - before
        progress.update(chunk.shape[0])
    res.state_mib, res.rss_mib = memory.nbytes() / 2**20, _rss_mib()
    res.name += f" [{memory.token_counts()['total']} tokens]"
    return res


def print_table(results: list[Result], frames: int, every: int) -> None:
    base = next((r.total for r in results if r.name.startswith("(a)")), None)
    header = f"{'approach':<34} {'add/frame ms':>12} {'read mean ms':>12} {'read last ms':>12} {'total s':>8} {'speed-up':>8} {'state MiB':>9} {'peak RSS MiB':>12} {'merges':>7}"
    print(f"\n{frames} frames, a question every {every} frames ({len(results[0].reads)} questions)")
    print(header)
    print("-" * len(header))
    for r in results:
        per_frame = r.add / frames * 1e3
        mean_read = sum(r.reads) / len(r.reads) * 1e3
        speed = f"{base / r.total:.1f}x" if base else "-"
        state = f"{r.state_mib:.0f}" if r.state_mib else "-"
        print(f"{r.name:<34} {per_frame:>12.2f} {mean_read:>12.1f} {r.reads[-1] * 1e3:>12.1f} {r.total:>8.1f} {speed:>8} {state:>9} {r.rss_mib:>12.0f} {r.merges:>7}")
    print("(a) 'read' = a full rebuild (add all frames so far + read); its add/frame column is 0 by construction.")
    print("merges = long-memory pair merges computed (the deferred cache reuses the others).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="rebuild-per-question vs incremental event memory")
    parser.add_argument("--frames", type=int, default=600, help="stream length (default 600)")
    parser.add_argument("--every", type=int, default=10, help="frames between questions (default 10)")
    parser.add_argument("--quick", action="store_true", help="150 frames (overrides --frames)")
    parser.add_argument("--no-rebuild", action="store_true", help="skip (a), the slow one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = parser.parse_args(argv)
    frames = 150 if args.quick else args.frames
    if frames <= 0 or args.every <= 0:
        parser.error("--frames and --every must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    from tqdm import tqdm

    cfg = MemoryConfig()
    stream = SyntheticStream(frames, tokens=cfg.now_tokens, width=cfg.hidden_size, seed=args.seed, scene_length=(2, 16))
    torch.manual_seed(args.seed)
    with tqdm(total=2 * frames, desc="bench", unit="frame") as progress:
        eager = run_eager(stream, cfg, args.every, progress)
        results = run_incremental(stream, cfg, args.every, rebuild=not args.no_rebuild, progress=progress)
    print_table([*results, eager], frames, args.every)


if __name__ == "__main__":
    main()
