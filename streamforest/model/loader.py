"""Load and save StreamForest checkpoints in the released format (REFERENCE §3) — never touching the network.

Released format: ``config.json`` (a Qwen2 config with flat ``mm_*`` keys, ``"model_type": "qwen2"``,
``"architectures": ["LlavaQwenForCausalLM"]``), sharded safetensors with the names of REFERENCE §3.2
(``model.vision_tower.vision_tower.vision_model.*``, ``model.mm_projector.mlp.{0,2}.*``, Qwen2 names,
untied ``lm_head``) and the tokenizer files.

* :func:`load_pretrained` dispatches on ``architectures[0]`` (not ``model_type``), accepts both
  ``"qwen2"`` and ``"llava_qwen"``, refuses missing/unexpected/mis-shaped weights, honours ``dtype``
  (``"auto"`` = the checkpoint's ``torch_dtype``) and never resizes the embeddings (reference bug 16).
* :func:`load_tokenizer` loads the tokenizer exactly as the checkpoint's ``tokenizer.json`` describes it (the one
  tokenizer load path of the package).
* :func:`save_released` writes exactly that format (our own writer, explicit key mapping).
* :func:`to_released_key` / :func:`from_released_key` map between our module names (transformers 5's
  flattened ``SiglipVisionModel``) and the released names.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from streamforest.model import checks
from streamforest.model.config import LlavaQwenConfig
from streamforest.model.llava_qwen import LlavaQwenForCausalLM
from streamforest.model.processor import SigLipImageProcessor
from streamforest.model.projectors import PROJECTOR_TYPES
from streamforest.model.vision import resolve_attn_implementation

logger = logging.getLogger(__name__)

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "LoadedModel",
    "from_released_key",
    "is_streamforest_checkpoint",
    "load_config",
    "load_pretrained",
    "load_tokenizer",
    "read_config_json",
    "resolve_dtype",
    "resolve_local_dir",
    "save_released",
    "to_released_key",
    "to_released_state_dict",
]

SUPPORTED_ARCHITECTURES = ("LlavaQwenForCausalLM",)
_NATIVE = "model.vision_tower.vision_tower."
_RELEASED = "model.vision_tower.vision_tower.vision_model."
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


class LoadedModel(NamedTuple):
    """What :func:`load_pretrained` returns (the reference builder's 4-tuple, named)."""

    tokenizer: Any
    model: Any
    image_processor: SigLipImageProcessor | None
    context_len: int


def to_released_key(name: str) -> str:
    """Our state-dict name → released name (adds the ``vision_model.`` level of the SigLIP weights)."""
    if name.startswith(_NATIVE) and not name.startswith(_RELEASED):
        return _RELEASED + name[len(_NATIVE) :]
    return name


def from_released_key(name: str) -> str:
    """Released name → our state-dict name (drops the ``vision_model.`` level)."""
    if name.startswith(_RELEASED):
        return _NATIVE + name[len(_RELEASED) :]
    return name


def to_released_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename every key of ``state_dict`` with :func:`to_released_key`."""
    return {to_released_key(k): v for k, v in state_dict.items()}


def resolve_dtype(dtype: str | torch.dtype | None, config: Mapping[str, Any] | None = None) -> torch.dtype:
    """``"auto"``/None → the checkpoint's ``torch_dtype`` (``dtype``) or float32; names and aliases accepted."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        stored = (config or {}).get("torch_dtype") or (config or {}).get("dtype")
        return _DTYPES.get(str(stored).replace("torch.", ""), torch.float32) if stored else torch.float32
    key = str(dtype).replace("torch.", "").lower()
    if key not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use 'auto', 'float32', 'bfloat16' or 'float16'")
    return _DTYPES[key]


def resolve_local_dir(path: str | Path, what: str = "checkpoint") -> Path:
    """A local model directory for ``path``: the directory itself, or a hub id already in the local HF cache.

    Never downloads. ``what`` names the setting in the error message (e.g. ``"model.vision_tower"``).
    """
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise NotADirectoryError(f"{what} path {local} is a file; pass the model directory")
    if str(path).count("/") == 1 and not str(path).startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(str(path), local_files_only=True))
        except Exception:  # noqa: BLE001 - any failure means "not in the cache"
            pass
    raise FileNotFoundError(
        f"{what} {str(path)!r} does not exist locally and is not in the HF cache; download it first (e.g. "
        f"`huggingface-cli download {path} --local-dir <dir>`) and pass the directory"
    )



