"""The lmms-eval glue shared by the multiple-choice benchmarks (ODV-Bench, StreamingBench, OVBench, MLVU, MVBench).

A task folder's ``utils.py`` builds one :class:`MultipleChoiceTask` and exposes its bound methods under the
names its YAML references (``!function utils.doc_to_text`` …). Docs and visuals come from
:mod:`streamforest.eval.media`, prompts and scores from :mod:`streamforest.eval.scoring` (REFERENCE §5.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamforest.eval import media, scoring

__all__ = ["MultipleChoiceTask"]


@dataclass(frozen=True)
class MultipleChoiceTask:
    """One benchmark's multiple-choice tasks.

    Attributes:
        bench: key of the benchmark in ``streamforest/assets/eval_paths.yaml`` (``odvbench``, ``mvbench`` …).
        metric: the reference metric key (``odvbench_accuracy`` …); ``<metric>_strict`` is reported beside it.
        required: doc fields checked when docs are loaded.
        categories: doc fields of the logged per-category breakdown.
    """

    bench: str
    metric: str
    required: Sequence[str] = ("video", "question", "candidates", "answer")
    categories: Sequence[str] = ()

    def process_docs(self, config: str) -> Any:
        """The ``process_docs`` function of one config (loads the real docs from the resolved folder)."""
        return media.make_process_docs(self.bench, config, tuple(self.required))

    def doc_to_visual(self, doc: dict[str, Any]) -> list[Any]:
        """``[video path, {"video_read_type", "start", "end"[, "fps"]}]`` for one doc."""
        return media.doc_visual(self.bench, doc["sf_config"], doc)

    def doc_to_text(self, doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
        """``question⏎A. …⏎B. …⏎Answer with the option's letter from the given choices directly.``"""
        return scoring.format_mcq(doc["question"], list(doc["candidates"]))

    def process_results(self, doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
        """One record (score, empty flag, categories) under both metric keys."""
        record = scoring.mcq_record(doc, results, tuple(self.categories))
        return {self.metric: record, f"{self.metric}_strict": record}

    def aggregate_reference(self, results: list[dict[str, Any]]) -> float:
        """Reference accuracy (%): empty predictions excluded from the denominator."""
        return scoring.aggregate(self.bench, results, strict=False)

    def aggregate_strict(self, results: list[dict[str, Any]]) -> float:
        """Strict accuracy (%): empty predictions (failed samples) count as wrong."""
        return scoring.aggregate(self.bench, results, strict=True)
