"""Answer extraction and metrics shared by every evaluation task (REFERENCE §5.4, §8.7).

Pure Python (``re`` + stdlib): the lmms-eval task folders under ``lmms_eval/tasks/`` import these functions,
so the rules live in one place instead of one copy per ``utils.py`` as in the reference.

Every ``process_results`` of our tasks returns *records* (plain dicts, so lmms-eval can write them into its
sample logs) built by :func:`make_record`::

    {"score": 0 | 1, "empty": bool, "pred": str, "gt": str | int | None, "categories": {name: value}}

and every benchmark reports two numbers side by side:

* the **reference** metric — what the published numbers use. For the streaming/MC benchmarks
  (ODV-Bench, StreamingBench, OVBench, OVO-Bench, MLVU, MVBench) an empty prediction (exactly ``""``;
  whitespace is an answer) is *removed from the denominator*; Video-MME and PerceptionTest count it wrong.
* the **strict** metric — an empty prediction (including a sample whose video failed to decode) is wrong.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MCQ_POST_PROMPT = "Answer with the option's letter from the given choices directly."
"""Post prompt of the common multiple-choice tasks (and, after a newline, of Video-MME / PerceptionTest)."""

VIDEOMME_OPTION_PROMPT = (
    "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
    "Respond with only the letter (A, B, C, or D) of the correct option."
)
"""Video-MME instruction (mentions subtitles even without them — kept, REFERENCE §8.7)."""

# ----------------------------------------------------------------------------------------------------------
# Prompts
# ----------------------------------------------------------------------------------------------------------


def format_mcq(question: str, candidates: Sequence[str], post_prompt: str = MCQ_POST_PROMPT) -> str:
    """Common multiple-choice prompt: ``question⏎A. c0⏎B. c1⏎…{post_prompt}``.

    Each option line ends with a newline, so the post prompt starts right after the last option.
    """
    if len(candidates) > len(OPTION_LETTERS):
        raise ValueError(f"{len(candidates)} candidates: at most {len(OPTION_LETTERS)} options are supported")
    options = "".join(f"{OPTION_LETTERS[i]}. {c}\n" for i, c in enumerate(candidates))
    return f"{question}\n{options}{post_prompt}"


def answer_letter(candidates: Sequence[str], answer: str) -> str | None:
    """Letter of the candidate string exactly equal to ``answer`` (``None`` when none matches: scored 0)."""
    for i, candidate in enumerate(candidates):
        if candidate == answer:
            return OPTION_LETTERS[i]
    return None


# ----------------------------------------------------------------------------------------------------------
# mcq_acc: VQA-style normalisation (ODV-Bench, StreamingBench, OVBench, OVO-Bench MC, MLVU, MVBench)
# ----------------------------------------------------------------------------------------------------------

_VQA_PUNCT = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_LEADING_OPTION = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)
_STANDALONE_A_TO_E = re.compile(r"\b([A-E])\b", re.IGNORECASE)


def vqa_process_punctuation(text: str) -> str:
    """VQA punctuation rule: each mark is deleted when the *original* text has it next to a space (or the
    text contains a digit-comma-digit pattern), otherwise replaced by a space; then periods not followed by
    a digit are removed."""
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for p in _VQA_PUNCT:
        if (p + " " in text) or (" " + p in text) or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def normalize_mcq_answer(text: str) -> str:
    """Normalise one side of :func:`mcq_acc` (REFERENCE §5.4).

    ``"B. text"`` → ``"B"``; otherwise VQA normalisation, lower case, and the first standalone letter a–e
    (case-insensitive word match — so ``"a man"`` → ``"A"``, a kept reference quirk) in upper case; if there
    is no such letter, the normalised string itself (so a bare ``"F"`` still equals ground truth ``"F"``).
    """
    stripped = text.strip()
    match = _LEADING_OPTION.match(stripped)
    if match:
        return match.group(1).upper()
    out = stripped.replace("\n", " ").replace("\t", " ").strip()
    out = vqa_process_punctuation(out)
    for ch in ("'", '"', ")", "("):
        out = out.strip(ch)
    out = out.strip().lower()
    letter = _STANDALONE_A_TO_E.search(out)
    if letter:
        return letter.group(1).upper()
    return out


def mcq_acc(gt: str, pred: str) -> int:
    """1 iff the normalised ground truth equals the normalised prediction, else 0."""
    return int(normalize_mcq_answer(gt) == normalize_mcq_answer(pred))


# ----------------------------------------------------------------------------------------------------------
# Video-MME and PerceptionTest extraction
# ----------------------------------------------------------------------------------------------------------

# Reference list, including its two missing commas (two pairs of prefixes are concatenated, REFERENCE §8.7).
_VIDEOMME_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",  # missing comma: reference quirk, kept
    "Best answer:Best option:",  # missing comma: reference quirk, kept
)
_CAPITAL_A_TO_D = re.compile(r"[ABCD]")
_PERCEPTIONTEST_LETTER = re.compile(r"\b([A-D])\b")


def videomme_extract(text: str) -> str:
    """Video-MME answer: drop the known prefixes; ``""`` if more than 10 words and no capital A–D;
    otherwise the first capital A–D anywhere (``""`` when none)."""
    s = text.strip()
    for prefix in _VIDEOMME_PREFIXES:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not _CAPITAL_A_TO_D.search(s):
        return ""
    match = _CAPITAL_A_TO_D.search(s)
    return match.group(0) if match else ""


def perceptiontest_extract(text: str) -> int | None:
    """PerceptionTest answer index: first standalone capital A–D (case-sensitive) mapped to 0–3."""
    match = _PERCEPTIONTEST_LETTER.search(text)
    return "ABCD".index(match.group(1)) if match else None


# ----------------------------------------------------------------------------------------------------------
# OVO-Bench forward active responding (FAR)
# ----------------------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"\d+")


def single_integer(text: str) -> int | None:
    """The integer in ``text`` if it contains exactly one, else ``None``."""
    found = _INTEGER.findall(text)
    return int(found[0]) if len(found) == 1 else None


def normalize_far_text(text: str) -> str:
    """Normalisation for the SSR/CRR substring rule: lower case, whitespace collapsed, outer punctuation
    and spaces stripped."""
    return " ".join(text.lower().split()).strip(" .,;:!?\"'")


def ovo_far_correct(subtask: str, answer: str, pred: str) -> bool:
    """FAR rule: SSR/CRR — normalised answer is a substring of the normalised prediction; otherwise (REC) —
    the single integer of the prediction equals the single integer of the answer. When neither has exactly
    one integer, ``None == None`` counts as correct (reference quirk, kept)."""
    if subtask.upper() in ("SSR", "CRR"):
        return normalize_far_text(answer) in normalize_far_text(pred)
    return single_integer(pred) == single_integer(str(answer))


def ovo_official_far_correct(subtask: str, answer: str, pred: str) -> bool:
    """OVO-Bench's own forward scorer (``utils/OVOBenchScore.py``), used for docs of the official release file.

    REC: all digit runs of the prediction joined equal the count (``answer``); SSR/CRR (``answer`` ``"Yes"`` or
    ``"No"``): the prediction is exactly ``"Y"``/``"N"`` accordingly, or contains ``answer`` (case-sensitive)."""
    if subtask.upper() == "REC":
        return "".join(_INTEGER.findall(pred)) == str(answer)
    return pred == str(answer)[:1] or str(answer) in pred


# ----------------------------------------------------------------------------------------------------------
# Records and aggregation
# ----------------------------------------------------------------------------------------------------------


def make_record(score: int | bool, pred: str, gt: Any, categories: Mapping[str, Any] | None = None) -> dict:
    """A per-sample record for lmms-eval.

    ``empty`` is ``pred == ""`` exactly, as in the reference aggregations: a whitespace-only prediction is an
    answer (scored, usually wrong), not an empty one. The strict metric ignores the flag.
    """
    cats = {str(k): ("" if v is None else str(v)) for k, v in (categories or {}).items()}
    return {"score": int(score), "empty": pred == "", "pred": pred, "gt": gt, "categories": cats}


def accuracy_reference(records: Sequence[Mapping[str, Any]], scale: float = 100.0) -> float:
    """``scale × correct / answered`` with empty predictions excluded from the denominator (0 if none)."""
    answered = [r for r in records if not r["empty"]]
    if not answered:
        return 0.0
    return scale * sum(r["score"] for r in answered) / len(answered)


def accuracy_strict(records: Sequence[Mapping[str, Any]], scale: float = 100.0) -> float:
    """``scale × correct / all`` — empty predictions (failed samples) count as wrong (0 if no records)."""
    if not records:
        return 0.0
    return scale * sum(r["score"] for r in records) / len(records)


def breakdown(
    records: Sequence[Mapping[str, Any]], keys: Iterable[str] | None = None, scale: float = 100.0
) -> dict[str, dict[str, dict[str, float]]]:
    """Per-category table ``{key: {value: {"n", "empty", "reference", "strict"}}}`` over the record categories."""
    groups: dict[str, dict[str, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for key, value in r.get("categories", {}).items():
            if keys is None or key in keys:
                groups[key][value].append(r)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for key, by_value in groups.items():
        table[key] = {
            value: {
                "n": float(len(rs)),
                "empty": float(sum(r["empty"] for r in rs)),
                "reference": accuracy_reference(rs, scale),
                "strict": accuracy_strict(rs, scale),
            }
            for value, rs in sorted(by_value.items())
        }
    return table


def macro_average(records: Sequence[Mapping[str, Any]], key: str, strict: bool = False) -> float:
    """Unweighted mean over the values of category ``key`` (OVO-Bench reports it beside the micro score)."""
    table = breakdown(records, [key]).get(key, {})
    if not table:
        return 0.0
    field = "strict" if strict else "reference"
    return sum(row[field] for row in table.values()) / len(table)


def task_mean(records: Sequence[Mapping[str, Any]], keys: Sequence[str], strict: bool = False) -> float:
    """Unweighted mean of per-task accuracies, the task of a record being its first category among ``keys``
    (records with none form one task ``""``, so none is dropped). OVO-Bench's track score."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        cats = r.get("categories", {})
        groups[next((str(cats[k]) for k in keys if cats.get(k)), "")].append(r)
    if not groups:
        return 0.0
    score = accuracy_strict if strict else accuracy_reference
    return sum(score(rs) for rs in groups.values()) / len(groups)


