"""StreamingBench (real-time visual understanding) tasks for lmms-eval, reading either annotation layout.

* StreamForest-release layout: docs video, question, candidates, answer[, task, subtask][, start, end].
* Official release file ``<anno>/questions_real.json``: one doc per question (task = ``task_type``, clip
  ``[0, time_stamp]``, options with or without their ``"A. "`` prefix, answer letter), see
  ``streamforest.eval.official``.

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of REFERENCE §5.4). Videos are resolved through
``streamforest/assets/eval_paths.yaml`` / ``SF_VIDEOS_STREAMINGBENCH``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

from streamforest.eval import media, official
from streamforest.eval.mcq_task import MultipleChoiceTask

media.show_eval_logs()

TASK = MultipleChoiceTask(
    bench="streamingbench",
    metric="streamingbench_accuracy",
    required=("video", "question", "candidates", "answer"),
    categories=("task", "subtask", "subsubtask"),
)

process_docs_real_time_visual_understanding = official.make_process_docs(
    TASK.bench, "real_time_visual_understanding", TASK.required
)

doc_to_visual = TASK.doc_to_visual
doc_to_text = TASK.doc_to_text
process_results = TASK.process_results
aggregate_reference = TASK.aggregate_reference
aggregate_strict = TASK.aggregate_strict
