"""OVO-Bench tasks for lmms-eval.

MC docs: video, question, candidates, answer[, subtask][, start, end]; forward active responding (FAR) docs:
video, question, answer, subtask (SSR / CRR / REC)[, start, end].

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of REFERENCE §5.4). Videos are resolved through
``streamforest/assets/eval_paths.yaml`` / ``SF_VIDEOS_OVOBENCH``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

import logging
from typing import Any

from streamforest.eval import media, scoring

logger = logging.getLogger(__name__)

BENCH = "ovobench"
METRIC = "ovobench_accuracy"
REQUIRED = ("video", "question", "answer")
MC_REQUIRED = (*REQUIRED, "candidates")
CATEGORIES = ("subtask",)

process_docs_real_time_visual_perception = media.make_process_docs(
    BENCH, "real_time_visual_perception", MC_REQUIRED
)
process_docs_backward_tracking = media.make_process_docs(BENCH, "backward_tracking", MC_REQUIRED)
process_docs_forward_active_responding = media.make_process_docs(BENCH, "forward_active_responding", REQUIRED)


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """``[video path, {"video_read_type", "start", "end"[, "fps"]}]`` for one doc."""
    return media.doc_visual(BENCH, doc["sf_config"], doc)


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """``question⏎A. …⏎B. …⏎Answer with the option's letter from the given choices directly.``"""
    return scoring.format_mcq(doc["question"], list(doc["candidates"]))


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """One record (score, empty flag, categories) under both metric keys."""
    record = scoring.mcq_record(doc, results, CATEGORIES)
    return {METRIC: record, f"{METRIC}_strict": record}


def far_doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """Forward active responding: the prompt is the question alone."""
    return str(doc["question"])


def far_process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """SSR/CRR: substring rule; REC: single-integer rule (see ``scoring.ovo_far_correct``)."""
    pred = scoring.first_response(results)
    subtask = str(doc.get("subtask") or doc.get("task") or "")
    score = scoring.ovo_far_correct(subtask, str(doc["answer"]), pred)
    record = scoring.make_record(score, pred, doc["answer"], scoring.doc_categories(doc, CATEGORIES))
    return {METRIC: record, f"{METRIC}_strict": record}


def aggregate_reference(results: list[dict[str, Any]]) -> float:
    """Micro accuracy (%), empty predictions excluded; the macro average over subtasks is logged too."""
    value = scoring.aggregate(BENCH, results, strict=False)
    logger.info("%s macro average over subtasks: %.2f", BENCH, scoring.macro_average(results, "subtask"))
    return value


def aggregate_strict(results: list[dict[str, Any]]) -> float:
    """Strict accuracy (%): empty predictions (failed samples) count as wrong."""
    return scoring.aggregate(BENCH, results, strict=True)
