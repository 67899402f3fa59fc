"""MLVU multiple-choice tasks for lmms-eval (docs: video, question, candidates, answer[, question_type]; videos under <videos>/<config>/).

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of REFERENCE §5.4). Videos are resolved through
``streamforest/assets/eval_paths.yaml`` / ``SF_VIDEOS_MLVU_MC``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

from streamforest.eval.mcq_task import MultipleChoiceTask

TASK = MultipleChoiceTask(
    bench="mlvu_mc",
    metric="mlvu_mc_accuracy",
    required=("video", "question", "candidates", "answer"),
    categories=("question_type",),
)

process_docs_4_count = TASK.process_docs("4_count")
process_docs_3_ego = TASK.process_docs("3_ego")
process_docs_2_needle = TASK.process_docs("2_needle")
process_docs_5_order = TASK.process_docs("5_order")
process_docs_1_plotQA = TASK.process_docs("1_plotQA")
process_docs_6_anomaly_reco = TASK.process_docs("6_anomaly_reco")
process_docs_7_topic_reasoning = TASK.process_docs("7_topic_reasoning")

doc_to_visual = TASK.doc_to_visual
doc_to_text = TASK.doc_to_text
process_results = TASK.process_results
aggregate_reference = TASK.aggregate_reference
aggregate_strict = TASK.aggregate_strict
