"""Readers for the benchmarks' own annotation releases (OVO-Bench, StreamingBench), beside the StreamForest layout.

The task folders read the StreamForest annotation release (``<anno>/<config>.json`` …, see
:mod:`streamforest.eval.media`). A researcher who holds a benchmark's *official* release can drop its file, unchanged
and under its release name, into the same annotation folder instead:

* OVO-Bench: ``<SF_ANNO_OVOBENCH>/ovo_bench_new.json`` — its 1,468 multiple-choice entries become the docs of the
  real-time (OCR, ACR, ATR, STU, FPD, OJR) and backward (EPM, ASI, HLD) tracks, its 172 forward-active-responding
  entries their 1,567 probes (one per ``test_info`` item) with OVO-Bench's own REC/SSR/CRR prompts;
* StreamingBench: ``<SF_ANNO_STREAMINGBENCH>/questions_real.json`` — 2,500 real-time questions.

Every doc is in the common format (``video``, ``question``, ``candidates``, ``answer``, ``start``/``end`` …) plus
``sf_layout = "official"``; multiple-choice docs carry ``sf_answer_letter`` (the letter of the official answer index,
exact even when two options read the same). Videos are found under the benchmark's video folder by the file's own
relative paths (``Ego4D/clips/….mp4``, ``./videos/sample_1_real.mp4``). Building docs never opens a video.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamforest.eval import media
from streamforest.eval.media import AnnotationError
from streamforest.eval.scoring import OPTION_LETTERS

logger = logging.getLogger(__name__)

LAYOUT_OFFICIAL = "official"
LAYOUT_STREAMFOREST = "streamforest"

OVOBENCH_FILE = "ovo_bench_new.json"
STREAMINGBENCH_REAL_FILE = "questions_real.json"
STREAMINGBENCH_PROACTIVE_FILE = "questions_proactive.json"

OVO_REAL_TIME_TASKS = ("OCR", "ACR", "ATR", "STU", "FPD", "OJR")
OVO_BACKWARD_TASKS = ("EPM", "ASI", "HLD")
OVO_FORWARD_TASKS = ("REC", "SSR", "CRR")

# OVO-Bench's forward-active-responding prompts (OVO-Bench ``constant.py``), verbatim: leading and trailing newline,
# trailing spaces and typographic quotes included. ``{}`` is the REC question / SSR step / CRR question.
OVO_REC_TEMPLATE = (
    "\n"
    "You're watching a video in which people may perform a certain type of action repetively. \n"
    "The person performing this kind of action are referred to as 'they' in the following statement.\n"
    "You're task is to count how many times have different people in the video perform this kind of action in total.\n"
    "One complete motion counts as one. \n"
    "Now, answer the following question: {}\n"
    "Provide your answer as a single number (e.g., 0, 1, 2, 3\u2026) indicating the total count.\n"
    "Do not include any additional text or explanation in your response.\n"
)
OVO_SSR_TEMPLATE = (
    "\n"
    "You're watching a tutorial video which contain a sequential of steps. \n"
    "The following is one step from the whole procedures: \n"
    "{}\n"
    "Your task is to determine if the man or woman in the video is currently performing this step.\n"
    "Answer only with \u201cYes\u201d or \u201cNo\u201d.\n"
    "Do not include any additional text or explanation in your response.\n"
)
OVO_CRR_TEMPLATE = (
    "\n"
    "You're responsible of answering questions based on the video content. \n"
    "The following question are relevant to the latest frames, i.e. the end of the video.\n"
    "{}\n"
    "Decide whether existing visual content, especially latest frames, i.e. frames that near the end of the video, "
    "provide enough information for answering the question.\n"
    "Answer only with \u201cYes\u201d or \u201cNo\u201d.\n"
    "Do not include any additional text or explanation in your response.\n"
)


# ----------------------------------------------------------------------------------------------------------
# Field checks (every message names the file, the entry and the field)
# ----------------------------------------------------------------------------------------------------------


def read_release_json(path: Path) -> Any:
    """The parsed JSON of an official release file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc}); re-download the official file") from exc


def _fail(where: str, field: str, problem: str) -> AnnotationError:
    return AnnotationError(
        f"{where}: field '{field}' {problem}; fix the entry or re-download the official file"
    )


def _field(entry: Mapping[str, Any], field: str, where: str) -> Any:
    if not isinstance(entry, Mapping):
        raise AnnotationError(f"{where}: expected an object, got {type(entry).__name__}")
    if entry.get(field) is None:
        raise _fail(where, field, "is missing")
    return entry[field]


