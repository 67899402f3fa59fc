"""GPU validation of the real-size StreamForest at random initialisation: speed, memory, numerical health (not a test).

    python benchmarks/gpu_check.py                      # full run on one GPU (≤ 10 min), results in benchmarks/results/
    python benchmarks/gpu_check.py --only intake ttft   # some sections
    python benchmarks/gpu_check.py --tiny --out /tmp/g  # the same code on the CPU with the tiny configs (seconds)
    python benchmarks/gpu_check.py --tiny --train ...   # + the DeepSpeed training steps on the CPU (gloo)

The model is built from the project's configs (``streamforest.tiny.real_config``: SigLIP so400m truncated to 26
layers, the ``tome729_fstw_pemf`` projector with the default memory, Qwen2-7B) directly on the device in bf16 —
no download, no CPU copy of the 7B weights. No tokenizer either: prompts are random token ids of the right
lengths. Sections (each guarded: a failure is recorded and the next section runs):

* ``intake``   — batch-1 frame intake (processor + ViT + pos-embed + memory update) p50/p95; ViT frames/s at
  batch 32/128 with sdpa and flash-attention 2 (when installed);
* ``ttft``     — LLM time to first token at the 8K default and the 1K (``demo_online``) budgets, full prefill and
  with a prefix KV cache hit; decode tokens/s;
* ``sessions`` — ``exact`` and ``bounded`` memories after 5 and 30 simulated minutes at 1 fps: question latency;
* ``hour``     — a 1-hour bounded stream through the real ViT, then a question: peak GPU memory;
* ``numerics`` — bf16 vs fp32 visual tokens and first-token logits, sdpa vs flash-attention, ViT batch-invariance;
* ``train_lora`` / ``train_full`` / ``train_compile`` — one stage-4 step under DeepSpeed on one device.

Peak memory is ``torch.cuda.max_memory_allocated`` per measured step (n/a on CPU). The run has a time budget
(``--budget-s``, 540 s from process start for full runs): a section whose estimate would overrun it is skipped and says so.
Writes ``gpu_<device>.md`` (a table per section, targets included) and ``gpu_<device>.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

T_START = time.perf_counter()  # the time budget counts from here (imports and CUDA start-up included)
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
from gpu_check_lib import FULL, TINY, Ctx  # noqa: E402
from gpu_check_sections import (  # noqa: E402
    section_hour,
    section_intake,
    section_numerics,
    section_sessions,
    section_ttft,
)
from gpu_check_train import Skip, section_train_compile, section_train_full, section_train_lora  # noqa: E402

RESULTS = HERE / "results"
TRAIN_SECTIONS = ("train_lora", "train_full", "train_compile")
SECTIONS: dict[str, tuple[Callable[[Ctx], dict[str, Any]], float, str]] = {
    # name: (function, estimated seconds on one H100/H200, title)
    "intake": (section_intake, 45, "1. Frame intake"),
    "ttft": (section_ttft, 30, "2a. Question latency (LLM): TTFT and decode"),
    "sessions": (section_sessions, 120, "2b. Sessions after N simulated minutes (1 fps)"),
    "hour": (section_hour, 120, "3. Peak memory: 1-hour bounded stream"),
    "numerics": (section_numerics, 40, "4. Numerics"),
    "train_lora": (section_train_lora, 90, "5a. Training: stage-4 step, LoRA"),
    "train_full": (section_train_full, 240, "5b. Training: stage-4 step, full fine-tune"),
    "train_compile": (section_train_compile, 200, "5c. Training: stage-4 step, LoRA + torch.compile"),
}
TARGETS = [
    ("frame intake p50 (batch 1)", "≤ 8 ms on an H100-class GPU", "intake"),
    ("TTFT at 8K visual tokens", "≤ 300 ms (paper: 0.78–1.50 s on an A100)", "ttft"),
    ("TTFT at 1K visual tokens", "≤ 40 ms", "ttft"),
    ("peak GPU memory, 1-hour bounded stream + question", "≤ 18 GB (paper: ≈ 17 GB flat)", "hour"),
]

logger = logging.getLogger("gpu_check")


def environment(ctx: Ctx) -> dict[str, Any]:
    import transformers

    env = {"device": torch.cuda.get_device_name(ctx.device) if ctx.cuda else f"CPU ({platform.processor() or platform.machine()})",
           "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
           "python": platform.python_version(), "dtype": str(ctx.dtype).replace("torch.", ""), "scale": ctx.scale.name,
           "cpu_threads": torch.get_num_threads()}  # fmt: skip
    try:
        import flash_attn

        env["flash_attn"] = flash_attn.__version__
    except ImportError:
        env["flash_attn"] = None
    try:
        import deepspeed

        env["deepspeed"] = deepspeed.__version__
    except ImportError:
        env["deepspeed"] = None
    return env


def run_sections(
    ctx: Ctx,
    names: Sequence[str],
    budget_s: float,
    train: bool,
    start: float | None = None,
    after: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run each section guarded; skip those that would overrun ``budget_s`` (counted from ``start``, full runs)
    or are not asked for. ``after(results)`` runs after every section (the report is rewritten each time, so a
    run killed from outside still leaves what it measured)."""
    results: dict[str, Any] = {}
    start = time.perf_counter() if start is None else start
    for name in names:
        fn, estimate, title = SECTIONS[name]
        elapsed = time.perf_counter() - start
        entry: dict[str, Any] = {"title": title, "rows": [], "notes": []}
        if name in TRAIN_SECTIONS and ctx.tiny and not train:
            entry.update(status="skipped", reason="--tiny: training sections run only with --train (DeepSpeed "
                         "builds a CPU communication op on first use, minutes on a fresh machine)")  # fmt: skip
        elif not ctx.tiny and elapsed + estimate > budget_s:
            entry.update(status="skipped", reason=f"time budget: {elapsed:.0f} s used, ≈ {estimate:.0f} s needed, "
                         f"budget {budget_s:.0f} s (--budget-s, --only)")  # fmt: skip
        else:
            t0 = time.perf_counter()
            # full runs: a section may take 1.5x its estimate, never past the budget (streams stop early)
            ctx.deadline = math.inf if ctx.tiny else min(t0 + 1.5 * estimate, start + budget_s)
            try:
                entry.update(fn(ctx), status="ok")
            except Skip as e:
                entry.update(status="skipped", reason=str(e))
            except Exception as e:  # noqa: BLE001 - one failing section must not stop the others
                entry.update(status="failed", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
                if ctx.cuda:
                    torch.cuda.empty_cache()
            entry["elapsed_s"] = time.perf_counter() - t0
        print(f"[gpu_check] {name:<14} {entry['status']:<8} {entry.get('elapsed_s', 0.0):7.1f} s"  # noqa: T201
              f"  (total {time.perf_counter() - start:6.1f} s)" + (f"  {entry['reason']}" if "reason" in entry else ""),
              flush=True)  # fmt: skip
        results[name] = entry
        if after is not None:
            after(results)
    return results


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def table(rows: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) if k in row else "" for k in keys) + " |" for row in rows]
    return lines


