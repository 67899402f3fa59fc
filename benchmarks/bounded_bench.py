"""Bounded-everything benchmark: an endless 1-fps stream in ``bounded`` mode with a standing question (not a test).

    python benchmarks/bounded_bench.py --hours 24              # 86,400 frames (tiny model)
    python benchmarks/bounded_bench.py --hours 6               # the variant this 2-core machine can afford
    python benchmarks/bounded_bench.py --quick                 # 0.5 h smoke run, sampled every 5 min

A tiny checkpoint (``streamforest.tiny``, its own small memory config) plays synthetic 64×64 frames with scene
cuts (a pool of ``--pool`` frames, cycled) through a ``bounded`` :class:`StreamingSession` with one standing
question (``session.watch``, probed every ``--watch-every`` s of stream time; default every frame) and the
prefix cache on (the bounded default). Every ``--sample-min`` minutes of stream time (default: every hour) it
records the process RSS, the session's tensor bytes (memory + pending pixels + cached visual tokens + prompt
KV cache + timestamps), the memory's token count, the prefix-cache size, and the mean wall time per pushed
frame over the last interval (ViT + memory update + probe). The stream is flat when the last sample's RSS,
bytes and per-frame cost match the first full interval's (within ``--tolerance``).

Everything a bounded session keeps is O(1) in the stream length: the event memory (eager consolidation),
one cached prompt prefix, count/first/last timestamps, latency windows of 4,096 samples, an alert queue of
1,024; the temporal position index wraps at 512 (REFERENCE §1.4), so frame 86,399 embeds like frame 383.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from streaming_bench import synthetic_frames  # noqa: E402

from streamforest.streaming import StreamingSession, rss_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WATCH = "Is the traffic light green?"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from streamforest.model.loader import load_pretrained
    from streamforest.tiny import make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_pretrained(args.model or make_tiny_checkpoint(Path(tmp) / "tiny"), dtype="float32")
    session = StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, mode="bounded",
                               max_new_tokens=4, encode_batch_size=8)  # fmt: skip
    session.watch(WATCH, threshold=args.threshold, every_s=args.watch_every, cooldown_s=60.0)
    pool = synthetic_frames(args.pool, size=64, seed=0)
    frames_total, every = int(args.hours * 3600), int(args.sample_min * 60)
    samples: list[dict[str, Any]] = []
    spent, alerts, wall0 = 0.0, 0, time.perf_counter()
    for k in tqdm(range(frames_total), desc="bounded stream", unit="frame", mininterval=5):
        t0 = time.perf_counter()
        alerts += len(session.push(pool[k % args.pool], k + 0.5))
        spent += time.perf_counter() - t0
        if (k + 1) % every == 0:
            gc.collect()
            stats = session.stats()
            session.alerts()  # drain, as a consumer would
            samples.append({
                "stream_h": (k + 1) / 3600, "frames": k + 1, "rss_mib": rss_bytes()[0] / 2**20,
                "session_kib": stats["session_bytes"] / 1024, "memory_tokens": stats["memory_tokens"]["total"],
                "cache_tokens": stats["prefix_cache"]["cached_tokens"], "frame_ms": 1e3 * spent / every,
                "probes": stats["watch"]["probes"], "alerts": alerts, "hit_rate": stats["prefix_cache"]["hit_rate"],
                "wall_s": time.perf_counter() - wall0,
            })  # fmt: skip
            spent = 0.0
    return {"samples": samples, "frames": frames_total, "torch_threads": torch.get_num_threads(),
            "final_stats": session.stats()}  # fmt: skip


def flatness(samples: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """Compare the last sample with the second one (the first interval includes warm-up and filling)."""
    ref, last = samples[min(1, len(samples) - 1)], samples[-1]
    out = {"rss_growth_mib": last["rss_mib"] - ref["rss_mib"], "session_growth_kib": last["session_kib"] - ref["session_kib"],
           "frame_ms_ratio": last["frame_ms"] / ref["frame_ms"] if ref["frame_ms"] else 0.0}  # fmt: skip
    out["flat"] = (out["rss_growth_mib"] <= tolerance * ref["rss_mib"] and out["session_growth_kib"] <= tolerance * ref["session_kib"]
                   and out["frame_ms_ratio"] <= 1 + tolerance * 5)  # fmt: skip
    return out


def markdown(result: dict[str, Any], flat: dict[str, Any], args: argparse.Namespace, argv: list[str]) -> str:
    probe = "every frame" if args.watch_every is None else f"every {args.watch_every:g} s"
    lines = [
        "# Bounded stream benchmark", "",
        f"`python benchmarks/bounded_bench.py {' '.join(argv)}` — tiny model, CPU, {result['torch_threads']} thread(s), "
        f"{result['frames']:,} frames at 1 fps ({args.hours:g} h of stream), one standing question probed {probe}, "
        f"prefix cache on (bounded default), sampled every {args.sample_min:g} min of stream time.", "",
        "| stream h | frames | RSS MiB | session KiB | memory tokens | cached KV tokens | ms / frame | probes | alerts | cache hit rate | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for s in result["samples"]:
        lines.append(f"| {s['stream_h']:.2f} | {s['frames']:,} | {s['rss_mib']:.0f} | {s['session_kib']:.0f} | "
                     f"{s['memory_tokens']} | {s['cache_tokens']} | {s['frame_ms']:.2f} | {s['probes']:,} | {s['alerts']} | "
                     f"{100 * s['hit_rate']:.0f} % | {s['wall_s']:.0f} |")  # fmt: skip
    lines += ["", f"Last sample vs the second: RSS {flat['rss_growth_mib']:+.1f} MiB, session tensors "
              f"{flat['session_growth_kib']:+.1f} KiB, per-frame cost ×{flat['frame_ms_ratio']:.2f} → "
              f"{'flat' if flat['flat'] else 'NOT flat'} (tolerance {args.tolerance:g}). Per-frame cost on this shared "
              "2-core machine varies with the other processes' load.", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="stream length in hours of 1-fps frames")
    parser.add_argument("--quick", action="store_true", help="0.5 h, sampled every 5 min")
    parser.add_argument("--sample-min", type=float, default=60.0, help="sampling interval in minutes of stream time")
    parser.add_argument("--watch-every", type=float, default=None, help="probe interval in s (default: every frame)")
    parser.add_argument("--threshold", type=float, default=0.5, help="alert threshold of the standing question")
    parser.add_argument("--pool", type=int, default=997, help="distinct synthetic frames, cycled")
    parser.add_argument("--tolerance", type=float, default=0.1, help="relative growth still called flat")
    parser.add_argument("--model", default=None, help="checkpoint (default: a fresh tiny checkpoint)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.hours, args.sample_min = min(args.hours, 0.5), min(args.sample_min, 5.0)
    torch.set_num_threads(args.threads)
    result = run(args)
    flat = flatness(result["samples"], args.tolerance)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"bounded_bench_{args.hours:g}h"
    text = markdown(result, flat, args, argv)
    (args.out / f"{stem}.md").write_text(text, encoding="utf-8")
    (args.out / f"{stem}.json").write_text(json.dumps({**result, "flatness": flat}, indent=1, default=str), encoding="utf-8")
    print(text)
    return 0 if flat["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
