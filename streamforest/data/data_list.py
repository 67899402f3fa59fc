"""Data-list YAML (reference format, REFERENCE §4.3) and annotation records (§4.4).

A data list is a YAML file with a top-level ``datasets:`` list. Each entry names one annotation file
(``json_path``: a ``.json`` list of records or a ``.jsonl`` file) and how to use it:

* ``sampling_strategy``: ``all`` (default), ``first:N``, ``first2:N`` / ``first3:N`` / ``first4:N`` (the 2nd,
  3rd, 4th block of N records), ``end:N`` (last N); ``N`` may be ``P%`` (``ceil(P·len/100)`` records).
* ``data_root``: prefix joined with every relative media path of the records.
* ``media_type``: ``image`` / ``video`` / ``text`` / ``mix`` (inferred from the first record when absent).
* ``video_read_type``: copied into every record (``decord``, ``av``, ``img``/``frame``).

Relative ``json_path`` / ``data_root`` values are resolved against the folder of the YAML file. Prefixes of
both can be remapped to local folders without editing the files, through the ``data_root_map`` config key
or the environment variable ``STREAMFOREST_DATA_ROOT_MAP="old=new;old2=new2"`` (longest prefix wins; the
config key takes precedence over the environment for the same prefix).

Every record is validated up front (cheap key/type checks) so that a malformed file fails at start-up with
the file, the record and the field named, not hours into a run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streamforest.video import READ_TYPES

logger = logging.getLogger(__name__)

DATA_ROOT_MAP_ENV = "STREAMFOREST_DATA_ROOT_MAP"
MEDIA_KEYS = ("image", "video")
MEDIA_TYPES = ("image", "video", "text", "mix")
VIDEO_READ_TYPES = tuple(k for k in READ_TYPES if k)
"""Accepted ``video_read_type`` values: the keys of :data:`streamforest.video.READ_TYPES`."""
_ENTRY_KEYS = {"json_path", "sampling_strategy", "data_root", "media_type", "video_read_type"}
_STRATEGY_RE = re.compile(r"^(first|first2|first3|first4|end):(\d+(?:\.\d+)?%?)$")


class DataListError(ValueError):
    """A data list or annotation file is malformed; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class DatasetEntry:
    """One ``datasets:`` entry of a data list, after path resolution and remapping."""

    json_path: str
    sampling_strategy: str = "all"
    data_root: str | None = None
    media_type: str | None = None
    video_read_type: str | None = None
    source: str = ""
    """The data-list file this entry came from (for error messages)."""


@dataclass
class DataList:
    """All records of a data list, concatenated in YAML order (no re-weighting, like the reference)."""

    records: list[dict[str, Any]]
    entries: list[DatasetEntry] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    """Number of records taken from each entry."""


