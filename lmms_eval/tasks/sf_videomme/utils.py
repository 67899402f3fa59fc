"""Video-MME (no subtitles) for lmms-eval — named ``sf_videomme`` so it does not collide with upstream.

Docs (the public question parquet): video_id, duration, domain, sub_category, url, videoID, question_id,
task_type, question, options, answer. Videos: ``<videos>/{videoID}.mp4`` (also .MP4 / .mkv), whole video.
Prompt and answer extraction follow the reference exactly, including its quirks (REFERENCE §5.4, §8.7): the
instruction mentions subtitles, options are rendered as a Python list, empty answers count as wrong.
"""

from __future__ import annotations

from typing import Any

from streamforest.eval import media, scoring

BENCH = "videomme"
METRIC = "videomme_percetion_score"  # sic: the reference metric key
REQUIRED = ("videoID", "question", "options", "answer")
CATEGORIES = ("duration", "domain", "sub_category", "task_type")
VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv")
DEFAULT_POST_PROMPT = "\n" + scoring.MCQ_POST_PROMPT

process_docs_videomme = media.make_process_docs(BENCH, "videomme", REQUIRED)


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """``[<videos>/{videoID}.mp4, {"video_read_type": "decord"}]`` (no clip: the whole video)."""
    return media.build_visual(media.resolve_media(BENCH, None, str(doc["videoID"]), VIDEO_SUFFIXES))


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """``{instruction}⏎{question}⏎{str(options)}⏎{post_prompt}`` (post prompt starts with a newline)."""
    kwargs = lmms_eval_specific_kwargs or {}
    post_prompt = kwargs.get("post_prompt", DEFAULT_POST_PROMPT)
    options = str(list(doc["options"]))
    return f"{scoring.VIDEOMME_OPTION_PROMPT}\n{doc['question']}\n{options}\n{post_prompt}"


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """Extract the letter (``scoring.videomme_extract``) and compare it with ``answer``."""
    response = scoring.first_response(results)
    pred = scoring.videomme_extract(response)
    record = scoring.make_record(
        pred == doc["answer"], response, doc["answer"], scoring.doc_categories(doc, CATEGORIES)
    )
    record["extracted"] = pred
    return {METRIC: record, f"{METRIC}_strict": record}


def aggregate_reference(results: list[dict[str, Any]]) -> float:
    """Accuracy (%) over all questions — the reference already counts empty answers as wrong."""
    return scoring.aggregate(BENCH, results, strict=False, empty_is_wrong=True)


def aggregate_strict(results: list[dict[str, Any]]) -> float:
    """Strict accuracy (%) — identical to the reference metric for Video-MME."""
    return scoring.aggregate(BENCH, results, strict=True)
