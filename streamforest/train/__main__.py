"""``python -m streamforest.train CONFIG.yaml [section.key=value ...]`` — train one stage.

Examples::

    python -m streamforest.train configs/train/stage3_video_sft.yaml training.output_dir=outputs/s3
    torchrun --nproc_per_node 8 -m streamforest.train configs/train/stage4_online_ft.yaml training.max_steps=100
"""

from __future__ import annotations

import sys

from streamforest.console import say
from streamforest.train.config import ConfigError, load_config
from streamforest.train.run import run, setup_logging, shutdown
from streamforest.train.safety import CheckpointSaveError, OutputDirError, die_with_launcher


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the deepspeed launcher appends --local_rank=N; the rank comes from the environment anyway
    argv = [a for a in argv if not a.startswith("--local_rank")]
    if not argv or argv[0] in ("-h", "--help"):
        say(__doc__ or "")
        return 0 if argv else 2
    die_with_launcher()  # under torchrun: do not outlive the launcher (it started us in our own session)
    setup_logging()
    try:
        cfg = load_config(argv[0], argv[1:])
    except ConfigError as e:
        say(f"error: {e}", err=True)
        return 2
    finished = False
    try:
        run(cfg)
        finished = True
    except (OutputDirError, CheckpointSaveError) as e:
        say(f"error: {e}", err=True)
        return 1
    finally:
        shutdown(synchronise=finished)
    return 0


if __name__ == "__main__":
    sys.exit(main())
