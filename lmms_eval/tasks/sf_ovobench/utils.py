"""OVO-Bench tasks for lmms-eval, reading either annotation layout (see ``streamforest.eval.official``).

* StreamForest-release layout (``<anno>/<config>.json`` …): MC docs video, question, candidates, answer[, subtask]
  [, start, end]; forward active responding (FAR) docs video, question, answer, subtask (SSR / CRR / REC)
  [, start, end], scored with the reference's FAR rules (REFERENCE §5.4).
* Official release file ``<anno>/ovo_bench_new.json``: MC entries become the real-time / backward docs (same prompt
  and scoring as the other multiple-choice tasks), forward entries one doc per probe with OVO-Bench's own prompts,
  scored by OVO-Bench's own forward scorer (``scoring.ovo_official_far_correct``).

Metrics per track task: ``ovobench_accuracy`` (reference: micro accuracy, empty answers excluded) and
``ovobench_track_score`` (OVO-Bench's track score: the mean of its tasks' accuracies), each with a ``_strict`` twin;
the real-time and backward tracks also report ``ovobench_track_score_rt_bt`` so that the group's unweighted mean of it
is the two-track overall, while the group's ``ovobench_track_score`` is the three-track overall. Videos are resolved
through ``streamforest/assets/eval_paths.yaml`` / ``SF_VIDEOS_OVOBENCH``; a doc's ``start``/``end`` become the clip.
"""

from __future__ import annotations

import logging
from typing import Any

from streamforest.eval import media, official, scoring

logger = logging.getLogger("streamforest.eval.tasks.sf_ovobench")  # shown under lmms-eval (show_eval_logs)
media.show_eval_logs()

BENCH = "ovobench"
METRIC = "ovobench_accuracy"
TRACK = "ovobench_track_score"
TRACK_RT_BT = "ovobench_track_score_rt_bt"
REQUIRED = ("video", "question", "answer")
MC_REQUIRED = (*REQUIRED, "candidates")
CATEGORIES = ("subtask", "task")
FAR_METRICS = (METRIC, f"{METRIC}_strict", TRACK, f"{TRACK}_strict")
MC_METRICS = (*FAR_METRICS, TRACK_RT_BT, f"{TRACK_RT_BT}_strict")

process_docs_real_time_visual_perception = official.make_process_docs(
    BENCH, "real_time_visual_perception", MC_REQUIRED
)
process_docs_backward_tracking = official.make_process_docs(BENCH, "backward_tracking", MC_REQUIRED)
process_docs_forward_active_responding = official.make_process_docs(
    BENCH, "forward_active_responding", REQUIRED
)


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """``[video path, {"video_read_type", "start", "end"[, "fps"]}]`` for one doc."""
    return media.doc_visual(BENCH, doc["sf_config"], doc)


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """``question⏎A. …⏎B. …⏎Answer with the option's letter from the given choices directly.``"""
    return scoring.format_mcq(doc["question"], list(doc["candidates"]))


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """One record (score, empty flag, categories) under every metric key of the MC tracks."""
    record = scoring.mcq_record(doc, results, CATEGORIES)
    return dict.fromkeys(MC_METRICS, record)


def far_doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """Forward active responding: the prompt is the doc's question (the official layout's docs hold OVO-Bench's
    REC/SSR/CRR prompt there)."""
    return str(doc["question"])


def far_process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """Official-layout probes: OVO-Bench's scorer; StreamForest layout: the reference rules (SSR/CRR substring,
    REC single integer, see ``scoring.ovo_far_correct``)."""
    pred = scoring.first_response(results)
    subtask = str(doc.get("subtask") or doc.get("task") or "")
    if doc.get("sf_layout") == official.LAYOUT_OFFICIAL:
        score = scoring.ovo_official_far_correct(subtask, str(doc["answer"]), pred)
    else:
        score = scoring.ovo_far_correct(subtask, str(doc["answer"]), pred)
    record = scoring.make_record(score, pred, doc["answer"], scoring.doc_categories(doc, CATEGORIES))
    return dict.fromkeys(FAR_METRICS, record)


def aggregate_reference(results: list[dict[str, Any]]) -> float:
    """Micro accuracy (%), empty predictions excluded; the macro average over subtasks is logged too."""
    value = scoring.aggregate(BENCH, results, strict=False)
    logger.info("%s macro average over subtasks: %.2f", BENCH, scoring.macro_average(results, "subtask"))
    return value


def aggregate_strict(results: list[dict[str, Any]]) -> float:
    """Strict accuracy (%): empty predictions (failed samples) count as wrong."""
    return scoring.aggregate(BENCH, results, strict=True)


def aggregate_track(results: list[dict[str, Any]]) -> float:
    """Track score (%): the mean of the per-task accuracies (reference rule: empty answers excluded)."""
    value = scoring.task_mean(results, CATEGORIES, strict=False)
    logger.info("%s track score (mean over %s): %.2f", BENCH, "/".join(CATEGORIES), value)
    return value


def aggregate_track_strict(results: list[dict[str, Any]]) -> float:
    """Track score (%) with every answer counted (empty = wrong, as OVO-Bench's own scorer counts them)."""
    return scoring.task_mean(results, CATEGORIES, strict=True)