def _text(entry: Mapping[str, Any], field: str, where: str) -> str:
    value = _field(entry, field, where)
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, field, f"must be a non-empty string, got {value!r}")
    return value


def _seconds(entry: Mapping[str, Any], field: str, where: str) -> float:
    value = _field(entry, field, where)
    try:
        seconds = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds >= 0:
        raise _fail(where, field, f"must be a time in seconds >= 0, got {value!r}")
    return seconds


def _index(entry: Mapping[str, Any], field: str, where: str, size: int) -> int:
    value = _field(entry, field, where)
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) >= size:
        raise _fail(where, field, f"must be the index (0..{size - 1}) of the correct option, got {value!r}")
    return int(text)


def _options(entry: Mapping[str, Any], field: str, where: str) -> list[str]:
    """A list of option strings, given as a list or as a string holding a Python list literal."""
    value = _field(entry, field, where)
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise _fail(where, field, "is a string but not a Python list literal") from None
    if not isinstance(value, list) or len(value) < 2:
        raise _fail(where, field, f"must be a list of at least two options, got {value!r}")
    if len(value) > len(OPTION_LETTERS) or not all(isinstance(o, (str, int, float)) for o in value):
        raise _fail(where, field, f"must hold option strings, got {value!r}")
    return [str(o) for o in value]


# ----------------------------------------------------------------------------------------------------------
# OVO-Bench (ovo_bench_new.json)
# ----------------------------------------------------------------------------------------------------------


