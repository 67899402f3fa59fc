"""MVBench tasks for lmms-eval (docs: video, question, candidates, answer[, start, end]; per-task video roots in paths.yaml).

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of spec §5.4). Videos are resolved through
``configs/eval/paths.yaml`` / ``SF_VIDEOS_MVBENCH``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

from typing import Any

from streamforest.eval import media, scoring

BENCH = "mvbench"
METRIC = "mvbench_accuracy"
REQUIRED = ("video", "question", "candidates", "answer")
CATEGORIES = ()

process_docs_action_sequence = media.make_process_docs(BENCH, "action_sequence", REQUIRED)
process_docs_moving_count = media.make_process_docs(BENCH, "moving_count", REQUIRED)
process_docs_action_prediction = media.make_process_docs(BENCH, "action_prediction", REQUIRED)
process_docs_episodic_reasoning = media.make_process_docs(BENCH, "episodic_reasoning", REQUIRED)
process_docs_action_antonym = media.make_process_docs(BENCH, "action_antonym", REQUIRED)
process_docs_action_count = media.make_process_docs(BENCH, "action_count", REQUIRED)
process_docs_scene_transition = media.make_process_docs(BENCH, "scene_transition", REQUIRED)
process_docs_object_shuffle = media.make_process_docs(BENCH, "object_shuffle", REQUIRED)
process_docs_object_existence = media.make_process_docs(BENCH, "object_existence", REQUIRED)
process_docs_fine_grained_pose = media.make_process_docs(BENCH, "fine_grained_pose", REQUIRED)
process_docs_unexpected_action = media.make_process_docs(BENCH, "unexpected_action", REQUIRED)
process_docs_moving_direction = media.make_process_docs(BENCH, "moving_direction", REQUIRED)
process_docs_state_change = media.make_process_docs(BENCH, "state_change", REQUIRED)
process_docs_object_interaction = media.make_process_docs(BENCH, "object_interaction", REQUIRED)
process_docs_character_order = media.make_process_docs(BENCH, "character_order", REQUIRED)
process_docs_action_localization = media.make_process_docs(BENCH, "action_localization", REQUIRED)
process_docs_counterfactual_inference = media.make_process_docs(BENCH, "counterfactual_inference", REQUIRED)
process_docs_fine_grained_action = media.make_process_docs(BENCH, "fine_grained_action", REQUIRED)
process_docs_moving_attribute = media.make_process_docs(BENCH, "moving_attribute", REQUIRED)
process_docs_egocentric_navigation = media.make_process_docs(BENCH, "egocentric_navigation", REQUIRED)


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
