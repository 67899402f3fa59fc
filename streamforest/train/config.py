"""Typed training configuration: one YAML per stage (``configs/train/``) → :class:`StageConfig`.

The YAML has three sections mirroring the reference's argument dataclasses (REFERENCE §4.2) — ``model``,
``data``, ``training`` — plus an optional ``lora`` section. A file may start from another with
``base: other.yaml`` (path relative to the file; sections are deep-merged). Command-line overrides are
dotted ``section.key=value`` pairs whose values are parsed as YAML (``training.learning_rate=2e-5``,
``model.mm_tunable_parts=[mm_mlp_adapter]``). Unknown keys are errors that name the key and the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from streamforest.model.config import STORED_ONLY_KEYS
from streamforest.prompts import TIME_MSG_INSERTIONS

logger = logging.getLogger(__name__)

ROOT_ENV = "STREAMFOREST_ROOT"
"""Relative paths of a stage config (``data.data_path``, ``training.deepspeed`` …) are relative to the working
directory (the stage scripts run from the repository root); when this variable names a directory, a relative
path that does not exist there is looked up under it."""

TUNABLE_PARTS = ("mm_mlp_adapter", "mm_vision_tower", "mm_language_model")
PROMPT_VERSIONS = ("qwen_2", "plain")
SAMPLE_TYPES = ("middle", "rand", "dynamic_fps1")
ATTN_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")


class ConfigError(ValueError):
    """A training config is invalid; the message names the file, the key and the fix."""


@dataclass
class ModelConfig:
    """What to build and what to train (ModelArguments of the reference, StreamForest path only).

    The ``mm_*`` / ``vision_encode_type`` fields are flat checkpoint keys the model reads
    (:class:`streamforest.model.config.MultimodalSettings`); the trainer writes them, over the released values
    of every other key, with :func:`streamforest.model.config.checkpoint_keys`.
    """

    model_name_or_path: str = "Qwen/Qwen2-7B-Instruct"
    """A plain Qwen2 LLM (stages 1–2) or a StreamForest checkpoint (stages 3–5, released or ours)."""
    vision_tower: str | None = "google/siglip-so400m-patch14-384"
    """SigLIP checkpoint directory/id, used when ``model_name_or_path`` is a plain LLM."""
    version: str = "qwen_2"
    mm_projector_type: str = "tome16_mlp"
    vision_encode_type: str = "image_video_new"
    mm_local_num_frames: int = 8
    mm_pos_num_frames: int = 8
    mm_tunable_parts: list[str] = field(default_factory=lambda: list(TUNABLE_PARTS))
    pretrain_mm_mlp_adapter: str | None = None
    """Stage-1 ``mm_projector.bin`` loaded into the connector (stage 2)."""
    mm_vision_select_layer: int = -2
    mm_use_im_start_end: bool = False
    mm_use_im_patch_token: bool = False
    mm_patch_merge_type: str = "flat"
    attn_implementation: str = "sdpa"
    config_overrides: dict[str, Any] = field(default_factory=dict)
    """Extra flat config keys written into the model config (e.g. a tiny ``memory_config``)."""


@dataclass
class DataConfig:
    """Data list and sampling (DataArguments of the reference) plus the skip policy."""

    data_path: str = ""
    data_root_map: dict[str, str] = field(default_factory=dict)
    frames_upbound: int = 8
    frames_lowbound: int = 1
    local_num_frames: int = 8
    sample_type: str = "middle"
    time_msg: str | None = None
    time_msg_insertion: str = "train"
    """``train``: the reference's training form of the time message; ``eval``: the form every inference path
    writes (opt-in, for models trained from scratch; docs/DEVIATIONS.md). See ``prompts.TIME_MSG_INSERTIONS``."""
    early_mix_text: bool = False
    image_aspect_ratio: str = "square"
    check_media: bool = True
    max_skip_fraction: float = 0.01
    """Stop training when more than this fraction of the samples seen so far could not be read."""
    min_samples_before_skip_check: int = 100
    """The skip fraction is only checked after this many samples (per rank)."""


@dataclass
class LoraConfig:
    """Opt-in LoRA / QLoRA (stages 4–5 single-GPU fine-tuning)."""

    enable: bool = False
    r: int = 64
    alpha: int = 16
    dropout: float = 0.05
    bias: str = "none"
    bits: int = 16
    """4 or 8 → QLoRA through bitsandbytes (CUDA only)."""
    double_quant: bool = True
    quant_type: str = "nf4"


@dataclass
class TrainingConfig:
    """Optimisation, precision, saving, logging (TrainingArguments of the reference)."""

    output_dir: str = "outputs/run"
    deepspeed: str | None = None
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    mm_projector_lr: float | None = None
    mm_vision_tower_lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    bf16: bool = True
    fp16: bool = False
    tf32: bool = False
    model_max_length: int = 32768
    gradient_checkpointing: bool = True
    save_strategy: str = "steps"
    save_steps: int = 1000
    save_total_limit: int | None = 1
    logging_steps: int = 1
    dataloader_num_workers: int = 4
    dataloader_drop_last: bool = True
    group_by_modality_length: bool = True
    torch_compile: bool = False
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    run_name: str | None = None
    seed: int = 42
    resume: str = "auto"
    """``auto`` (resume from the last ``checkpoint-*`` in ``output_dir``), ``never``, or a checkpoint path."""
    use_cpu: bool | None = None
    """``None``: on CPU when CUDA is unavailable."""
    callbacks: list[str] = field(default_factory=list)
    """Extra ``transformers.TrainerCallback`` classes as ``"package.module:ClassName"`` (built without arguments)."""
    extra_args: dict[str, Any] = field(default_factory=dict)
    """Any other ``transformers.TrainingArguments`` field, passed through verbatim."""


@dataclass
class StageConfig:
    """A whole training stage."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    source: str = ""
    """The YAML file this config was read from (for messages)."""

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what is saved next to the checkpoints)."""
        d = dataclasses.asdict(self)
        d.pop("source")
        return d


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "training": TrainingConfig, "lora": LoraConfig}


# ----------------------------------------------------------------------------------------------- parsing
def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k in SECTIONS else v
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if path in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a training config must be a mapping with sections {sorted(SECTIONS)}")
    base = doc.pop("base", None)
    if base is None:
        return doc
    base_path = (path.parent / str(base)).resolve()
    return _deep_merge(_read_yaml(base_path, (*seen, path)), doc)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to the dataclass field type (ints accepted for floats, etc.)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is None and tp is Any:
        return value
    if type(None) in args:  # Optional[X]
        if value is None or value == "None" or value == "null":
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        hint = " (YAML reads no/off/yes/on as booleans: quote the value, e.g. '\"no\"')" if isinstance(value, bool) else ""
        raise ConfigError(f"{where}: expected a string, got {value!r}{hint}")
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _build_section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: section must be a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    stored_only = [k for k in unknown if cls is ModelConfig and k in STORED_ONLY_KEYS]
    if stored_only:
        raise ConfigError(
            f"{where}: {stored_only} are reference keys the model never reads (kept verbatim in released "
            "config.json files, streamforest.model.config.STORED_ONLY_KEYS), not training options; remove them "
            "(or write them through model.config_overrides)"
        )
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()})


def apply_overrides(doc: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML)."""
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.key=value (e.g. training.learning_rate=2e-5)")
        key, raw = item.split("=", 1)
        parts = key.strip().lstrip("-").split(".")
        if len(parts) < 2 or parts[0] not in SECTIONS:
            raise ConfigError(f"override {item!r} (for {source}): the key must start with one of {sorted(SECTIONS)}, e.g. training.max_steps=10")
        value = yaml.safe_load(raw) if raw != "" else None
        section = doc.setdefault(parts[0], {})
        if len(parts) == 2:
            section[parts[1]] = value
        else:  # nested mapping field, e.g. data.data_root_map.old=new
            sub = dict(section.get(parts[1]) or {})
            sub[".".join(parts[2:])] = value
            section[parts[1]] = sub
    return doc