def _ovo_entries(data: Any, source: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """``(where, task, entry)`` for every entry of the file (the task code is checked to be known)."""
    if not isinstance(data, list):
        raise AnnotationError(
            f"{source}: expected the JSON list of OVO-Bench entries, got {type(data).__name__}"
        )
    known = OVO_REAL_TIME_TASKS + OVO_BACKWARD_TASKS + OVO_FORWARD_TASKS
    for i, entry in enumerate(data):
        where = f"{source}: entry {i}" + (f" (id {entry.get('id')})" if isinstance(entry, Mapping) else "")
        task = _text(entry, "task", where)
        if task not in known:
            raise _fail(where, "task", f"is {task!r}, not one of {list(known)}")
        yield where, task, entry


def _ovo_base(entry: Mapping[str, Any], task: str, where: str, end: float) -> dict[str, Any]:
    """Fields shared by every OVO-Bench doc (``id`` is the entry's integer id, -1 when it has none)."""
    entry_id = entry.get("id")
    return {"video": _text(entry, "video", where), "subtask": task, "start": 0.0, "end": end,
            "id": entry_id if isinstance(entry_id, int) and not isinstance(entry_id, bool) else -1,
            "sf_layout": LAYOUT_OFFICIAL}  # fmt: skip


def ovobench_mc_docs(data: Any, source: str, tasks: Sequence[str]) -> list[dict[str, Any]]:
    """Multiple-choice docs of the entries whose task is in ``tasks``: options from ``options`` (list or list
    literal), answer from the index ``gt``, question time ``realtime`` → clip ``[0, realtime]``."""
    docs = []
    for where, task, entry in _ovo_entries(data, source):
        if task not in tasks:
            continue
        options = _options(entry, "options", where)
        gt = _index(entry, "gt", where, len(options))
        doc = _ovo_base(entry, task, where, _seconds(entry, "realtime", where))
        doc.update(question=_text(entry, "question", where), candidates=options, answer=options[gt],
                   sf_answer_letter=OPTION_LETTERS[gt])  # fmt: skip
        docs.append(doc)
    return docs


def _yes_no(probe: Mapping[str, Any], where: str) -> str:
    value = _field(probe, "type", where)
    if value not in (0, 1) or isinstance(value, bool):
        raise _fail(where, "type", f"must be 1 (yes) or 0 (no), got {value!r}")
    return "Yes" if value == 1 else "No"


def _far_probe(task: str, entry: Mapping[str, Any], where: str, j: int) -> tuple[str, str, float]:
    """``(prompt, answer, realtime)`` of probe ``j`` of a forward entry (OVO-Bench's template for the task)."""
    probe_where = f"{where} test_info[{j}]"
    probe = entry["test_info"][j]
    realtime = _seconds(probe, "realtime", probe_where)
    if task == "REC":
        count = _field(probe, "count", probe_where)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise _fail(probe_where, "count", f"must be a count (integer >= 0), got {count!r}")
        question = "How many times did they " + _text(entry, "activity", where) + "?"
        return OVO_REC_TEMPLATE.format(question), str(count), realtime
    if task == "SSR":
        return (
            OVO_SSR_TEMPLATE.format(_text(probe, "step", probe_where)),
            _yes_no(probe, probe_where),
            realtime,
        )
    return OVO_CRR_TEMPLATE.format(_text(entry, "question", where)), _yes_no(probe, probe_where), realtime


def ovobench_far_docs(data: Any, source: str) -> list[dict[str, Any]]:
    """One doc per ``test_info`` probe of the REC/SSR/CRR entries: OVO-Bench's prompt, clip ``[0, realtime]``,
    answer the count (REC) or ``Yes``/``No`` (SSR/CRR, from the probe's ``type``)."""
    docs = []
    for where, task, entry in _ovo_entries(data, source):
        if task not in OVO_FORWARD_TASKS:
            continue
        probes = _field(entry, "test_info", where)
        if not isinstance(probes, list) or not probes:
            raise _fail(where, "test_info", "must be a non-empty list of probes")
        for j in range(len(probes)):
            prompt, answer, realtime = _far_probe(task, entry, where, j)
            doc = _ovo_base(entry, task, where, realtime)
            doc.update(question=prompt, answer=answer, probe=j)
            docs.append(doc)
    return docs


# ----------------------------------------------------------------------------------------------------------
# StreamingBench (questions_real.json; the proactive file shares the video/question structure)
# ----------------------------------------------------------------------------------------------------------

_CLOCK = re.compile(r"^\d{1,2}:[0-5]?\d:[0-5]?\d$")


def parse_time_stamp(text: Any, where: str, field: str = "time_stamp") -> float:
    """Seconds of a StreamingBench ``"HH:MM:SS"`` time, by StreamingBench's own rule (the ``:``-separated parts
    are base-60 digits from the right), so the release's few malformed stamps (``"00:24"``, ``"00:12450"``) read
    as that rule reads them; they are logged as a warning."""
    parts = str(text).split(":") if isinstance(text, str) else []
    if not parts or not all(p.strip().isdigit() for p in parts):
        raise _fail(where, field, f"must be a time 'HH:MM:SS', got {text!r}")
    seconds = float(sum(int(p) * 60**i for i, p in enumerate(reversed(parts))))
    if not _CLOCK.match(text):
        logger.warning(
            "%s: %s %r is not HH:MM:SS; read as %.0f s (StreamingBench's rule)", where, field, text, seconds
        )
    return seconds


def iter_streamingbench_questions(
    data: Any, source: str
) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """``(where, video_entry, question)`` for every question of a StreamingBench file (a list of videos, each with
    ``video_path`` and ``questions``)."""
    if not isinstance(data, list):
        raise AnnotationError(
            f"{source}: expected the JSON list of StreamingBench videos, got {type(data).__name__}"
        )
    for i, video in enumerate(data):
        where = f"{source}: video {i}"
        _text(video, "video_path", where)
        questions = _field(video, "questions", where)
        if not isinstance(questions, list) or not questions:
            raise _fail(where, "questions", "must be a non-empty list")
        for j, question in enumerate(questions):
            yield f"{where} question {j}", video, question


def _strip_letter(option: str, letter: str) -> str:
    """``"A. text"`` → ``"text"`` when the option carries its own position's letter; otherwise unchanged."""
    match = re.match(rf"^{letter}\.\s*", option)
    return option[match.end() :] if match else option


def streamingbench_real_docs(data: Any, source: str) -> list[dict[str, Any]]:
    """Real-time docs: options with or without their ``"A. "`` prefix, answer letter, clip ``[0, time_stamp]``."""
    docs = []
    for where, video, question in iter_streamingbench_questions(data, source):
        options = _options(question, "options", where)
        candidates = [_strip_letter(o, OPTION_LETTERS[k]) for k, o in enumerate(options)]
        letter = _text(question, "answer", where).strip()
        if letter not in OPTION_LETTERS[: len(candidates)] or len(letter) != 1:
            raise _fail(
                where,
                "answer",
                f"must be an option letter A..{OPTION_LETTERS[len(candidates) - 1]}, got {letter!r}",
            )
        end = parse_time_stamp(question.get("time_stamp"), where)
        docs.append({
            "video": video["video_path"], "question": _text(question, "question", where), "candidates": candidates,
            "answer": candidates[OPTION_LETTERS.index(letter)], "sf_answer_letter": letter,
            "task": _text(question, "task_type", where), "start": 0.0, "end": end,
            "time_stamp": str(question["time_stamp"]), "sf_layout": LAYOUT_OFFICIAL,
        })  # fmt: skip
    return docs


def streamingbench_proactive_docs(data: Any, source: str) -> list[dict[str, Any]]:
    """Proactive-output docs (``questions_proactive.json``): the question, its time ``time_stamp`` (``start``), the
    ground-truth time and output; the protocol (:mod:`streamforest.eval.proactive`) polls ``[start, now]``."""
    docs = []
    for where, video, question in iter_streamingbench_questions(data, source):
        start = parse_time_stamp(question.get("time_stamp"), where)
        truth = parse_time_stamp(question.get("ground_truth_time_stamp"), where, "ground_truth_time_stamp")
        if truth < start:
            raise _fail(where, "ground_truth_time_stamp", f"({truth:.0f} s) precedes time_stamp ({start:.0f} s)")
        output = _text(question, "ground_truth_output", where)
        docs.append({
            "video": video["video_path"], "question": _text(question, "question", where), "answer": output,
            "ground_truth_output": output, "start": start, "ground_truth_time": truth,
            "time_stamp": str(question["time_stamp"]), "task": str(question.get("task_type", "Proactive Output")),
            "sf_layout": LAYOUT_OFFICIAL,
        })  # fmt: skip
    return docs


# ----------------------------------------------------------------------------------------------------------
# Layout detection and loading
# ----------------------------------------------------------------------------------------------------------

DocBuilder = Callable[[Any, str], list[dict[str, Any]]]


@dataclass(frozen=True)
class OfficialFile:
    """An official release file (its release name in the annotation folder) and the builder of one config's docs
    from its parsed JSON (``builder(data, source)``)."""

    filename: str
    builder: DocBuilder


RELEASES: dict[str, dict[str, OfficialFile]] = {
    "ovobench": {
        "real_time_visual_perception": OfficialFile(
            OVOBENCH_FILE, lambda d, s: ovobench_mc_docs(d, s, OVO_REAL_TIME_TASKS)
        ),
        "backward_tracking": OfficialFile(
            OVOBENCH_FILE, lambda d, s: ovobench_mc_docs(d, s, OVO_BACKWARD_TASKS)
        ),
        "forward_active_responding": OfficialFile(OVOBENCH_FILE, ovobench_far_docs),
    },
    "streamingbench": {
        "real_time_visual_understanding": OfficialFile(STREAMINGBENCH_REAL_FILE, streamingbench_real_docs),
        "proactive_output": OfficialFile(STREAMINGBENCH_PROACTIVE_FILE, streamingbench_proactive_docs),
    },
}
"""Per benchmark and task config, the official file it accepts (a config may add its own file, e.g. proactive)."""


def _has_streamforest_config(bench: str, config: str) -> bool:
    try:
        media.annotation_files(bench, config)
    except AnnotationError:
        return False
    return True


def detect_layout(bench: str, config: str) -> tuple[str, Path | None]:
    """``("official", file)`` when the release file is in the annotation folder, else ``("streamforest", None)``.

    Both layouts for the same config is ambiguous and an error (nothing is silently preferred)."""
    release = RELEASES.get(bench, {}).get(config)
    if release is None:
        return LAYOUT_STREAMFOREST, None
    path = media.anno_dir(bench) / release.filename
    if not path.is_file():
        return LAYOUT_STREAMFOREST, None
    if _has_streamforest_config(bench, config):
        others = ", ".join(str(p) for p in media.annotation_files(bench, config))
        raise AnnotationError(
            f"{media.anno_dir(bench)}: both the official {release.filename} and the StreamForest-release "
            f"annotation of '{config}' ({others}) are there; keep one of them in this folder (or point "
            f"SF_ANNO_{bench.upper()} to a folder holding only the one to evaluate)"
        )
    return LAYOUT_OFFICIAL, path


def load_docs(bench: str, config: str, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The docs of ``config``: from the official release file when present, else the StreamForest layout
    (:func:`streamforest.eval.media.load_docs`). Logs which layout was read."""
    layout, path = detect_layout(bench, config)
    if path is None:
        logger.info(
            "%s/%s: reading the StreamForest-release layout in %s", bench, config, media.anno_dir(bench)
        )
        return media.load_docs(bench, config, required)
    docs = RELEASES[bench][config].builder(read_release_json(path), str(path))
    media.check_docs(docs, required, str(path), bench)
    if not docs:
        raise AnnotationError(f"{path}: holds no docs for config '{config}' of {bench}")
    logger.info("%s/%s: reading the official release file %s (layout %s): %d docs", bench, config, path, layout,
                len(docs))  # fmt: skip
    return docs


def make_process_docs(bench: str, config: str, required: Sequence[str] = ()) -> Callable[[Any], Any]:
    """:func:`streamforest.eval.media.make_process_docs` reading either layout (see :func:`load_docs`)."""
    return media.make_process_docs(bench, config, required, loader=load_docs)