def read_config_json(model_dir: Path) -> dict[str, Any]:
    """``model_dir/config.json`` as a dict (clear errors for a missing or invalid file)."""
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: a model directory needs config.json")
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{cfg_path} is not valid JSON: {err}") from err


def is_streamforest_checkpoint(model_dir: str | Path | Mapping[str, Any]) -> bool:
    """True when a model directory (or its parsed ``config.json``) is a StreamForest/LlavaQwen checkpoint
    rather than a plain LLM: dispatch on ``architectures[0]`` (not ``model_type``) or the ``mm_vision_tower`` key."""
    raw = model_dir if isinstance(model_dir, Mapping) else read_config_json(Path(model_dir))
    return (raw.get("architectures") or [""])[0] in SUPPORTED_ARCHITECTURES or "mm_vision_tower" in raw


def _read_config_json(ckpt: Path) -> dict[str, Any]:
    raw = read_config_json(ckpt)
    archs = raw.get("architectures") or []
    if not archs or archs[0] not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"{ckpt / 'config.json'}: field 'architectures' = {archs!r} is not supported; expected "
            f"{list(SUPPORTED_ARCHITECTURES)} (a StreamForest/LlavaQwen checkpoint)"
        )
    return raw


def load_config(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    memory_config: Mapping[str, Any] | None = None,
) -> LlavaQwenConfig:
    """Read ``config.json`` (released or ours), apply ``overrides`` and ``memory_config``, validate."""
    ckpt = resolve_local_dir(path)
    raw = _read_config_json(ckpt)
    raw.update(dict(overrides or {}))
    checks.check_config_values(raw, ckpt / "config.json")
    if memory_config is not None:
        raw["memory_config"] = {**(raw.get("memory_config") or {}), **dict(memory_config)}
    raw.pop("model_type", None)  # released files say "qwen2", ours "llava_qwen": both describe this class
    config = LlavaQwenConfig.from_dict({k: v for k, v in raw.items() if k != "transformers_version"})
    projector = getattr(config, "mm_projector_type", None)
    if config.is_multimodal and projector not in PROJECTOR_TYPES:
        raise ValueError(
            f"{ckpt / 'config.json'}: field 'mm_projector_type' = {projector!r} is not a known projector; "
            f"use one of {list(PROJECTOR_TYPES)}"
        )
    if config.is_multimodal:
        config.multimodal.validate()
    return config


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer of a checkpoint (or LLM) directory, exactly as its files describe it.

    With a ``tokenizer.json``: a ``PreTrainedTokenizerFast`` over that file as written, plus the special tokens,
    padding side and maximum length of ``tokenizer_config.json`` — ids equal
    ``tokenizers.Tokenizer.from_file(<dir>/tokenizer.json)``, as with transformers 4.x in the reference.
    ``AutoTokenizer`` is not used there: under transformers 5 it resolves ``model_type: "qwen2"`` to
    ``Qwen2Tokenizer``, which replaces the file's pre-tokenizer with its own regex (identical for Qwen2's own
    files, different ids for any other). Without ``tokenizer.json`` (``vocab.json`` + ``merges.txt`` only) the
    directory is loaded with ``AutoTokenizer``.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    ckpt = resolve_local_dir(path)
    has_file = (ckpt / "tokenizer.json").is_file()
    try:
        if has_file:
            return PreTrainedTokenizerFast.from_pretrained(str(ckpt))
        logger.info("%s has no tokenizer.json; loading its tokenizer with AutoTokenizer", ckpt)
        return AutoTokenizer.from_pretrained(str(ckpt))
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"no usable tokenizer in {ckpt} (tokenizer.json / tokenizer_config.json): {err}"
        ) from err


