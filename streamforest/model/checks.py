"""Checkpoint sanity checks run by :func:`streamforest.model.loader.load_pretrained` (cheap, before and after
loading), so that a damaged checkpoint fails with the file, the field and the fix instead of answering ``''``.

* :func:`check_config_values` — numeric ``config.json`` fields have numeric values (``"hidden_size": "64"``);
* :func:`check_tokenizer_files` — the tokenizer files are there (without them every answer decodes to ``''``);
* :func:`check_weight_files` — every safetensors file is present and not truncated (header only, no tensor
  is read) and the embedding / LM-head shapes agree with ``vocab_size`` / ``hidden_size``;
* :func:`check_finite` — the loaded weights are finite (one reduction per tensor).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

INT_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings",
)
FLOAT_FIELDS = ("rms_norm_eps", "rope_theta", "initializer_range")
VISION_INT_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZER_VOCABS = (("tokenizer.json",), ("vocab.json", "merges.txt"))
"""A fast tokenizer file, or the slow tokenizer's vocabulary and merges (Qwen2's BPE)."""


class CheckpointError(ValueError):
    """A checkpoint directory is damaged or inconsistent; the message names the file and the fix."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_config_values(raw: Mapping[str, Any], cfg_path: Path) -> None:
    """Numeric fields of ``config.json`` (and of its ``vision_config``) must be JSON numbers."""
    sections: list[tuple[str, Mapping[str, Any], tuple[str, ...], tuple[str, ...]]] = [("", raw, INT_FIELDS, FLOAT_FIELDS)]
    if isinstance(raw.get("vision_config"), Mapping):
        sections.append(("vision_config.", raw["vision_config"], VISION_INT_FIELDS, ()))
    for prefix, section, ints, floats in sections:
        for name in ints:
            if name in section and section[name] is not None and not _is_int(section[name]):
                raise CheckpointError(
                    f"{cfg_path}: field '{prefix}{name}' = {section[name]!r} must be an integer (write it without quotes)"
                )
        for name in floats:
            value = section.get(name)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                raise CheckpointError(f"{cfg_path}: field '{prefix}{name}' = {value!r} must be a number (write it without quotes)")


def check_tokenizer_files(ckpt: Path) -> None:
    """Refuse a checkpoint without its tokenizer files (naming the missing ones)."""
    missing = [] if (ckpt / TOKENIZER_CONFIG).is_file() else [TOKENIZER_CONFIG]
    if not any(all((ckpt / f).is_file() for f in group) for group in TOKENIZER_VOCABS):
        missing.append(" or ".join(" + ".join(group) for group in TOKENIZER_VOCABS))
    if missing:
        raise CheckpointError(
            f"checkpoint {ckpt} has no tokenizer: missing {', '.join(missing)}; copy the tokenizer files of the "
            "model it was trained from (e.g. the base Qwen2 checkpoint) into this directory"
        )


def weight_files(ckpt: Path) -> list[Path]:
    """The safetensors files of a checkpoint (from the index when sharded); missing shards are errors."""
    index = ckpt / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as err:
            raise CheckpointError(f"{index}: not a valid safetensors index ({err}); re-save or re-download the checkpoint") from err
        missing = [n for n in names if not (ckpt / n).is_file()]
        if missing:
            raise CheckpointError(f"{index} lists weight files that are missing: {missing}; re-download the checkpoint")
        return [ckpt / n for n in names]
    return sorted(ckpt.glob("*.safetensors"))


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, after checking that the file holds every tensor it declares."""
    size = path.stat().st_size
    hint = "the file is truncated or damaged (an interrupted download or save): re-download or re-save it"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: {size} bytes, too short for a safetensors file; {hint}")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise CheckpointError(f"{path}: header of {n} bytes but the file has {size}; {hint}")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{path}: unreadable safetensors header ({err}); {hint}") from err
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(f"{path}: {size} bytes but its header declares {8 + n + end}; {hint}")
    return header


def check_weight_files(ckpt: Path, config: Any) -> None:
    """Headers of every weight file are complete; embedding / LM-head shapes match the config's sizes."""
    vocab, hidden = getattr(config, "vocab_size", None), getattr(config, "hidden_size", None)
    for path in weight_files(ckpt):
        header = read_safetensors_header(path)
        for name in ("model.embed_tokens.weight", "lm_head.weight"):
            if name in header and list(header[name]["shape"]) != [vocab, hidden]:
                raise CheckpointError(
                    f"{path}: tensor {name} has shape {header[name]['shape']} but {ckpt / 'config.json'} says "
                    f"vocab_size={vocab}, hidden_size={hidden}; the config does not belong to these weights (fix "
                    "vocab_size / hidden_size in config.json to the tensor's shape)"
                )


def check_finite(model: torch.nn.Module, ckpt: Path) -> None:
    """Every parameter is finite: a float32 sum per tensor (NaN/Inf propagate), exact check only on a hit."""
    bad = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.is_floating_point() and not bool(torch.isfinite(p.sum(dtype=torch.float32))):
                count = int((~torch.isfinite(p)).sum())
                if count:
                    bad.append(f"{name} ({count} of {p.numel()})")
    if bad:
        raise CheckpointError(
            f"checkpoint {ckpt} has non-finite (NaN/Inf) weights in {len(bad)} tensor(s): {', '.join(bad[:5])}; "
            "the training run that wrote it diverged or the files are damaged: use an earlier checkpoint"
        )