# ----------------------------------------------------------------------------------------------- remapping
def parse_root_map(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse ``"old=new;old2=new2"`` (or pass a mapping through) into ``{old: new}``."""
    if spec is None or spec == "":
        return {}
    if isinstance(spec, Mapping):
        return {str(k): str(v) for k, v in spec.items()}
    out: dict[str, str] = {}
    for part in str(spec).split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise DataListError(
                f"{DATA_ROOT_MAP_ENV} / data_root_map: entry {part!r} has no '='; "
                "write it as 'old_prefix=new_prefix;other_old=other_new'"
            )
        old, new = part.split("=", 1)
        out[old.strip()] = new.strip()
    return out


def effective_root_map(config_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """The prefix map in force: the environment variable, overridden by the config key."""
    merged = parse_root_map(os.environ.get(DATA_ROOT_MAP_ENV))
    merged.update(parse_root_map(config_map))
    return merged


def remap_path(path: str, root_map: Mapping[str, str]) -> str:
    """Replace the longest matching prefix of ``path`` according to ``root_map``."""
    best = ""
    for old in root_map:
        if old and path.startswith(old) and len(old) > len(best):
            best = old
    return root_map[best] + path[len(best) :] if best else path


def _resolve(path: str, base: Path, root_map: Mapping[str, str]) -> str:
    path = remap_path(os.path.expandvars(os.path.expanduser(path)), root_map)
    if "://" in path or os.path.isabs(path):
        return path
    return str((base / path).resolve())


# ----------------------------------------------------------------------------------------------- sampling
def apply_sampling_strategy(records: list[Any], strategy: str, *, where: str = "") -> list[Any]:
    """Select records by the reference's ``sampling_strategy`` (REFERENCE §4.3).

    ``first:N`` → ``records[:N]``; ``firstK:N`` → ``records[(K-1)N : KN]``; ``end:N`` → ``records[-N:]``;
    ``N`` may be ``P%`` → ``ceil(P·len/100)``.
    """
    strategy = str(strategy).strip()
    if strategy == "all":
        return records
    m = _STRATEGY_RE.match(strategy)
    if m is None:
        raise DataListError(
            f"{where}: sampling_strategy {strategy!r} is not supported; use 'all', 'first:N', 'first2:N', "
            "'first3:N', 'first4:N' or 'end:N' (N an integer or a percentage like '10%')"
        )
    kind, amount = m.groups()
    if amount.endswith("%"):
        n = math.ceil(float(amount[:-1]) * len(records) / 100)
    else:
        if "." in amount:
            raise DataListError(f"{where}: sampling_strategy {strategy!r}: N must be an integer or 'P%'")
        n = int(amount)
    if kind == "end":
        return records[-n:] if n > 0 else []
    block = 1 if kind == "first" else int(kind[-1])
    return records[(block - 1) * n : block * n]


# ----------------------------------------------------------------------------------------------- validation
def _turn_text(turn: Any, *, first: bool, where: str) -> None:
    if not isinstance(turn, dict):
        raise DataListError(f"{where}: each turn of 'conversations' must be an object, got {type(turn).__name__}")
    if "from" in turn:
        role, value = turn.get("from"), turn.get("value")
        if role not in ("human", "gpt", "system"):
            raise DataListError(f"{where}: turn field 'from' is {role!r}; expected 'human' or 'gpt'")
        if not isinstance(value, str):
            raise DataListError(f"{where}: turn field 'value' must be a string, got {type(value).__name__}")
    elif not first and "role" in turn:
        if not isinstance(turn.get("content"), str):
            raise DataListError(f"{where}: turn with 'role' needs a string 'content'")
    else:
        raise DataListError(
            f"{where}: turn has neither 'from'/'value' nor 'role'/'content' (the first turn must use 'from')"
        )


def validate_record(record: Any, where: str) -> None:
    """Check the keys the dataset reads (REFERENCE §4.4); raise :class:`DataListError` naming ``where``."""
    if not isinstance(record, dict):
        raise DataListError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise DataListError(f"{where}: field 'conversations' is missing or empty; every record needs a non-empty list of turns")
    for t, turn in enumerate(conv):
        _turn_text(turn, first=t == 0, where=f"{where} conversations[{t}]")
    for key in MEDIA_KEYS:
        if key in record:
            val = record[key]
            ok = isinstance(val, str) and val != "" or (
                isinstance(val, list) and val and all(isinstance(v, str) and v for v in val)
            )
            if not ok:
                raise DataListError(f"{where}: field {key!r} must be a non-empty path or list of paths, got {val!r}")
    for key in ("start", "end", "fps"):
        if key in record and record[key] is not None and not isinstance(record[key], (int, float)):
            raise DataListError(f"{where}: field {key!r} must be a number of seconds, got {record[key]!r}")
    start, end = record.get("start"), record.get("end")
    if start is not None and end is not None and end <= start:
        raise DataListError(f"{where}: clip 'end' ({end}) must be greater than 'start' ({start})")


# ----------------------------------------------------------------------------------------------- loading
def _read_annotations(path: str, where: str) -> list[Any]:
    if "://" in path:
        raise DataListError(f"{where}: json_path {path!r} is a remote URL; download it and point json_path (or data_root_map) at the local file")
    if not os.path.isfile(path):
        raise DataListError(
            f"{where}: json_path {path!r} does not exist; download the annotations (see anno/README.md) or remap the "
            f"prefix with data_root_map / {DATA_ROOT_MAP_ENV}='old=new'"
        )
    try:
        if path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataListError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise DataListError(
            f"{path}: not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at offset {e.start}); annotation files "
            "must be UTF-8: re-encode it (e.g. iconv -f latin1 -t utf-8)"
        ) from e
    if not isinstance(data, list):
        raise DataListError(f"{path}: a .json annotation file must hold a list of records, got {type(data).__name__}")
    return data


def _parse_entry(raw: Any, i: int, yaml_path: Path, root_map: Mapping[str, str]) -> DatasetEntry:
    where = f"{yaml_path}: datasets[{i}]"
    if not isinstance(raw, dict):
        raise DataListError(f"{where}: each entry must be a mapping with at least 'json_path'")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise DataListError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
    if "json_path" in raw and not isinstance(raw["json_path"], str):
        raise DataListError(
            f"{where}: field 'json_path' must be one path (a string), got {raw['json_path']!r}; "
            "list several annotation files as separate entries under 'datasets:'"
        )
    if not raw.get("json_path"):
        raise DataListError(f"{where}: field 'json_path' is missing; give the path of a .json or .jsonl annotation file")
    media_type = raw.get("media_type")
    if media_type is not None and media_type not in MEDIA_TYPES:
        raise DataListError(f"{where}: media_type {media_type!r} is not one of {MEDIA_TYPES}")
    read_type = raw.get("video_read_type")
    if read_type is not None and read_type not in VIDEO_READ_TYPES:
        raise DataListError(f"{where}: video_read_type {read_type!r} is not one of {VIDEO_READ_TYPES}")
    base = yaml_path.parent
    data_root = raw.get("data_root")
    return DatasetEntry(
        json_path=_resolve(raw["json_path"], base, root_map),
        sampling_strategy=str(raw.get("sampling_strategy", "all")),
        data_root=_resolve(str(data_root), base, root_map) if data_root else None,
        media_type=media_type,
        video_read_type=read_type,
        source=str(yaml_path),
    )


def _infer_media_type(records: list[dict[str, Any]]) -> str:
    if not records:
        return "text"
    first = records[0]
    return "image" if "image" in first else "video" if "video" in first else "text"


def _join_media(record: dict[str, Any], entry: DatasetEntry, root_map: Mapping[str, str]) -> None:
    for key in MEDIA_KEYS:
        if key not in record:
            continue
        val = record[key]

        def one(p: str) -> str:
            p = remap_path(p, root_map)
            if entry.data_root and not os.path.isabs(p) and "://" not in p:
                p = os.path.join(entry.data_root, p)
            return p

        record[key] = [one(v) for v in val] if isinstance(val, list) else one(val)


def _check_media_exists(records: list[dict[str, Any]], entry: DatasetEntry, where: str) -> None:
    """Reference check: at least one of the first three records' media must exist locally."""
    paths: list[str] = []
    for rec in records[:3]:
        for key in MEDIA_KEYS:
            val = rec.get(key)
            if val is not None:
                paths.extend(val if isinstance(val, list) else [val])
    if paths and not any(os.path.exists(p) for p in paths):
        raise DataListError(
            f"{where}: none of the first records' media exist (e.g. {paths[0]!r}); set data_root in the data list, "
            f"or remap the prefix with data_root_map / {DATA_ROOT_MAP_ENV}='{entry.data_root or '<old>'}=<local folder>'"
        )


def load_entry(entry: DatasetEntry, root_map: Mapping[str, str], *, check_media: bool = True) -> list[dict[str, Any]]:
    """Read, sample, validate and path-resolve the records of one entry."""
    where = f"{entry.source}: {entry.json_path}"
    records = apply_sampling_strategy(_read_annotations(entry.json_path, where), entry.sampling_strategy, where=where)
    for i, rec in enumerate(records):
        validate_record(rec, f"{entry.json_path} record {i}")
    media_type = entry.media_type or _infer_media_type(records)
    out = []
    for i, rec in enumerate(records):
        rec = dict(rec)
        rec.setdefault("id", i)
        rec["_source"] = entry.json_path
        if entry.video_read_type is not None:
            rec["video_read_type"] = entry.video_read_type
        if media_type not in ("text", "mix") or entry.data_root:
            _join_media(rec, entry, root_map)
        out.append(rec)
    if check_media and media_type not in ("text", "mix"):
        _check_media_exists(out, entry, where)
    return out


def load_data_list(
    path: str | os.PathLike[str],
    *,
    data_root_map: Mapping[str, str] | str | None = None,
    check_media: bool = True,
) -> DataList:
    """Load every dataset of a data-list YAML into one validated record list (YAML order).

    Args:
        path: the ``.yaml`` data list (``.json`` data paths are refused, like the reference).
        data_root_map: ``{old_prefix: new_prefix}`` (or ``"old=new;..."``), merged over the environment's
            ``STREAMFOREST_DATA_ROOT_MAP``; applied to ``json_path``, ``data_root`` and record media paths.
        check_media: check that the first records' media exist (the reference's start-up assertion).
    """
    yaml_path = Path(path)
    if yaml_path.suffix not in (".yaml", ".yml"):
        raise DataListError(f"data_path {str(path)!r}: must be a .yaml data list with a 'datasets:' key (see anno/data_list/)")
    if not yaml_path.is_file():
        raise DataListError(f"data_path {str(path)!r} does not exist; point data.data_path at a data list under anno/data_list/")
    try:
        doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataListError(f"{yaml_path}: invalid YAML: {e}") from e
    except UnicodeDecodeError as e:
        raise DataListError(f"{yaml_path}: not UTF-8 text (offset {e.start}); save the data list as UTF-8") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), list) or not doc["datasets"]:
        raise DataListError(f"{yaml_path}: top-level key 'datasets' is missing or empty; expected 'datasets:' followed by a list of entries")
    root_map = effective_root_map(parse_root_map(data_root_map))
    entries = [_parse_entry(raw, i, yaml_path, root_map) for i, raw in enumerate(doc["datasets"])]
    records: list[dict[str, Any]] = []
    counts = []
    for entry in entries:
        recs = load_entry(entry, root_map, check_media=check_media)
        logger.info("data list %s: %d records from %s (%s)", yaml_path.name, len(recs), entry.json_path, entry.sampling_strategy)
        records.extend(recs)
        counts.append(len(recs))
    if not records:
        raise DataListError(f"{yaml_path}: the data list selects no records; check sampling_strategy and json_path")
    return DataList(records=records, entries=entries, counts=counts)
