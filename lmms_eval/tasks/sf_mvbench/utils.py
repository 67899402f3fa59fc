"""MVBench tasks for lmms-eval (docs: video, question, candidates, answer[, start, end]; per-task video roots in paths.yaml).

Thin glue: docs, visuals and prompts come from ``streamforest.eval.media``, scoring from
``streamforest.eval.scoring`` (reference rules of REFERENCE §5.4). Videos are resolved through
``streamforest/assets/eval_paths.yaml`` / ``SF_VIDEOS_MVBENCH``; a doc's ``start``/``end`` become the clip, so an
online question is asked at the clip end.
"""

from __future__ import annotations

from streamforest.eval.mcq_task import MultipleChoiceTask

TASK = MultipleChoiceTask(
    bench="mvbench",
    metric="mvbench_accuracy",
    required=("video", "question", "candidates", "answer"),
    categories=(),
)

process_docs_action_sequence = TASK.process_docs("action_sequence")
process_docs_moving_count = TASK.process_docs("moving_count")
process_docs_action_prediction = TASK.process_docs("action_prediction")
process_docs_episodic_reasoning = TASK.process_docs("episodic_reasoning")
process_docs_action_antonym = TASK.process_docs("action_antonym")
process_docs_action_count = TASK.process_docs("action_count")
process_docs_scene_transition = TASK.process_docs("scene_transition")
process_docs_object_shuffle = TASK.process_docs("object_shuffle")
process_docs_object_existence = TASK.process_docs("object_existence")
process_docs_fine_grained_pose = TASK.process_docs("fine_grained_pose")
process_docs_unexpected_action = TASK.process_docs("unexpected_action")
process_docs_moving_direction = TASK.process_docs("moving_direction")
process_docs_state_change = TASK.process_docs("state_change")
process_docs_object_interaction = TASK.process_docs("object_interaction")
process_docs_character_order = TASK.process_docs("character_order")
process_docs_action_localization = TASK.process_docs("action_localization")
process_docs_counterfactual_inference = TASK.process_docs("counterfactual_inference")
process_docs_fine_grained_action = TASK.process_docs("fine_grained_action")
process_docs_moving_attribute = TASK.process_docs("moving_attribute")
process_docs_egocentric_navigation = TASK.process_docs("egocentric_navigation")

doc_to_visual = TASK.doc_to_visual
doc_to_text = TASK.doc_to_text
process_results = TASK.process_results
aggregate_reference = TASK.aggregate_reference
aggregate_strict = TASK.aggregate_strict