def log_breakdown(name: str, records: Sequence[Mapping[str, Any]], scale: float = 100.0) -> None:
    """Log the overall and per-category scores of one task (INFO level)."""
    n_empty = sum(r["empty"] for r in records)
    logger.info(
        "%s: n=%d empty=%d reference=%.2f strict=%.2f",
        name,
        len(records),
        n_empty,
        accuracy_reference(records, scale),
        accuracy_strict(records, scale),
    )
    for key, rows in breakdown(records, scale=scale).items():
        for value, row in rows.items():
            logger.info(
                "%s  %s=%s: n=%d reference=%.2f strict=%.2f",
                name,
                key,
                value,
                int(row["n"]),
                row["reference"],
                row["strict"],
            )


def aggregate(
    name: str,
    records: Sequence[Mapping[str, Any]],
    *,
    strict: bool,
    empty_is_wrong: bool = False,
    scale: float = 100.0,
) -> float:
    """Task score for lmms-eval: the reference metric (``strict=False``) or the strict one.

    ``empty_is_wrong=True`` makes the reference metric count empty answers wrong (Video-MME and
    PerceptionTest do); the per-category breakdown is logged once, with the reference metric.
    """
    records = list(records)
    if strict or empty_is_wrong:
        value = accuracy_strict(records, scale)
    else:
        value = accuracy_reference(records, scale)
    if not strict:
        log_breakdown(name, records, scale)
    return value


