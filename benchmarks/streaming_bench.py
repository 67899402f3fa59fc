"""Streaming benchmark: question latency against stream length — rebuild vs ``exact`` vs ``bounded`` (not a test).

    python benchmarks/streaming_bench.py                  # 1, 5, 15, 30, 60 min at 1 fps, a question every 10 s
    python benchmarks/streaming_bench.py --quick          # 1, 2, 5 min (smoke run)
    python benchmarks/streaming_bench.py --real-size      # + the default memory at width 1152 (stand-in ViT)

Part 1 (tiny model, CPU; the tiny checkpoint's own memory config): one ``bounded`` and one ``exact``
:class:`~streamforest.streaming.StreamingSession` each play the whole stream (synthetic 64×64 frames with
scene cuts, 1 frame per second), asking a question every 10 s; a question's latency is the wall time of
``session.ask`` (flush of pending frames + memory read-out + MLP + generation). The reference path is
measured at each length L with ``--rebuild-samples`` questions: preprocess all L frames, then
``model.generate(images=[pixels])`` (ViT on every frame, fresh memory, MLP, generation) — it excludes the
video decoding the reference also repeats per question. The exact session's answer at L is compared with
the rebuild's (token ids). Peak RSS is measured after the bounded run (the process maximum is monotonic,
so bounded runs first).

Part 2 (``--real-size``): the default ``MemoryConfig`` (729 tokens × 1152 per frame, quota 5,120) fed by a
stand-in vision tower (random features with scene structure) and the real projector MLP shape
(1152→3584→3584, random weights): per-frame update cost, per-question read-out + MLP cost and bytes held, for
``deferred`` (exact) and ``eager`` (bounded), and a memory rebuild at the shorter lengths. The ViT itself is
not run (so400m ≈ 0.58 TFLOP per frame, which the reference repeats for every frame at every question).

Outputs: a markdown table and a PNG plot in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamforest.streaming import StreamingSession  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUESTION = "What is the car in front doing?"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------------------------------
# Part 1: tiny model, end to end
# ----------------------------------------------------------------------------------------------------------


def synthetic_frames(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """``uint8 [n, size, size, 3]`` frames: scenes of 3–20 s with drift and noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    k = 0
    while k < n:
        length = int(rng.integers(3, 21))
        base = rng.integers(0, 256, (size, size, 3)).astype(np.float32)
        step = rng.normal(0, 3, (size, size, 3)).astype(np.float32)
        for j in range(min(length, n - k)):
            noise = rng.normal(0, 6, (size, size, 3)).astype(np.float32)
            out[k] = np.clip(base + j * step + noise, 0, 255).astype(np.uint8)
            k += 1
    return out


@dataclass
class SessionRun:
    mode: str
    latency_ms: dict[int, float] = field(default_factory=dict)  # frames seen → question latency
    output_ids: dict[int, list[int]] = field(default_factory=dict)
    memory_mib: dict[int, float] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)
    frame_ms: float = 0.0
    peak_rss_mib: float = 0.0
    wall_s: float = 0.0


def run_session(loaded: Any, frames: np.ndarray, mode: str, every: int, lengths: list[int], new_tokens: int) -> SessionRun:
    session = StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, mode=mode,
                               max_new_tokens=new_tokens, encode_batch_size=8)  # fmt: skip
    run = SessionRun(mode)
    t0 = time.perf_counter()
    for k in tqdm(range(frames.shape[0]), desc=f"{mode} session", unit="frame", leave=False):
        session.push(frames[k], k + 0.5)
        seen = k + 1
        if seen % every == 0:
            answer = session.ask(QUESTION)
            run.latency_ms[seen] = 1e3 * answer.latency_s
            run.output_ids[seen] = answer.output_ids
            if seen in lengths:
                stats = session.stats()
                run.memory_mib[seen] = stats["memory_bytes"] / 2**20
                run.tokens[seen] = stats["memory_tokens"]["total"]
    run.wall_s = time.perf_counter() - t0
    stats = session.stats()
    run.frame_ms = stats["frame_latency_ms"]["mean"]
    run.peak_rss_mib = peak_rss_mib()
    return run


def rebuild_once(loaded: Any, frames: np.ndarray, new_tokens: int) -> tuple[float, list[int]]:
    """The reference: everything from frame 0 for one question (``streamforest.inference``, the notebook API's
    path: preprocess, ViT on every frame, fresh memory, MLP, prompt, generation); returns (latency ms, output ids)."""
    from streamforest import inference

    model, tok = loaded.model, loaded.tokenizer
    t0 = time.perf_counter()
    pixels = inference.prepare_pixels(loaded.image_processor, list(frames), model.device, model.dtype)
    visual = inference.video_features(model, pixels)
    msg = inference.stream_time_message("short_online_v2", [k + 0.5 for k in range(len(frames))], float(len(frames)))
    prompt = inference.make_prompt(tok, QUESTION, msg, visual=visual, device=model.device)
    out = inference.generate(model, tok, prompt, max_new_tokens=new_tokens)
    return 1e3 * (time.perf_counter() - t0), out.output_ids