def _check_loading_info(ckpt: Path, info: Mapping[str, Any]) -> None:
    problems = []
    for field, label in (
        ("missing_keys", "missing"),
        ("unexpected_keys", "unexpected"),
        ("mismatched_keys", "mis-shaped"),
    ):
        names = sorted(str(n if isinstance(n, str) else n[0]) for n in info.get(field) or [])
        if names:
            shown = ", ".join(to_released_key(n) for n in names[:5])
            problems.append(f"{len(names)} {label} (first: {shown})")
    if problems:
        raise ValueError(
            f"checkpoint {ckpt} does not match the model built from its config.json: "
            + "; ".join(problems)
            + ". Check 'mm_projector_type', 'vision_config' and the Qwen2 sizes in config.json, "
            "or that the weights are complete"
        )


def load_pretrained(
    path: str | Path,
    *,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device = "cpu",
    attn_implementation: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    memory_config: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load tokenizer, model (eval mode), image processor and context length from a local checkpoint.

    Args:
        path: checkpoint directory (or a hub id already in the local HF cache).
        dtype: ``"auto"`` (the checkpoint's ``torch_dtype``; bf16 for the released models), a dtype or a name.
        device: where to put the model.
        attn_implementation: ``"sdpa"`` (default), ``"eager"`` or ``"flash_attention_2"`` (needs flash-attn).
        overrides: config keys to overwrite (the reference's ``overwrite_config``).
        memory_config: ``MemoryConfig`` fields to overwrite (merged over ``config.json``'s ``memory_config``).
    """
    ckpt = resolve_local_dir(path)
    config = load_config(ckpt, overrides, memory_config)
    checks.check_tokenizer_files(ckpt)
    checks.check_weight_files(ckpt, config)
    torch_dtype = resolve_dtype(dtype, _read_config_json(ckpt))
    attn = resolve_attn_implementation(attn_implementation)
    model, info = LlavaQwenForCausalLM.from_pretrained(
        str(ckpt), config=config, dtype=torch_dtype, attn_implementation=attn, output_loading_info=True
    )
    _check_loading_info(ckpt, info)
    checks.check_finite(model, ckpt)
    model.to(device=torch.device(device)).eval()
    tokenizer = load_tokenizer(ckpt)
    processor = None
    if config.is_multimodal:
        processor = SigLipImageProcessor(size=model.get_vision_tower().image_size)
    context_len = int(getattr(config, "max_position_embeddings", 2048))
    logger.info("loaded %s (%s, %s) from %s", type(model).__name__, torch_dtype, device, ckpt)
    return LoadedModel(tokenizer, model, processor, context_len)


def _shards(state: dict[str, Tensor], max_shard_bytes: int) -> list[dict[str, Tensor]]:
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for name in sorted(state):
        nbytes = state[name].numel() * state[name].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = state[name]
        size += nbytes
    return shards


def save_released(
    model: Any,
    out_dir: str | Path,
    *,
    model_type: str = "llava_qwen",
    max_shard_bytes: int = 2 * 1024**3,
    extra_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a released-format checkpoint (config.json + safetensors shards + index).

    ``model_type="qwen2"`` reproduces the released files byte-for-byte in structure; the default
    ``"llava_qwen"`` is the correct value and loads everywhere ours does (both are accepted on load).
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = to_released_state_dict({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()})
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    shards = _shards(state, max_shard_bytes)
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    weight_map: dict[str, str] = {}
    for name, shard in zip(names, shards):
        save_file(shard, str(out / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    cfg = model.config.to_dict()
    cfg.update(dict(extra_config or {}))
    cfg.update({"model_type": model_type, "architectures": [type(model).__name__]})
    cfg["torch_dtype"] = str(model.dtype).replace("torch.", "")
    cfg.pop("dtype", None)
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n")
    logger.info("saved %d tensors in %d shard(s) to %s", len(state), len(shards), out)
    return out


def num_parameters(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Total number of elements over a name → shape mapping."""
    return sum(math.prod(s) for s in shapes.values())