def validate(cfg: StageConfig) -> StageConfig:
    """Cross-field checks; every error names the file and the key."""
    src = cfg.source or "<config>"
    m, d, t, lo = cfg.model, cfg.data, cfg.training, cfg.lora
    bad = [p for p in m.mm_tunable_parts if p not in TUNABLE_PARTS]
    if bad or not m.mm_tunable_parts:
        raise ConfigError(f"{src}: model.mm_tunable_parts {m.mm_tunable_parts!r}: use a non-empty subset of {list(TUNABLE_PARTS)}")
    if m.version not in PROMPT_VERSIONS:
        raise ConfigError(f"{src}: model.version {m.version!r} is not one of {PROMPT_VERSIONS}")
    if m.attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"{src}: model.attn_implementation {m.attn_implementation!r} is not one of {ATTN_IMPLEMENTATIONS}")
    if not d.data_path:
        raise ConfigError(f"{src}: data.data_path is empty; point it at a data-list YAML (anno/data_list/...)")
    if d.sample_type not in SAMPLE_TYPES and not d.sample_type.startswith("fps"):
        raise ConfigError(f"{src}: data.sample_type {d.sample_type!r}: use one of {SAMPLE_TYPES} or fps<x>")
    if d.frames_lowbound > d.frames_upbound or d.frames_lowbound < 1:
        raise ConfigError(f"{src}: data.frames_lowbound ({d.frames_lowbound}) must be in [1, frames_upbound={d.frames_upbound}]")
    if d.local_num_frames < 1:
        raise ConfigError(f"{src}: data.local_num_frames must be >= 1")
    if d.time_msg_insertion not in TIME_MSG_INSERTIONS:
        raise ConfigError(f"{src}: data.time_msg_insertion {d.time_msg_insertion!r} is not one of {list(TIME_MSG_INSERTIONS)}")
    if not 0.0 <= d.max_skip_fraction <= 1.0:
        raise ConfigError(f"{src}: data.max_skip_fraction must be in [0, 1]")
    if t.bf16 and t.fp16:
        raise ConfigError(f"{src}: training.bf16 and training.fp16 are both true; pick one")
    if t.resume not in ("auto", "never") and not os.path.isdir(t.resume):
        raise ConfigError(f"{src}: training.resume {t.resume!r}: use 'auto', 'never' or an existing checkpoint directory")
    if lo.enable and lo.bits not in (4, 8, 16):
        raise ConfigError(f"{src}: lora.bits must be 4, 8 (QLoRA) or 16 (plain LoRA)")
    if lo.enable and "mm_language_model" not in m.mm_tunable_parts:
        raise ConfigError(f"{src}: lora.enable needs 'mm_language_model' in model.mm_tunable_parts (LoRA adapts the LLM)")
    _validate_training_numbers(t, src)
    return cfg