def window_median(latency: dict[int, float], length: int, every: int, width: int = 3) -> float:
    """Median latency of the last ``width`` questions up to ``length`` frames."""
    keys = [k for k in sorted(latency) if length - width * every < k <= length]
    return statistics.median(latency[k] for k in keys)


def part1(args: argparse.Namespace, lengths_min: list[float]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from streamforest.model.loader import load_pretrained
    from streamforest.tiny import make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.model or make_tiny_checkpoint(Path(tmp) / "tiny")
        loaded = load_pretrained(ckpt, dtype="float32")
    torch.set_num_threads(args.threads)
    lengths = [int(round(m * 60)) for m in lengths_min]
    frames = synthetic_frames(max(lengths))
    bounded = run_session(loaded, frames, "bounded", args.every, lengths, args.new_tokens)
    exact = run_session(loaded, frames, "exact", args.every, lengths, args.new_tokens)
    rows = []
    for minutes, n in tqdm(list(zip(lengths_min, lengths)), desc="rebuild", leave=False):
        samples = [rebuild_once(loaded, frames[:n], args.new_tokens) for _ in range(args.rebuild_samples)]
        rebuild_ms = statistics.median(ms for ms, _ in samples)
        exact_ms = window_median(exact.latency_ms, n, args.every)
        rows.append({
            "minutes": minutes, "frames": n, "rebuild_ms": rebuild_ms,
            "exact_ms": exact_ms, "bounded_ms": window_median(bounded.latency_ms, n, args.every),
            "speedup_exact": rebuild_ms / exact_ms, "identical": samples[0][1] == exact.output_ids[n],
            "exact_mib": exact.memory_mib[n], "bounded_mib": bounded.memory_mib[n],
            "exact_tokens": exact.tokens[n], "bounded_tokens": bounded.tokens[n],
        })  # fmt: skip
    summary = {"bounded_frame_ms": bounded.frame_ms, "exact_frame_ms": exact.frame_ms,
               "bounded_peak_rss_mib": bounded.peak_rss_mib, "exact_wall_s": exact.wall_s,
               "bounded_wall_s": bounded.wall_s, "bounded_curve": bounded.latency_ms,
               "exact_curve": exact.latency_ms}  # fmt: skip
    return rows, summary


# ----------------------------------------------------------------------------------------------------------
# Part 2: the real memory size with a stand-in vision tower
# ----------------------------------------------------------------------------------------------------------


class StandInTower:
    """Random ``[729, 1152]`` features per frame with scenes of 3–20 frames (generated on demand)."""

    def __init__(self, tokens: int = 729, width: int = 1152, seed: int = 0) -> None:
        self.tokens, self.width, self.seed = tokens, width, seed
        self._scene: tuple[int, torch.Tensor, torch.Tensor] | None = None
        self._rng = np.random.default_rng(seed)
        self._left = 0

    def frame(self, k: int) -> torch.Tensor:
        if self._left == 0:
            gen = torch.Generator().manual_seed(self.seed * 100003 + k)
            base = torch.randn(self.tokens, self.width, generator=gen)
            drift = 0.05 * torch.randn(self.tokens, self.width, generator=gen)
            self._scene, self._left = (k, base, drift), int(self._rng.integers(3, 21))
        start, base, drift = self._scene
        self._left -= 1
        return base + (k - start) * drift + 0.3 * torch.randn(self.tokens, self.width)


def _real_frames(tower: StandInTower, start: int, stop: int) -> torch.Tensor:
    """Stand-in ViT features of frames ``start..stop-1`` plus the memory projector's position embedding."""
    from streamforest.pos_embed import memory_pos_embed

    feats = torch.stack([tower.frame(k) for k in range(start, stop)])
    return feats + memory_pos_embed(stop - start, 27, 1152, start=start)


def part2(args: argparse.Namespace, lengths_min: list[float]) -> list[dict[str, Any]]:
    from streamforest.memory import EventMemory, MemoryConfig

    lengths = [int(round(m * 60)) for m in lengths_min]
    rows: dict[int, dict[str, Any]] = {n: {"minutes": m, "frames": n} for m, n in zip(lengths_min, lengths)}
    with torch.no_grad():
        for mode, policy in (("bounded", "eager"), ("exact", "deferred")):
            memory, tower, add_s = EventMemory(MemoryConfig(consolidation=policy)), StandInTower(), 0.0
            for k in tqdm(range(max(lengths)), desc=f"real-size {mode}", unit="frame", leave=False):
                feats = _real_frames(tower, k, k + 1)
                t0 = time.perf_counter()
                memory.add_frames(feats)
                add_s += time.perf_counter() - t0
                if k + 1 in rows:
                    t0 = time.perf_counter()
                    tokens = memory.read()
                    row = rows[k + 1]
                    row[f"{mode}_read_ms"] = 1e3 * (time.perf_counter() - t0)
                    row[f"{mode}_tokens"] = int(tokens.shape[0])
                    row[f"{mode}_mib"] = memory.nbytes() / 2**20
                    row[f"{mode}_frame_ms"] = 1e3 * add_s / (k + 1)
                    row[f"{mode}_peak_rss_mib"] = peak_rss_mib()
            del memory
        for n, row in tqdm(list(rows.items()), desc="real-size rebuild", leave=False):
            if n > args.real_rebuild_max * 60:
                continue
            memory, tower, spent = EventMemory(MemoryConfig()), StandInTower(), 0.0
            for k in range(0, n, 32):
                feats = _real_frames(tower, k, min(n, k + 32))  # stand-in ViT: not timed
                t0 = time.perf_counter()
                memory.add_frames(feats)
                spent += time.perf_counter() - t0
            t0 = time.perf_counter()
            memory.read()
            row["rebuild_ms"] = 1e3 * (spent + time.perf_counter() - t0)
            del memory
        torch.manual_seed(0)
        mlp = torch.nn.Sequential(torch.nn.Linear(1152, 3584), torch.nn.GELU(), torch.nn.Linear(3584, 3584)).eval()
        t0 = time.perf_counter()
        mlp(torch.randn(9049, 1152))
        mlp_ms = 1e3 * (time.perf_counter() - t0)
    for row in rows.values():
        row["mlp_ms_9049"] = mlp_ms
    return list(rows.values())


# ----------------------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------------------


def markdown(rows1: list[dict[str, Any]], summary: dict[str, Any], rows2: list[dict[str, Any]] | None,
             args: argparse.Namespace) -> str:
    lines = [
        "# Streaming benchmark",
        "",
        f"`python benchmarks/streaming_bench.py {' '.join(sys.argv[1:])}` — CPU, {args.threads} thread(s), "
        f"1 frame/s, a question every {args.every} s, {args.new_tokens} new tokens per answer.",
        "",
        "## Tiny model (its own memory config): question latency",
        "",
        "Rebuild = the reference path (preprocess + ViT on every frame + fresh memory + MLP + generate; video "
        f"decoding excluded), median of {args.rebuild_samples} measured question(s) at that length. exact / bounded "
        "= median latency of the session's last 3 questions up to that length. *identical* = the exact session's "
        "generated ids equal the rebuild's.",
        "",
        "| stream | frames | rebuild ms | exact ms | bounded ms | rebuild / exact | identical | exact memory MiB | bounded memory MiB | tokens exact / bounded |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows1:
        lines.append(
            f"| {r['minutes']:g} min | {r['frames']} | {r['rebuild_ms']:.1f} | {r['exact_ms']:.1f} | {r['bounded_ms']:.1f} | "
            f"{r['speedup_exact']:.1f}× | {'yes' if r['identical'] else 'NO'} | {r['exact_mib']:.2f} | "
            f"{r['bounded_mib']:.2f} | {r['exact_tokens']} / {r['bounded_tokens']} |"
        )
    lines += [
        "",
        f"Per-frame ingest (preprocess + ViT + pos-embed + memory, batches of 8): bounded "
        f"{summary['bounded_frame_ms']:.2f} ms, exact {summary['exact_frame_ms']:.2f} ms. Peak RSS after the "
        f"{rows1[-1]['minutes']:g}-min bounded stream (model, frames held in RAM, session): "
        f"{summary['bounded_peak_rss_mib']:.0f} MiB.",
    ]
    if rows2:
        lines += [
            "",
            "## Real memory size (default MemoryConfig, 729×1152 per frame, stand-in ViT)",
            "",
            "read = `memory.read()` at question time; rebuild = a fresh memory over all frames + read (the "
            "reference also re-runs the ViT on every frame: so400m ≈ 0.58 TFLOP per frame). frame = memory "
            "update per frame (as frames arrive, off the question path). `-` = not measured. The projector MLP "
            f"(1152→3584→3584) on 9,049 tokens costs {rows2[0]['mlp_ms_9049']:.0f} ms on this CPU for every path.",
            "",
            "| stream | frames | rebuild ms | exact read ms | bounded read ms | exact frame ms | bounded frame ms | exact memory MiB | bounded memory MiB | peak RSS MiB (bounded / exact) | tokens exact / bounded |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows2:
            rebuild = f"{r['rebuild_ms']:.0f}" if "rebuild_ms" in r else "-"
            lines.append(
                f"| {r['minutes']:g} min | {r['frames']} | {rebuild} | {r['exact_read_ms']:.1f} | "
                f"{r['bounded_read_ms']:.1f} | {r['exact_frame_ms']:.1f} | {r['bounded_frame_ms']:.1f} | "
                f"{r['exact_mib']:.0f} | {r['bounded_mib']:.0f} | {r['bounded_peak_rss_mib']:.0f} / "
                f"{r['exact_peak_rss_mib']:.0f} | {r['exact_tokens']} / {r['bounded_tokens']} |"
            )
    return "\n".join(lines) + "\n"


def plot(rows1: list[dict[str, Any]], summary: dict[str, Any], rows2: list[dict[str, Any]] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if rows2 else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    ax = axes[0]
    minutes = [r["minutes"] for r in rows1]
    ax.plot(minutes, [r["rebuild_ms"] for r in rows1], "o-", label="rebuild (reference)")
    for mode, style in (("exact", "-"), ("bounded", "--")):
        curve = summary[f"{mode}_curve"]
        ax.plot([k / 60 for k in curve], list(curve.values()), style, lw=1, label=f"{mode} session (every question)")
    ax.set(xlabel="stream length (min, 1 fps)", ylabel="question latency (ms)", yscale="log",
           title="tiny model: latency per question")  # fmt: skip
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(minutes, [r["exact_mib"] for r in rows1], "o-", label="exact")
    ax.plot(minutes, [r["bounded_mib"] for r in rows1], "s--", label="bounded")
    ax.set(xlabel="stream length (min)", ylabel="memory held (MiB)", title="tiny model: memory state")
    ax.legend(fontsize=8)
    if rows2:
        ax = axes[2]
        m2 = [r["minutes"] for r in rows2]
        ax.plot(m2, [r["exact_mib"] for r in rows2], "o-", label="exact: memory held (MiB)")
        ax.plot(m2, [r["bounded_mib"] for r in rows2], "s--", label="bounded: memory held (MiB)")
        ax.plot(m2, [r["exact_read_ms"] for r in rows2], "o:", label="exact: read (ms)")
        ax.plot(m2, [r["bounded_read_ms"] for r in rows2], "s:", label="bounded: read (ms)")
        have = [r for r in rows2 if "rebuild_ms" in r]
        if have:
            ax.plot([r["minutes"] for r in have], [r["rebuild_ms"] for r in have], "^-", label="rebuild without ViT (ms)")
        ax.set(xlabel="stream length (min)", yscale="log", title="real size (1152-d, stand-in ViT)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (1, 2, 5 min; real size 2 min)")
    parser.add_argument("--minutes", type=float, nargs="+", default=None, help="stream lengths (default 1 5 15 30 60)")
    parser.add_argument("--every", type=int, default=10, help="seconds between questions")
    parser.add_argument("--new-tokens", type=int, default=4, help="generated tokens per answer")
    parser.add_argument("--rebuild-samples", type=int, default=2, help="rebuild questions measured per length")
    parser.add_argument("--model", default=None, help="checkpoint (default: a fresh tiny checkpoint)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--real-size", action="store_true", help="also run part 2 (default memory at width 1152)")
    parser.add_argument("--real-minutes", type=float, nargs="+", default=None, help="part-2 lengths (default 1 5 15 30)")
    parser.add_argument("--real-rebuild-max", type=float, default=15, help="part 2: rebuild only up to this many minutes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    lengths = args.minutes or ([1, 2, 5] if args.quick else [1, 5, 15, 30, 60])
    real = args.real_minutes or ([1, 2] if args.quick else [1, 5, 15, 30])
    if args.quick:
        args.rebuild_samples = min(args.rebuild_samples, 1)
    rows1, summary = part1(args, lengths)
    rows2 = part2(args, real) if args.real_size else None
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows1, summary, rows2, args)
    name = "streaming_bench_quick" if args.quick else "streaming_bench"
    (args.out / f"{name}.md").write_text(table, encoding="utf-8")
    plot(rows1, summary, rows2, args.out / f"{name}.png")
    print(table)
    print(json.dumps({k: v for k, v in summary.items() if not k.endswith("_curve")}, indent=1))
    print(f"wrote {args.out / (name + '.md')} and {args.out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
