"""StreamingBench proactive output for lmms-eval (official ``questions_proactive.json`` only).

Thin glue: docs from ``streamforest.eval.official`` (config ``proactive_output``), the protocol and its scoring
from ``streamforest.eval.proactive``. The model runs the polls (the adapter routes requests whose generation
kwargs carry ``sf_protocol: proactive``) and returns ``ProactiveResult`` JSON; metrics are percentages.
"""

from __future__ import annotations

from typing import Any

from streamforest.eval import media, proactive

media.show_eval_logs()

BENCH, CONFIG = "streamingbench", "proactive_output"
REQUIRED = ("video", "question", "ground_truth_output", "start", "ground_truth_time")

process_docs = media.make_process_docs(BENCH, CONFIG, REQUIRED, loader=proactive.load_docs)


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """``[video path, {"video_read_type", "start"}]`` (the polls fix the clip ends)."""
    return media.doc_visual(BENCH, CONFIG, doc)


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The question asked at the first "yes" (the probe is built by the protocol)."""
    return str(doc["question"])


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    """Time and answer accuracy (0 or 100) of one question, StreamingBench's counter."""
    scores = proactive.score(proactive.ProactiveResult.from_json(str(results[0])), doc["ground_truth_time"],
                             doc["ground_truth_output"])  # fmt: skip
    return {"streamingbench_proactive_time_accuracy": 100.0 * scores["time"],
            "streamingbench_proactive_answer_accuracy": 100.0 * scores["answer"]}  # fmt: skip
