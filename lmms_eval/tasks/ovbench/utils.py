"""OVBench tasks for lmms-eval (docs: video, question, candidates, answer, answer_type, sub_answer_type[, start, end, fps]).

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of spec §5.4). Videos are resolved through
``configs/eval/paths.yaml`` / ``SF_VIDEOS_OVBENCH``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

from typing import Any

from streamforest.eval import media, scoring

BENCH = "ovbench"
METRIC = "ovbench_accuracy"
REQUIRED = ("video", "question", "candidates", "answer", "answer_type", "sub_answer_type")
CATEGORIES = ("answer_type", "sub_answer_type")

process_docs_tao = media.make_process_docs(BENCH, "tao", REQUIRED)
process_docs_coin = media.make_process_docs(BENCH, "coin", REQUIRED)
process_docs_hirest = media.make_process_docs(BENCH, "hirest", REQUIRED)
process_docs_ava = media.make_process_docs(BENCH, "ava", REQUIRED)


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


def aggregate_reference(results: list[dict[str, Any]]) -> float:
    """Reference accuracy (%): empty predictions excluded from the denominator."""
    return scoring.aggregate(BENCH, results, strict=False)


def aggregate_strict(results: list[dict[str, Any]]) -> float:
    """Strict accuracy (%): empty predictions (failed samples) count as wrong."""
    return scoring.aggregate(BENCH, results, strict=True)
