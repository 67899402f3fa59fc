"""The summary of ``make demo`` (:mod:`streamforest.demo`): accuracy per sub-task of the trained and the
untrained model against chance, the streaming answers, paths and times; written to ``summary.json`` and printed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from streamforest.console import say
from streamforest.demo_watch import print_watch

if TYPE_CHECKING:
    from streamforest.demo import Ctx

__all__ = ["chance_levels", "print_summary", "summarize"]


def chance_levels(manifest: Path) -> dict[str, float]:
    """Chance accuracy per sub-task and overall, from the synthetic manifest."""
    ev = json.loads(manifest.read_text(encoding="utf-8"))["eval"]
    out = {"overall": float(ev["overall"]["chance"])}
    for block in ev.values():
        for sub, stats in (block.get("subtasks") or {}).items():
            out[sub] = float(stats["chance"])
    return out


def summarize(ctx: Ctx, results: dict[str, dict], seconds: float) -> dict:
    """The summary written to ``summary.json`` (and printed)."""
    chance = chance_levels(Path(results["data"]["manifest"]))
    trained, untrained = results["eval_trained"]["scores"], results["eval_untrained"]["scores"]
    forced = results["forced_choice"]
    rows = []
    for sub in [k for k in trained if k != "overall"] + ["overall"]:
        rows.append({"subtask": sub, "n": trained[sub]["n"], "chance": chance.get(sub),
                     "untrained": untrained.get(sub, {}).get("accuracy"), "trained": trained[sub]["accuracy"],
                     "untrained_strict": untrained.get(sub, {}).get("strict"), "trained_strict": trained[sub]["strict"],
                     "untrained_forced": forced["untrained"].get(sub), "trained_forced": forced["trained"].get(sub)})  # fmt: skip
    return {
        "size": asdict(ctx.size),
        "out_dir": str(ctx.out),
        "trained_checkpoint": str(ctx.trained_ckpt),
        "untrained_checkpoint": str(ctx.init_ckpt),
        "accuracy": rows,
        "eval_results": {"trained": results["eval_trained"]["results"], "untrained": results["eval_untrained"]["results"]},
        "training": {"stage2": results["stage2"]["metrics"], "stage4": results["stage4"]["metrics"]},
        "stream": results["stream"],
        "watch": results["watch"],
        "step_seconds": results["_seconds"],
        "total_seconds": seconds,
    }


def print_summary(summary: dict) -> None:
    def pct(v: float | None) -> str:
        return "   –  " if v is None else f"{100 * v:5.1f}%"

    say("")
    say("=" * 78)
    say("StreamForest demo — synthetic ODV-Bench split (held-out videos), lmms-eval odvbench_accuracy")
    say(f"{'':<37}{'generated answer':^21}  {'forced choice':^21}")
    say(f"{'sub-task':<24}{'n':>5}  {'chance':>7}  {'untrained':>9}  {'trained':>8}  {'untrained':>9}  {'trained':>8}")
    for r in summary["accuracy"]:
        if r["subtask"] == "overall":
            say("-" * 83)
        say(f"{r['subtask']:<24}{r['n']:>5}  {pct(r['chance']):>7}  {pct(r['untrained']):>9}  {pct(r['trained']):>8}"
            f"  {pct(r['untrained_forced']):>9}  {pct(r['trained_forced']):>8}")
    say("generated answer: lmms-eval odvbench_accuracy on the text the model writes (an untrained model writes no"
        " letter);")
    say("forced choice: the option letter the model scores highest (StreamForest.option_scores).")
    st = summary["stream"]
    say("")
    say(f"Streaming session on {Path(st['video']).name} (streamforest stream, frames encoded once):")
    for a in st["answers"]:
        mark = "ok " if a["model"].strip().upper().startswith(a["expected"]) else "   "
        say(f"  [{a['time']:5.1f} s] {mark}{a['question']:<58} model: {a['model'][:12]!r:<8} truth: {a['expected']} ({a['answer_text']})")
    print_watch(summary["watch"])
    say("")
    say(f"trained checkpoint:   {summary['trained_checkpoint']}")
    say(f"untrained checkpoint: {summary['untrained_checkpoint']}")
    say(f"lmms-eval results:    {summary['eval_results']['trained']}")
    say(f"summary:              {Path(summary['out_dir']) / 'summary.json'}")
    say(f"total time:           {summary['total_seconds'] / 60:.1f} min (steps: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in summary["step_seconds"].items()) + ")")  # fmt: skip
