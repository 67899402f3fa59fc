"""PerceptionTest validation multiple choice for lmms-eval (``sf_perceptiontest_val_mc``).

Docs: video_name, question, options, answer_id[, question_id, area, reasoning, tag]. Videos:
``<videos>/{video_name}.mp4``, whole video. The score is a fraction in [0, 1] over all questions (empty answers
wrong) and the prediction is the first standalone capital A–D (case-sensitive), as in the reference.
"""

from __future__ import annotations

from typing import Any

from streamforest.eval import media, scoring

BENCH = "perceptiontest"
METRIC = "accuracy"
REQUIRED = ("video_name", "question", "options", "answer_id")
CATEGORIES = ("area", "reasoning")

process_docs_mc_question_val = media.make_process_docs(BENCH, "mc_question_val", REQUIRED)


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """``[<videos>/{video_name}.mp4, {"video_read_type": "decord"}]``."""
    return media.build_visual(media.resolve_media(BENCH, None, f"{doc['video_name']}.mp4"))


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """``question⏎A. o1⏎B. o2⏎C. o3⏎Answer with the option's letter from the given choices directly.``"""
    options = "".join(f"\n{scoring.OPTION_LETTERS[i]}. {o}" for i, o in enumerate(doc["options"]))
    return f"{doc['question']}{options}\n{scoring.MCQ_POST_PROMPT}"


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """Map the first standalone A–D to 0–3 and compare with ``answer_id``."""
    response = scoring.first_response(results)
    pred = scoring.perceptiontest_extract(response)
    gt = int(doc["answer_id"])
    record = scoring.make_record(pred == gt, response, gt, scoring.doc_categories(doc, CATEGORIES))
    record["extracted"] = pred
    return {METRIC: record, f"{METRIC}_strict": record}


def aggregate_reference(results: list[dict[str, Any]]) -> float:
    """Accuracy as a fraction in [0, 1] over all questions (reference definition)."""
    return scoring.aggregate(BENCH, results, strict=False, empty_is_wrong=True, scale=1.0)


def aggregate_strict(results: list[dict[str, Any]]) -> float:
    """Strict accuracy, fraction in [0, 1] — identical to the reference metric here."""
    return scoring.aggregate(BENCH, results, strict=True, scale=1.0)