# ----------------------------------------------------------------------------------------------------------
# Task glue shared by the common multiple-choice tasks
# ----------------------------------------------------------------------------------------------------------


def first_response(results: Sequence[Any]) -> str:
    """The model's answer from lmms-eval's ``results`` list, as given (``""`` when missing).

    Not stripped: the reference tasks score ``results[0]`` as received (the model wrapper already strips its
    outputs; every extractor here tolerates surrounding whitespace), so emptiness means exactly ``""``.
    """
    if not results:
        return ""
    value = results[0]
    if isinstance(value, list):  # multi-round outputs: the last round answers the question
        value = value[-1] if value else ""
    return "" if value is None else str(value)


def doc_categories(doc: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """``{field: doc[field]}`` for the fields present (non-null) in the doc, ``config`` first."""
    cats: dict[str, Any] = {}
    if doc.get("sf_config") is not None:
        cats["config"] = doc["sf_config"]
    for field in fields:
        if doc.get(field) is not None:
            cats[field] = doc[field]
    return cats


def mcq_record(doc: Mapping[str, Any], results: Sequence[Any], category_fields: Iterable[str] = ()) -> dict:
    """Score a common-format doc (``candidates``, ``answer``) with :func:`mcq_acc`. The ground-truth letter is the
    doc's ``sf_answer_letter`` when it has one (official release files give the answer's index, which stays exact
    when two options read the same), else the letter of the candidate equal to ``answer``."""
    pred = first_response(results)
    gt = doc.get("sf_answer_letter") or answer_letter(list(doc["candidates"]), doc["answer"])
    score = mcq_acc(gt, pred) if gt is not None else 0
    return make_record(score, pred, gt, doc_categories(doc, category_fields))
