"""``python -m streamforest.synthetic OUT_DIR [--seed 0] [--train-videos N] [--eval-videos M] [--quick]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields

from streamforest.console import say
from streamforest.synthetic.dataset import QUICK, DatasetParams, generate_dataset


def _parser() -> argparse.ArgumentParser:
    defaults = {f.name: f.default for f in fields(DatasetParams)}
    p = argparse.ArgumentParser(prog="python -m streamforest.synthetic", description=__doc__)
    p.add_argument("out_dir", help="folder to write the dataset into (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="master seed (same seed -> identical dataset)")
    p.add_argument("--train-videos", type=int, default=None, help=f"training videos (default {defaults['n_train_videos']})")
    p.add_argument("--eval-videos", type=int, default=None, help=f"held-out eval videos (default {defaults['n_eval_videos']})")
    p.add_argument("--train-questions", type=int, default=defaults["train_questions_per_video"], help="online MC questions per training video")
    p.add_argument("--eval-questions", type=int, default=defaults["eval_questions_per_video"], help="questions per eval video")
    p.add_argument("--min-seconds", type=int, default=None, help="shortest video length in seconds")
    p.add_argument("--max-seconds", type=int, default=None, help="longest video length in seconds")
    p.add_argument("--fps", type=int, default=defaults["fps"], help="native frame rate")
    p.add_argument("--size", type=int, nargs=2, default=(defaults["width"], defaults["height"]), metavar=("W", "H"), help="frame size in pixels")
    p.add_argument("--quick", action="store_true", help="tiny preset for smoke tests (8 train / 12 eval videos of 12-16 s)")
    p.add_argument("--force", action="store_true", help="regenerate even if a complete dataset with the same parameters exists")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    base = dict(QUICK) if args.quick else {}
    lo, hi = base.get("duration_range", DatasetParams.duration_range)
    kwargs = {
        "seed": args.seed,
        "n_train_videos": args.train_videos or base.get("n_train_videos", DatasetParams.n_train_videos),
        "n_eval_videos": args.eval_videos or base.get("n_eval_videos", DatasetParams.n_eval_videos),
        "train_questions_per_video": args.train_questions,
        "eval_questions_per_video": args.eval_questions,
        "duration_range": (args.min_seconds or lo, args.max_seconds or hi),
        "fps": args.fps,
        "width": args.size[0],
        "height": args.size[1],
        "images_per_video": base.get("images_per_video", DatasetParams.images_per_video),
    }
    try:
        paths = generate_dataset(args.out_dir, force=args.force, progress=True, **kwargs)
    except ValueError as exc:
        say(f"error: {exc}", err=True)
        return 2
    manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
    say(f"dataset: {paths.root}  ({manifest['generation_seconds']} s, codec {manifest['codec']})")
    for key, value in manifest["counts"].items():
        say(f"  {key:32s} {value}")
    say("  bytes: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in manifest["bytes"].items()))
    say("eval chance level per config / sub-task:")
    for config, info in manifest["eval"].items():
        say(f"  {config:60s} n={info['n']:4d} chance={info['chance']:.3f}")
        for sub, s in info.get("subtasks", {}).items():
            say(f"      {sub:56s} n={s['n']:4d} chance={s['chance']:.3f} answers={s['answers']}")
    say(f"data lists: {paths.data_lists['stage1'].parent}")
    say(f"ODV-Bench split: {paths.eval_root}  (videos root: {paths.videos_eval})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