def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets with the measured value next to them."""

    def rows(name: str) -> list[dict[str, Any]]:
        entry = results.get(name, {})
        return entry.get("rows", []) if entry.get("status") == "ok" else []

    intake = next((r["p50_ms"] for r in rows("intake") if r.get("measure", "").endswith("total")), None)
    # TTFT: median full prefill (no prefix cache); peak: GiB (2^30 bytes)
    ttft = {r["budget"]: r["ttft_full_ms"] for r in rows("ttft")}
    peak = [r["stream_peak_gib"] for r in rows("hour")] + [r["question_peak_gib"] for r in rows("hour")]
    measured = [intake, next((v for k, v in ttft.items() if "8K" in k), None),
                next((v for k, v in ttft.items() if "1K" in k), None),
                max((v for v in peak if v is not None), default=None)]  # fmt: skip
    units = ["ms", "ms", "ms", "GiB"]
    out = []
    for (what, target, section), value, unit in zip(TARGETS, measured, units):
        status = results.get(section, {}).get("status", "not run")
        shown = f"{_fmt(value)} {unit}" if value is not None else ("n/a (CPU)" if status == "ok" else status)
        out.append({"measure": what, "target": target, "measured": shown})
    return out


def write_report(results: dict[str, Any], env: dict[str, Any], out_dir: Path, command: str, wall_s: float) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", env["device"]).strip("_").lower() or "device"
    md_path, json_path = out_dir / f"gpu_{slug}.md", out_dir / f"gpu_{slug}.json"
    head = headline(results)
    lines = [f"# GPU check: {env['device']}", "", f"`{command}` — total {wall_s:.0f} s.", "",
             " · ".join(f"{k} {v}" for k, v in env.items() if k != "device"), "", "## Targets", ""]  # fmt: skip
    lines += table(head)
    skipped = [(n, e) for n, e in results.items() if e["status"] != "ok"]
    if skipped:
        lines += ["", "## Skipped or failed", ""]
        lines += [f"* `{n}` — **{e['status']}**: {e.get('reason', '')}" for n, e in skipped]
    for name, entry in results.items():
        lines += ["", f"## {entry['title']} (`{name}`: {entry['status']}, {entry.get('elapsed_s', 0.0):.1f} s)", ""]
        if entry["rows"]:
            lines += table(entry["rows"])
        lines += [""] + [f"* {note}" for note in entry.get("notes", [])]
        if entry["status"] != "ok":
            lines.append(f"* {entry['status']}: {entry.get('reason', '')}")
    md_path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    doc = {"environment": env, "command": command, "wall_s": wall_s, "targets": head, "sections": results}
    json_path.write_text(json.dumps(doc, indent=2, default=str, allow_nan=True), encoding="utf-8")
    return md_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="results directory (full runs: benchmarks/results)")
    parser.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (the test-suite smoke run)")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), metavar="NAME", help=f"sections: {', '.join(SECTIONS)}")
    parser.add_argument("--train", action="store_true", help="--tiny: also run the DeepSpeed training sections")
    parser.add_argument("--budget-s", type=float, default=540.0,
                        help="time budget of a full run from process start (default 540: a 10-minute slot with margin)")  # fmt: skip
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args(argv)
    if args.tiny and args.out is None:
        parser.error("--tiny needs --out DIR (tiny results never go into the repository)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu"))
    if device.type == "cpu" and not args.tiny:
        print("[gpu_check] no CUDA device: use --tiny for the CPU smoke run", file=sys.stderr)  # noqa: T201
        return 2
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # bf16 CPU kernels are slow
    ctx = Ctx(scale=TINY if args.tiny else FULL, device=device, dtype=dtype, tiny=args.tiny)
    names = [n for n in SECTIONS if not args.only or n in args.only]
    command = ("python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    env = environment(ctx)

    def report(results: dict[str, Any]) -> Path:
        env["model_build_s"] = round(ctx.build_s, 1)
        return write_report(results, env, args.out or RESULTS, command, time.perf_counter() - T_START)

    results = run_sections(ctx, names, args.budget_s, args.train, start=T_START, after=report)
    path = report(results)
    print(f"[gpu_check] wrote {path} and {path.with_suffix('.json')}")  # noqa: T201
    return 0 if all(e["status"] != "failed" for e in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