_AT_LEAST_ONE = ("per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps", "model_max_length")
_NON_NEGATIVE = ("weight_decay", "warmup_ratio", "max_grad_norm", "dataloader_num_workers", "mm_projector_lr", "mm_vision_tower_lr")


def _validate_training_numbers(t: TrainingConfig, src: str) -> None:
    """Numeric ranges of the ``training`` section (a bad value fails here, not as a ZeroDivisionError hours in)."""
    for name in _AT_LEAST_ONE:
        if getattr(t, name) < 1:
            raise ConfigError(f"{src}: training.{name} = {getattr(t, name)!r} must be >= 1")
    for name in _NON_NEGATIVE:
        value = getattr(t, name)
        if value is not None and value < 0:
            raise ConfigError(f"{src}: training.{name} = {value!r} must be >= 0")
    if not t.learning_rate > 0:
        raise ConfigError(f"{src}: training.learning_rate = {t.learning_rate!r} must be > 0 (e.g. 1e-5)")
    if t.max_steps <= 0 and not t.num_train_epochs > 0:
        raise ConfigError(f"{src}: training.num_train_epochs = {t.num_train_epochs!r} must be > 0 (or set training.max_steps)")
    if t.save_strategy == "steps" and t.save_steps < 1:
        raise ConfigError(f"{src}: training.save_steps = {t.save_steps!r} must be >= 1 with save_strategy 'steps'")
    if not t.output_dir:
        raise ConfigError(f"{src}: training.output_dir is empty; name the folder for checkpoints and logs")


PATH_FIELDS = {
    "model": ("model_name_or_path", "vision_tower", "pretrain_mm_mlp_adapter"),
    "data": ("data_path",),
    "training": ("output_dir", "deepspeed", "resume"),
}


def _expand_paths(cfg: StageConfig) -> None:
    """Expand ``${VAR}`` / ``~`` in path fields (tiny configs use ``${SF_TINY}``); unset variables are errors."""
    for section, names in PATH_FIELDS.items():
        obj = getattr(cfg, section)
        for name in names:
            value = getattr(obj, name)
            if not isinstance(value, str) or not value:
                continue
            expanded = os.path.expanduser(os.path.expandvars(value))
            if "$" in expanded:
                raise ConfigError(
                    f"{cfg.source}: {section}.{name} = {value!r} uses an environment variable that is not set; "
                    "export it (e.g. SF_TINY=/tmp/sf_tiny for the tiny configs) or override the key"
                )
            setattr(obj, name, expanded)
    cfg.data.data_root_map = {
        os.path.expandvars(k): os.path.expanduser(os.path.expandvars(v)) for k, v in cfg.data.data_root_map.items()
    }


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> StageConfig:
    """Read a stage YAML (following ``base:``), apply overrides, build and validate the dataclasses."""
    p = Path(path).resolve()
    doc = apply_overrides(_read_yaml(p), list(overrides or []), str(p))
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{p}: unknown top-level key(s) {unknown}; valid sections: {sorted(SECTIONS)} (and 'base')")
    sections = {name: _build_section(cls, doc.get(name), f"{p}: {name}") for name, cls in SECTIONS.items()}
    cfg = StageConfig(**sections, source=str(p))
    _expand_paths(cfg)
    return validate(cfg)


def resolve_path(path: str | None, root: str | os.PathLike[str] | None = None) -> str | None:
    """A relative path: as given if it exists from the working directory, else under ``root``
    (default ``$STREAMFOREST_ROOT``) when it exists there, else as given (the caller reports it missing)."""
    if path is None or os.path.isabs(path) or os.path.exists(path):
        return path
    base = root if root is not None else os.environ.get(ROOT_ENV)
    if not base:
        return path
    candidate = Path(base).expanduser() / path
    return str(candidate) if candidate.exists() else path


def save_config(cfg: StageConfig, out_dir: str | os.PathLike[str]) -> Path:
    """Write the resolved config to ``out_dir/train_config.yaml`` and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "train_config.yaml"
    header = f"# resolved training config (from {cfg.source}); reload with: python -m streamforest.train {target}\n"
    target.write_text(header + yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return target
