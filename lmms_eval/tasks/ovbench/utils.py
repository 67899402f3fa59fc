"""OVBench tasks for lmms-eval (docs: video, question, candidates, answer, answer_type, sub_answer_type[, start, end, fps]).

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of REFERENCE §5.4). Videos are resolved through
``streamforest/assets/eval_paths.yaml`` / ``SF_VIDEOS_OVBENCH``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

from streamforest.eval.mcq_task import MultipleChoiceTask

TASK = MultipleChoiceTask(
    bench="ovbench",
    metric="ovbench_accuracy",
    required=("video", "question", "candidates", "answer", "answer_type", "sub_answer_type"),
    categories=("answer_type", "sub_answer_type"),
)

process_docs_tao = TASK.process_docs("tao")
process_docs_coin = TASK.process_docs("coin")
process_docs_hirest = TASK.process_docs("hirest")
process_docs_ava = TASK.process_docs("ava")

doc_to_visual = TASK.doc_to_visual
doc_to_text = TASK.doc_to_text
process_results = TASK.process_results
aggregate_reference = TASK.aggregate_reference
aggregate_strict = TASK.aggregate_strict
