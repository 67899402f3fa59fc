"""Merge a LoRA adapter from a stage-4/5 LoRA run into a full released-format checkpoint.

    python -m streamforest.train.merge_lora RUN_DIR OUT_DIR [--base BASE_CHECKPOINT] [--dtype bfloat16]

``RUN_DIR`` is the ``output_dir`` of a run with ``lora.enable=true`` (peft adapter, ``non_lora_trainables.bin``,
``base_config/config.json``). ``--base`` defaults to the run's ``model.model_name_or_path`` (from
``train_config.yaml``). The stage's config keys (projector type, memory, …) are taken from ``base_config``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

_STAGE_KEYS_PREFIXES = ("mm_", "vision_encode_type", "memory_config", "tokenizer_", "time_msg", "image_aspect_ratio")


def _stage_overrides(run_dir: Path) -> dict[str, Any]:
    cfg_path = run_dir / "base_config" / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: RUN_DIR must be the output_dir of a lora.enable=true run")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    return {k: v for k, v in cfg.items() if k.startswith(_STAGE_KEYS_PREFIXES) and k != "mm_vision_tower"}


def _default_base(run_dir: Path) -> str:
    import yaml

    cfg = run_dir / "train_config.yaml"
    if not cfg.is_file():
        raise FileNotFoundError(f"{cfg} not found; pass --base BASE_CHECKPOINT")
    return str(yaml.safe_load(cfg.read_text(encoding="utf-8"))["model"]["model_name_or_path"])


def merge_lora(run_dir: str | Path, out_dir: str | Path, *, base: str | None = None, dtype: str = "bfloat16") -> Path:
    """Load the base checkpoint, apply the non-LoRA trainables and the adapter, merge, save (released format)."""
    from peft import PeftModel

    from streamforest.model.loader import load_pretrained, save_released
    from streamforest.train.lora import NON_LORA_FILE

    run = Path(run_dir)
    base = base or _default_base(run)
    loaded = load_pretrained(base, dtype=dtype, overrides=_stage_overrides(run))
    model = loaded.model
    extra_path = run / NON_LORA_FILE
    if extra_path.is_file():
        extra = torch.load(extra_path, map_location="cpu", weights_only=True)
        result = model.load_state_dict(extra, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"{extra_path}: keys not in the model: {result.unexpected_keys[:5]}")
    merged = PeftModel.from_pretrained(model, str(run)).merge_and_unload()
    out = save_released(merged, out_dir)
    loaded.tokenizer.save_pretrained(str(out))
    logger.info("merged LoRA run %s over %s into %s", run, base, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--base", default=None)
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    merge_lora(args.run_dir, args.out_dir, base=args.base, dtype=args.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
