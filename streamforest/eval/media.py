"""Where evaluation annotations and videos live, and how a doc becomes an lmms-eval visual.

Locations come from one file, ``streamforest/assets/eval_paths.yaml`` (shipped with the package, documented
there; its relative roots are relative to the working directory), or your own copy named by ``SF_EVAL_PATHS``,
overridable by environment variables (``SF_EVAL_ANNO_ROOT``, ``SF_EVAL_VIDEO_ROOT``, ``SF_ANNO_<KEY>``,
``SF_VIDEOS_<KEY>``). Nothing here is cluster specific: no ``s3://`` roots, no absolute defaults.

lmms-eval YAML cannot read environment variables, so our tasks load a one-row placeholder JSON and replace
it in ``process_docs`` by the docs that :func:`load_docs` reads from the resolved folder (see
``lmms_eval/README.md``). A visual is ``[path, media_dict]`` with ``video_read_type`` (``decord`` for a
video file, ``img`` for a folder of frames) and, when the doc has them, ``start``/``end`` (seconds, the
online question time is the clip end) and ``fps`` (frame folders).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

DEFAULT_PATHS_FILE = Path(str(files("streamforest") / "assets" / "eval_paths.yaml"))
"""The shipped paths configuration (package data); its relative roots resolve against the working directory."""
ANNOTATION_SUFFIXES = (".json", ".jsonl", ".parquet")
VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov")


class AnnotationError(ValueError):
    """Missing or malformed evaluation annotation (the message names the file, the field and the fix)."""


class MediaNotFoundError(FileNotFoundError):
    """A video or frame folder that a doc refers to does not exist (the message says what to download)."""


def show_eval_logs(level: int = logging.INFO) -> None:
    """Make the ``streamforest.eval`` logs (annotation layout read, per-category breakdowns) visible when lmms-eval
    runs our tasks: lmms-eval logs through loguru and leaves the standard ``logging`` module unconfigured. Does
    nothing when the application has configured logging itself (a root handler exists)."""
    log = logging.getLogger("streamforest.eval")
    if log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)


# ----------------------------------------------------------------------------------------------------------
# Paths configuration
# ----------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _read_paths_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict):
        raise AnnotationError(
            f"{path}: expected a mapping with a 'benchmarks' section (see streamforest/assets/eval_paths.yaml)"
        )
    return data


def paths_config() -> tuple[dict[str, Any], Path]:
    """The paths configuration and the directory its relative paths are relative to."""
    override = os.environ.get("SF_EVAL_PATHS")
    if override:
        path = Path(override).expanduser().resolve()
        if not path.is_file():
            raise AnnotationError(
                f"SF_EVAL_PATHS={override}: no such file (unset it or point it to a paths.yaml)"
            )
        return _read_paths_file(str(path)), path.parent
    if not DEFAULT_PATHS_FILE.is_file():
        raise AnnotationError(
            f"{DEFAULT_PATHS_FILE} not found (the package data is incomplete; reinstall streamforest) or "
            "set SF_EVAL_PATHS to a file of the format of streamforest/assets/eval_paths.yaml"
        )
    return _read_paths_file(str(DEFAULT_PATHS_FILE)), Path.cwd()


def benchmark_settings(bench: str) -> dict[str, Any]:
    """The ``benchmarks.<bench>`` section of the paths configuration."""
    config, _ = paths_config()
    try:
        return dict(config["benchmarks"][bench])
    except KeyError:
        known = ", ".join(sorted(config["benchmarks"]))
        raise AnnotationError(
            f"unknown benchmark '{bench}' in the eval paths config (known: {known})"
        ) from None


def _env_key(bench: str) -> str:
    return bench.upper()


def _resolve(value: str, base: Path) -> Path:
    path = Path(os.path.expandvars(value)).expanduser()
    return path if path.is_absolute() else (base / path)


def _root(kind: str) -> Path:
    config, base = paths_config()
    env = os.environ.get(f"SF_EVAL_{kind.upper()}_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    default = "anno/eval" if kind == "anno" else "data/eval_videos"
    return _resolve(str(config.get(f"{kind}_root", default)), base)


def anno_dir(bench: str, *, must_exist: bool = True) -> Path:
    """Annotation folder of ``bench`` (``SF_ANNO_<KEY>`` > ``anno_root``/``benchmarks.<bench>.anno``)."""
    settings = benchmark_settings(bench)
    env = os.environ.get(f"SF_ANNO_{_env_key(bench)}")
    path = (
        Path(env).expanduser().resolve() if env else _resolve(str(settings.get("anno", bench)), _root("anno"))
    )
    if must_exist and not path.is_dir():
        raise AnnotationError(
            f"annotation folder for {bench} not found: {path}. Download {settings.get('anno_source', 'its annotations')} "
            f"and put it there, or point SF_ANNO_{_env_key(bench)} (or SF_EVAL_ANNO_ROOT) to where it is."
        )
    return path


def video_dir(bench: str, config: str | None = None) -> Path:
    """Video folder of ``bench`` (``SF_VIDEOS_<KEY>`` > ``video_root``/``videos``), plus the config's subdir."""
    settings = benchmark_settings(bench)
    env = os.environ.get(f"SF_VIDEOS_{_env_key(bench)}")
    path = (
        Path(env).expanduser().resolve()
        if env
        else _resolve(str(settings.get("videos", bench)), _root("video"))
    )
    subdir = (settings.get("subdirs") or {}).get(config) if config is not None else None
    return path / str(subdir) if subdir else path


