"""ODV-Bench tasks for lmms-eval (docs: video, question, candidates, answer, task, subtask[, subsubtask][, start, end]).

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of REFERENCE §5.4). Videos are resolved through
``streamforest/assets/eval_paths.yaml`` / ``SF_VIDEOS_ODVBENCH``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

from streamforest.eval.mcq_task import MultipleChoiceTask

TASK = MultipleChoiceTask(
    bench="odvbench",
    metric="odvbench_accuracy",
    required=("video", "question", "candidates", "answer", "task", "subtask"),
    categories=("task", "subtask", "subsubtask"),
)

process_docs_targeting_single_static_objects_v4 = TASK.process_docs("targeting_single_static_objects_v4")
process_docs_targeting_multi_object_interaction_scenarios_or_events_v4 = TASK.process_docs("targeting_multi_object_interaction_scenarios_or_events_v4")
process_docs_targeting_single_dynamic_objects_v4 = TASK.process_docs("targeting_single_dynamic_objects_v4")

doc_to_visual = TASK.doc_to_visual
doc_to_text = TASK.doc_to_text
process_results = TASK.process_results
aggregate_reference = TASK.aggregate_reference
aggregate_strict = TASK.aggregate_strict
