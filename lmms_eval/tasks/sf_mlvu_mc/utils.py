"""MLVU multiple-choice tasks for lmms-eval (docs: video, question, candidates, answer[, question_type]; videos under <videos>/<config>/).

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of spec §5.4). Videos are resolved through
``configs/eval/paths.yaml`` / ``SF_VIDEOS_MLVU_MC``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

from typing import Any

from streamforest.eval import media, scoring

BENCH = "mlvu_mc"
METRIC = "mlvu_mc_accuracy"
REQUIRED = ("video", "question", "candidates", "answer")
CATEGORIES = ("question_type",)

process_docs_4_count = media.make_process_docs(BENCH, "4_count", REQUIRED)
process_docs_3_ego = media.make_process_docs(BENCH, "3_ego", REQUIRED)
process_docs_2_needle = media.make_process_docs(BENCH, "2_needle", REQUIRED)
process_docs_5_order = media.make_process_docs(BENCH, "5_order", REQUIRED)
process_docs_1_plotQA = media.make_process_docs(BENCH, "1_plotQA", REQUIRED)
process_docs_6_anomaly_reco = media.make_process_docs(BENCH, "6_anomaly_reco", REQUIRED)
process_docs_7_topic_reasoning = media.make_process_docs(BENCH, "7_topic_reasoning", REQUIRED)


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