def reader_for(bench: str, config: str | None) -> str:
    """``img`` for frame-folder configs (``benchmarks.<bench>.readers``), else ``decord`` (a video file)."""
    readers = benchmark_settings(bench).get("readers") or {}
    return str(readers.get(config, "decord"))


def frame_fps_for(bench: str, config: str | None) -> float | None:
    """Configured fps of a frame-folder config (used when the doc has no ``fps`` field)."""
    value = (benchmark_settings(bench).get("frame_fps") or {}).get(config)
    return float(value) if value is not None else None


# ----------------------------------------------------------------------------------------------------------
# Annotations
# ----------------------------------------------------------------------------------------------------------


def annotation_files(bench: str, config: str) -> list[Path]:
    """Files holding ``config`` of ``bench``: ``<anno>/<config>.{json,jsonl,parquet}`` or ``<anno>/<config>/*``."""
    root = anno_dir(bench)
    for suffix in ANNOTATION_SUFFIXES:
        single = root / f"{config}{suffix}"
        if single.is_file():
            return [single]
    folder = root / config
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in ANNOTATION_SUFFIXES and p.is_file())
        if files:
            return files
    raise AnnotationError(
        f"{root}: no annotation for config '{config}' of {bench} (looked for {config}.json/.jsonl/.parquet and "
        f"{config}/*.json|jsonl|parquet). Download {benchmark_settings(bench).get('anno_source', 'it')} into {root}."
    )


def _read_annotation_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc}); re-download the file") from exc
    if isinstance(data, dict):  # tolerate {"data": [...]} style wrappers with exactly one list value
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise AnnotationError(f"{path}: expected a JSON list of docs (or an object holding one list)")
        data = lists[0]
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of docs, got {type(data).__name__}")
    return data


def check_docs(docs: Sequence[Any], required: Sequence[str], source: str, bench: str) -> None:
    """Each doc must be an object with the ``required`` fields (the error names ``source`` and the doc)."""
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise AnnotationError(f"{source}: doc {i} is a {type(doc).__name__}, expected an object")
        missing = [field for field in required if field not in doc]
        if missing:
            raise AnnotationError(
                f"{source}: doc {i} lacks field(s) {missing} required by {bench}; fix the annotation "
                f"(docs need {list(required)})"
            )
        _check_clip(doc, f"{source}: doc {i}")
        _check_answer(doc, f"{source}: doc {i}")


def _check_clip(doc: Mapping[str, Any], where: str) -> None:
    """A doc's ``start`` / ``end`` (seconds, when present) must be numbers with ``0 <= start < end``: a clip that
    ends at or before its start would be answered ``''`` for every model."""
    bounds = {}
    for field in ("start", "end"):
        value = doc.get(field)
        if not _present(value):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AnnotationError(f"{where}: field '{field}' = {value!r} is not a number of seconds")
        bounds[field] = float(value)
    start, end = bounds.get("start", 0.0), bounds.get("end")
    if start < 0 or (end is not None and end <= start):
        raise AnnotationError(
            f"{where}: clip start={doc.get('start')!r}, end={doc.get('end')!r} s is empty or negative; fix the "
            "annotation (0 <= start < end, in seconds)"
        )


def _check_answer(doc: Mapping[str, Any], where: str) -> None:
    """A multiple-choice doc's ``answer`` must be one of its ``candidates`` (else it is scored wrong silently),
    unless the doc names the answer's letter (``sf_answer_letter``, official release files)."""
    candidates, answer = doc.get("candidates"), doc.get("answer")
    if doc.get("sf_answer_letter") or not isinstance(candidates, (list, tuple)) or not isinstance(answer, str):
        return
    if answer not in candidates:
        raise AnnotationError(
            f"{where}: field 'answer' = {answer!r} is not one of its candidates {list(candidates)!r}; fix the "
            "annotation (the answer must equal one candidate exactly)"
        )


def load_docs(bench: str, config: str, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """All docs of ``config``, each checked to be an object with the ``required`` fields."""
    docs: list[dict[str, Any]] = []
    for path in annotation_files(bench, config):
        file_docs = _read_annotation_file(path)
        check_docs(file_docs, required, str(path), bench)
        docs.extend(file_docs)
    if not docs:
        raise AnnotationError(f"{anno_dir(bench)}: config '{config}' of {bench} holds no docs")
    logger.info("%s/%s: %d docs", bench, config, len(docs))
    return docs


def docs_to_dataset(docs: Sequence[Mapping[str, Any]], source: str = "annotations") -> Any:
    """A ``datasets.Dataset`` with the union of the docs' fields (missing values are ``None``)."""
    import datasets
    import pyarrow as pa

    keys = list(dict.fromkeys(k for doc in docs for k in doc))
    columns: dict[str, Any] = {}
    for key in keys:
        values = [doc.get(key) for doc in docs]
        try:
            columns[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise AnnotationError(
                f"{source}: field '{key}' mixes value types across docs ({exc}); make it uniform"
            ) from exc
    return datasets.Dataset(pa.table(columns))


DocLoader = Callable[[str, str, Sequence[str]], list[dict[str, Any]]]


def make_process_docs(
    bench: str, config: str, required: Sequence[str] = (), loader: DocLoader | None = None
) -> Callable[[Any], Any]:
    """An lmms-eval ``process_docs`` that ignores the placeholder split and returns the real docs, each
    tagged with ``sf_config`` (the config name: it selects the video sub-folder and labels breakdowns).
    ``loader(bench, config, required)`` reads the docs (default :func:`load_docs`)."""

    def process_docs(placeholder: Any) -> Any:
        del placeholder
        docs = [{**doc, "sf_config": config} for doc in (loader or load_docs)(bench, config, required)]
        return docs_to_dataset(docs, source=f"{anno_dir(bench)}/{config}")

    process_docs.__name__ = f"process_docs_{bench}_{config}"
    process_docs.__qualname__ = process_docs.__name__
    return process_docs


# ----------------------------------------------------------------------------------------------------------
# Visuals
# ----------------------------------------------------------------------------------------------------------


def _present(value: Any) -> bool:
    return value is not None and value == value  # None and NaN (parquet nulls) mean "absent"


def resolve_media(bench: str, config: str | None, relative: str, suffixes: Iterable[str] = ()) -> Path:
    """Absolute path of a doc's video (or frame folder); tries ``relative + suffix`` for each suffix."""
    folder = video_dir(bench, config)
    candidates = [folder / relative] + [folder / f"{relative}{s}" for s in suffixes]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    settings = benchmark_settings(bench)
    raise MediaNotFoundError(
        f"{bench}: video '{relative}' not found under {folder}. Download {settings.get('video_source', 'the videos')} "
        f"and put the files there, or point SF_VIDEOS_{_env_key(bench)} (or SF_EVAL_VIDEO_ROOT) to them."
    )


def build_visual(
    path: str | os.PathLike[str],
    *,
    start: float | None = None,
    end: float | None = None,
    read_type: str = "decord",
    fps: float | None = None,
) -> list[Any]:
    """``[path, media_dict]`` as the adapter reads it (``start``/``end`` only together; seconds)."""
    media: dict[str, Any] = {"video_read_type": read_type}
    if _present(start):
        media["start"] = float(start)  # type: ignore[arg-type]
        media["end"] = float(end) if _present(end) else None  # type: ignore[arg-type]
    if _present(fps):
        media["fps"] = float(fps)  # type: ignore[arg-type]
    return [str(path), media]


def doc_visual(
    bench: str, config: str | None, doc: Mapping[str, Any], video_field: str = "video"
) -> list[Any]:
    """The visual of a common-format doc: ``<videos>/<subdir>/<doc[video_field]>``, its clip and fps."""
    read_type = reader_for(bench, config)
    path = resolve_media(bench, config, str(doc[video_field]))
    if read_type == "img" and not path.is_dir():
        raise MediaNotFoundError(f"{bench}/{config}: '{path}' should be a folder of frames (reader 'img')")
    fps = None
    if read_type == "img":  # only frame folders take an fps (the doc's, else the configured one)
        fps = doc.get("fps") if _present(doc.get("fps")) else frame_fps_for(bench, config)
    return build_visual(path, start=doc.get("start"), end=doc.get("end"), read_type=read_type, fps=fps)
